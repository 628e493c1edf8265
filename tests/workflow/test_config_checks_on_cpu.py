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
        "family 'main', cell " + CELL.format(algo="rspo_foo", k=4, n=16, reward="pass"),
        "unknown algorithm (estimator) 'rspo_foo'"),
    "unknown benchmark": (
        {"families.main.benchmarks": ["arithmetic", "aime99"]}, "family 'main'", "unknown benchmark 'aime99'"),
    "unknown model": (
        {"families.grpo.model": "gpt5"}, "family 'grpo'", "unknown model 'gpt5'"),
    "k > n": (
        {"families.main.grid": [{"algo": "rspo_pass", "k": 32}]},
        "cell " + CELL.format(algo="rspo_pass", k=32, n=16, reward="pass"), "k=32 > n=16"),
    "k does not divide n (baseline)": (
        {"families.main.grid": [{"algo": "baseline", "k": 3}]},
        "cell " + CELL.format(algo="baseline", k=3, n=16, reward="pass"), "k must divide n"),
    "binary-only estimator with the max reward": (
        {"families.maxk.grid": [{"algo": "rspo_pass", "k": 4}]},
        "family 'maxk', cell " + CELL.format(algo="rspo_pass", k=4, n=16, reward="max"), "binary 0/1 rewards"),
    "n < 2": (
        {"families.grpo.n": 1}, "family 'grpo', cell " + CELL.format(algo="grpo", k=1, n=1, reward="pass"),
        "at least n=2"),
    "k schedule on the block baseline": (
        {"families.peers.grid": [{"algo": "baseline", "k": 4, "k_schedule": "linear"}]},
        "family 'peers', cell model~tiny/algo~baseline/k~4-linear/n~16/reward~pass/seed~0", "constant' k schedule"),
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
        {"grader.verifier": "xverify"}, "grader.xverify_model", "needs grader.xverify_model"),
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
    assert cfg["results"] == "results" and cfg["cpu_isa"] == "avx2"
    assert cfg["eval"]["temperature"] == 0.6 and cfg["grader"]["verifier"] == "math-verify"
    assert cfg["grader"]["fallback"] is None and cfg["grader"]["timeout_s"] == 5.0
    assert cfg["families"]["f"]["base"] is True
    assert "k" not in cfg["families"]["f"]["grid"][0]  # no schema default: a grid entry inherits the family's k


def test_snakemake_stops_before_any_job_with_the_message(tmp_path):
    cfg = copy.deepcopy(DEFAULT)
    cfg["families"]["main"]["grid"] = [{"algo": "baseline", "k": 3}]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(Exception) as err:
        dryrun_jobs(path, tmp_path / "wd")
    assert "family 'main', cell model~tiny/algo~baseline/k~3/n~16/reward~pass/seed~0" in str(err.value)
    assert "k must divide n" in str(err.value)


# ----------------------------------------------------------------------------------------------------------------------
# One line per schema mistake, naming the key, the value and the expectation (issue 13: before, the schema's valid
# keys were listed as "unexpected", followed by hundreds of lines of schema dump)

ONE_LINE_CASES = {
    "unknown cpu_isa": ({"cpu_isa": "avx512"}, "config error: cpu_isa: 'avx512': expected one of: avx2, native"),
    "empty grid": ({"families.main.grid": []}, "config error: families.main.grid: []: must not be empty"),
    "k as a string": ({"families.main.k": "4"}, "config error: families.main.k: '4': expected integer, got str"),
    "misspelt family key": ({"families.main.benchmark": ["arithmetic"]},
                            "config error: families.main.benchmark: unknown key (did you mean 'benchmarks'?)"),
    "misspelt grid key": ({"families.main.grid": [{"algo": "pg", "kk": 2}]},
                          "config error: families.main.grid[0].kk: unknown key (did you mean 'k'?)"),
    "misspelt top-level key": ({"famillies": {}}, "config error: famillies: unknown key (did you mean 'families'?)"),
    "unknown reward kind": ({"families.main.reward": "maxx"},
                            "config error: families.main.reward: 'maxx': expected one of: pass, max"),
    "grader key in its old place": ({"eval.fallback": "last_number"},
                                    "config error: eval.fallback: 'last_number': moved: the grader settings are the "
                                    "top-level 'grader' block (grader.verifier"),
    "unknown grader fallback": ({"grader.fallback": "first_number"},
                                "config error: grader.fallback: 'first_number': expected one of: last_number, None"),
}


@pytest.fixture(scope="module")
def schema():
    return load_yaml(SCHEMA)


@pytest.mark.parametrize("case", list(ONE_LINE_CASES))
def test_schema_mistake_is_one_line_naming_its_cause(case, schema):
    changes, expected = ONE_LINE_CASES[case]
    cfg = copy.deepcopy(DEFAULT)
    for key, value in changes.items():
        _set(cfg, key, value)
    line = checks.schema_error_line(cfg, schema)
    assert line is not None and "\n" not in line
    assert line.startswith(expected), line
    assert len(line) < 300, line


def test_shipped_configs_have_no_schema_error(schema):
    for name in ("config.yaml", "smollm2.yaml", "paper.yaml"):
        assert checks.schema_error_line(load_yaml(REPO / "config" / name), schema) is None, name


def test_config_overrides_get_the_schema_types(schema):
    # what Snakemake hands the Snakefile for --config 'eval={"n": 64, "temperature": 0.5}' results=out
    cfg = copy.deepcopy(DEFAULT)
    overrides = {"eval": {"n": "64", "temperature": "0.5"}, "results": "out"}
    cfg["eval"].update(overrides["eval"])
    cfg["results"] = "out"
    cfg["models"]["tiny"]["template"] = "plain"  # a string the schema wants as a string stays one
    checks.coerce_overrides(cfg, overrides, schema)
    assert cfg["eval"]["n"] == 64 and isinstance(cfg["eval"]["n"], int)
    assert cfg["eval"]["temperature"] == 0.5 and cfg["results"] == "out"
    assert checks.schema_error_line(cfg, schema) is None
    # a string in a config FILE is not an override: it stays a mistake
    cfg["eval"]["n"] = "64"
    checks.coerce_overrides(cfg, {}, schema)
    assert checks.schema_error_line(cfg, schema).startswith("config error: eval.n: '64': expected integer")


def _snakemake_cli(*args, cwd=REPO, timeout=300):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def test_documented_eval_override_reaches_the_generate_commands(tmp_path):
    res = _snakemake_cli("-n", "-p", "--directory", str(tmp_path), "--config", 'eval={"n": 64}', "results=out")
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    gen = [line for line in res.stdout.splitlines() if "python -m analysis.generate" in line]
    assert gen and all("--n 64" in line for line in gen), gen[:2]


# Mistakes that only each CLI's own parser and checks know (free-form *.args blocks, figure names): the run stops
# before the first job with one line naming the config key, the value and what was expected.
CLI_CASES = {
    "misspelt training flag": ({"train.args.stpes": 20}, "train.args", "unrecognized arguments: --stpes 20"),
    "negative test-set size": ({"data.arithmetic.n_test": -5}, "data.arithmetic", "n_test=-5"),
    "zero training steps": ({"train.args.steps": 0}, "train.args", "steps"),
    "negative sampling temperature": ({"train.args.temperature": -1.0}, "train.args", "temperature"),
    "misspelt pre-training flag": ({"models.tiny.pretrain_args.max_stpes": 5}, "models.tiny.pretrain_args",
                                   "unrecognized arguments: --max-stpes 5"),
    "unknown figure": ({"figures": {"only": ["fig99_nope"]}}, "figures.only", "unknown figure 'fig99_nope'"),
}


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_cli_flag_mistakes_stop_the_run_before_any_job(case, tmp_path):
    changes, where, what = CLI_CASES[case]
    cfg = copy.deepcopy(DEFAULT)
    for key, value in changes.items():
        if key == "figures":
            cfg["figures"] = value
        else:
            _set(cfg, key, value)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    res = _snakemake_cli("--cores", "1", "--directory", str(tmp_path / "wd"), "--configfile", str(path))
    assert res.returncode != 0
    out = res.stdout + res.stderr
    line = next((ln for ln in out.splitlines() if ln.startswith("config error: ")), None)
    assert line is not None, out[-3000:]
    assert where in line and what in line, line
    assert not (tmp_path / "wd" / "results" / "data").exists()  # nothing ran


def test_results_folder_lock_stops_a_second_run_on_the_same_folder(tmp_path):
    """Two working copies whose configs point at one absolute results folder: the second run stops at once."""
    import subprocess
    import sys
    import time

    results = tmp_path / "shared-results"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from rspo_core.locks import lock_folder; fh = lock_folder(sys.argv[1]); "
        "print('locked', flush=True); time.sleep(120)"), str(results)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        res = _snakemake_cli("--cores", "1", "--directory", str(tmp_path / "copy2"), "--config",
                             f"results={results}")
        assert res.returncode != 0
        out = res.stdout + res.stderr
        assert f"results folder {results} is in use by another run (pid {holder.pid})" in out, out[-3000:]
        assert not (results / "data").exists()
    finally:
        holder.kill()
        holder.wait()
    # the kernel drops the lock with its holder (SIGKILL): no unlock step is needed
    from rspo_core.locks import lock_folder

    fh = lock_folder(results)
    fh.close()
    time.sleep(0)


def test_yaml_syntax_error_names_line_and_column(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("results: results\nmodels:\n  tiny: {source: pretrain\n  other: 1\n")
    with pytest.raises(checks.ConfigError) as err:
        checks.load_yaml_config(bad)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"config error: {bad}:4:") and "YAML syntax error" in msg, msg
    bad.write_text("- just\n- a list\n")
    with pytest.raises(checks.ConfigError, match="expected a mapping of config keys at the top level, got list"):
        checks.load_yaml_config(bad)


def test_configfile_with_a_yaml_syntax_error_stops_snakemake_and_the_preflight_names_line_and_column(tmp_path):
    """Snakemake reads a --configfile itself, before the Snakefile runs, and its syntax error has no file, line or
    column (snakemake/common/configfile.py _load_configfile, Snakemake 9.27): the run stops before any job, and
    `python -m workflow.lib.checks FILE` (config/README.md) prints the one line Snakemake cannot."""
    import subprocess
    import sys

    text = "results: results\nmodels:\n  tiny: {source: pretrain\n  other: 1\n"  # the flow mapping never closes
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    res = _snakemake_cli("--cores", "1", "--directory", str(tmp_path / "wd"), "--configfile", str(bad))
    assert res.returncode != 0
    assert "Config file is not valid JSON or YAML" in res.stdout + res.stderr, res.stderr[-2000:]
    assert not (tmp_path / "wd" / "results").exists()  # nothing ran

    pre = subprocess.run([sys.executable, "-m", "workflow.lib.checks", str(bad)], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert pre.returncode == 1 and pre.stdout == ""
    column = text.splitlines()[3].index(":") + 1  # the parser meets `other:` where a ',' or '}' must come
    assert pre.stderr.splitlines() == [
        f"config error: {bad}:4:{column}: YAML syntax error: expected ',' or '}}', but got ':'"], pre.stderr

    shipped = sorted(str(p) for p in (REPO / "config").glob("*.yaml"))
    ok = subprocess.run([sys.executable, "-m", "workflow.lib.checks", *shipped], cwd=REPO, capture_output=True,
                        text=True, timeout=120)
    assert ok.returncode == 0 and ok.stdout + ok.stderr == "", ok.stderr


def test_schema_enums_agree_with_the_constants_they_name(schema):
    """Each concept is defined once in code; the schema's enums must name exactly those values."""
    from analysis.generate import BACKENDS
    from rspo_core.cpu_math import CPU_ISA_CHOICES
    from rspo_core.grading import FALLBACKS, VERIFIERS
    from rspo_core.prompts import TEMPLATES
    from rspo_core.rewards import REWARD_KINDS
    from rspo_core.schedules import K_SCHEDULES

    grid = schema["$defs"]["grid_keys"]["properties"]
    props = schema["properties"]
    assert grid["reward"]["oneOf"][0]["enum"] == list(REWARD_KINDS)
    assert grid["reward"]["oneOf"][1]["items"]["enum"] == list(REWARD_KINDS)
    assert grid["k_schedule"]["oneOf"][0]["enum"] == list(K_SCHEDULES)
    assert grid["k_schedule"]["oneOf"][1]["items"]["enum"] == list(K_SCHEDULES)
    model = props["models"]["additionalProperties"]["properties"]
    assert model["template"]["enum"] == list(TEMPLATES)
    assert props["eval"]["properties"]["backend"]["enum"] == sorted(BACKENDS)
    assert props["grader"]["properties"]["verifier"]["enum"] == list(VERIFIERS)
    assert props["grader"]["properties"]["fallback"]["enum"] == [*FALLBACKS, None]
    assert props["cpu_isa"]["enum"] == list(CPU_ISA_CHOICES)
