"""Every schema and semantic check rejects its bad config with its own one-line message (before any job runs)."""

from __future__ import annotations

import copy

import pytest
import yaml
from wf_helpers import REPO, SCHEMA, dryrun_jobs, load_yaml

import checks

DEFAULT = load_yaml(REPO / "config" / "config.yaml")


@pytest.fixture(scope="module")
def registry():
    from analysis.datasets import BENCHMARKS
    from rspo_patch.estimators import ESTIMATORS, check_estimator_args

    return {"estimators": ESTIMATORS, "check_estimator_args": check_estimator_args, "benchmarks": BENCHMARKS}


def _set(cfg: dict, dotted: str, value) -> dict:
    node = cfg
    *head, last = dotted.split(".")
    for key in head:
        node = node[key] if not key.isdigit() else node[int(key)]
    if last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return cfg


CELL = "model~tiny/algo~{algo}/k~{k}/n~{n}/reward~{reward}/seed~0"

SEMANTIC_CASES = {
    "unknown estimator": (
        {"families.main.grid": [{"algo": "rspo_foo", "k": 4}]},
        "family 'main', cell " + CELL.format(algo="rspo_foo", k=4, n=8, reward="pass"),
        "unknown algorithm (estimator) 'rspo_foo'"),
    "unknown benchmark": (
        {"families.main.benchmarks": ["arithmetic", "aime99"]}, "family 'main'", "unknown benchmark 'aime99'"),
    "unknown model": (
        {"families.grpo.model": "gpt5"}, "family 'grpo'", "unknown model 'gpt5'"),
    "k > n": (
        {"families.main.grid": [{"algo": "rspo_pass", "k": 16}]},
        "cell " + CELL.format(algo="rspo_pass", k=16, n=8, reward="pass"), "k=16 > n=8"),
    "k does not divide n (baseline)": (
        {"families.main.grid": [{"algo": "baseline", "k": 3}]},
        "cell " + CELL.format(algo="baseline", k=3, n=8, reward="pass"), "k must divide n"),
    "binary-only estimator with the max reward": (
        {"families.maxk.grid": [{"algo": "rspo_pass", "k": 4}]},
        "family 'maxk', cell " + CELL.format(algo="rspo_pass", k=4, n=8, reward="max"), "binary 0/1 rewards"),
    "n < 2": (
        {"families.grpo.n": 1}, "family 'grpo', cell " + CELL.format(algo="grpo", k=1, n=1, reward="pass"),
        "at least n=2"),
    "k schedule on the block baseline": (
        {"families.peers.grid": [{"algo": "baseline", "k": 4, "k_schedule": "linear"}]},
        "family 'peers', cell model~tiny/algo~baseline/k~4-linear/n~8/reward~pass/seed~0", "constant' k schedule"),
    "missing model path": (
        {"models.tiny": {"source": "path", "path": "/nonexistent/model-dir", "template": "plain"}},
        "model 'tiny'", "model path '/nonexistent/model-dir' does not exist"),
    "hf model without repo": (
        {"models.tiny": {"source": "hf", "template": "plain"}}, "model 'tiny'", "needs 'repo'"),
    "unknown training set": (
        {"data.train": "gsm8k"}, "data.train", "unknown training set 'gsm8k'"),
    "eval k above the samples per problem": (
        {"eval.ks": [1, 64]}, "eval", "largest k in eval.ks (64) exceeds the 32 samples"),
    "xverify without a judge model": (
        {"eval.verifier": "xverify"}, "eval.xverify_model", "needs eval.xverify_model"),
    "unknown contamination benchmark": (
        {"contamination.benchmarks": ["aime26"]}, "contamination.benchmarks", "unknown benchmark 'aime26'"),
}


@pytest.mark.parametrize("case", list(SEMANTIC_CASES))
def test_semantic_check_rejects_bad_config(case, registry):
    changes, where, what = SEMANTIC_CASES[case]
    cfg = copy.deepcopy(DEFAULT)
    for key, value in changes.items():
        _set(cfg, key, value)
    with pytest.raises(ValueError) as err:
        checks.check_config(cfg, **registry)
    msg = str(err.value)
    assert "\n" not in msg, msg
    assert msg.startswith("config error: ")
    assert where in msg, msg
    assert what in msg, msg


@pytest.mark.parametrize("name", ["config.yaml", "smollm2.yaml", "paper.yaml"])
def test_shipped_configs_pass_schema_and_semantic_checks(name, registry):
    from snakemake.utils import validate

    cfg = load_yaml(REPO / "config" / name)
    validate(cfg, str(SCHEMA))
    checks.check_config(cfg, **registry)
    assert cfg["results"]  # schema defaults were filled in


SCHEMA_CASES = {
    "misspelt top-level key": ({"famillies": {}}, "famillies"),
    "misspelt family key": ({"families.main.benchmark": ["arithmetic"]}, "benchmark"),
    "misspelt grid key": ({"families.main.grid": [{"algo": "pg", "kk": 2}]}, "kk"),
    "unknown reward kind": ({"families.main.reward": "maxx"}, "maxx"),
    "wrong type": ({"eval.n": "32"}, "'32'"),
    "unknown trainer": ({"train.trainer": "verl"}, "verl"),
    "unknown model source": ({"models.tiny.source": "ollama"}, "ollama"),
}


@pytest.mark.parametrize("case", list(SCHEMA_CASES))
def test_schema_rejects_bad_config(case):
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    changes, token = SCHEMA_CASES[case]
    cfg = copy.deepcopy(DEFAULT)
    for key, value in changes.items():
        _set(cfg, key, value)
    with pytest.raises(WorkflowError) as err:
        validate(cfg, str(SCHEMA))
    assert token in str(err.value)


def test_schema_fills_defaults():
    from snakemake.utils import validate

    cfg = {"models": {"m": {"source": "pretrain"}}, "data": {"train": "arithmetic"}, "train": {"trainer": "local"},
           "eval": {}, "families": {"f": {"model": "m", "n": 8, "reward": "pass", "seed": 0,
                                          "grid": [{"algo": "pg"}], "benchmarks": ["arithmetic"]}}}
    validate(cfg, str(SCHEMA))
    assert cfg["results"] == "results"
    assert cfg["eval"]["temperature"] == 0.6 and cfg["eval"]["verifier"] == "math-verify"
    assert cfg["families"]["f"]["base"] is True
    assert "k" not in cfg["families"]["f"]["grid"][0]  # no schema default: a grid entry inherits the family's k


def test_snakemake_stops_before_any_job_with_the_message(tmp_path):
    cfg = copy.deepcopy(DEFAULT)
    cfg["families"]["main"]["grid"] = [{"algo": "baseline", "k": 3}]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(Exception) as err:
        dryrun_jobs(path, tmp_path / "wd")
    assert "family 'main', cell model~tiny/algo~baseline/k~3/n~8/reward~pass/seed~0" in str(err.value)
    assert "k must divide n" in str(err.value)
