"""A user's estimator through the whole DAG, the way a user brings it: the example plugin package (examples/rspo_loo)
pip-installed in editable mode into a virtualenv (on top of this environment), then `snakemake` from that virtualenv
on the micro config with the plugin in the main family (tests/workflow/micro/plugin.yaml): its cells train with the
reference trainer (which finds it through its entry point), are evaluated, and reach the tables, the figures and the
claims table's rows for the plugin against RSPO and against the baseline. The family is trained on two base models
(two pre-training seeds), the miniature config's shape: every claim judged on it has a pooled row and one row per
model, with the power column. Then the plugin's code changes: a dry run plans to retrain exactly its cells (on both
base models) and nothing else.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from wf_helpers import MICRO, REPO

PLUGIN_LAYER = REPO / "tests" / "workflow" / "micro" / "plugin.yaml"
EXAMPLE = REPO / "examples" / "rspo_loo"
TARGETS = ("results/tables/claims.csv", "results/tables/paired.csv", "results/figures/fig06_passk_main.pdf",
           "results/figures/fig13_peers_matched_k.pdf")


@pytest.fixture(scope="module")
def user_env(tmp_path_factory, make_user_venv):
    """(environment of an activated virtualenv holding an editable install of a copy of the example, the copy)."""
    root = tmp_path_factory.mktemp("plugin-user")
    package = root / "rspo_loo"
    shutil.copytree(EXAMPLE, package, ignore=shutil.ignore_patterns("*.egg-info", "__pycache__", "build"))
    env_dir = root / "venv"
    make_user_venv(env_dir, package)
    env = {**os.environ, "PATH": f"{env_dir / 'bin'}{os.pathsep}{os.environ['PATH']}", "VIRTUAL_ENV": str(env_dir)}
    env.pop("RSPO_BENCH_PLUGINS", None)
    return env, package


def _snakemake(env, wd, *args):
    return subprocess.run(["python", "-m", "snakemake", "--directory", str(wd), "--cores", "2", *args, "--configfile",
                           str(MICRO), str(PLUGIN_LAYER)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=1500)


@pytest.fixture(scope="module")
def run(user_env, tmp_path_factory):
    env, package = user_env
    wd = tmp_path_factory.mktemp("plugin-micro")
    proc = _snakemake(env, wd, *TARGETS)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return wd, env, package


@pytest.mark.timeout(1500)
def test_the_plugin_trains_and_reaches_tables_figures_and_claims(run):
    import pandas as pd

    wd, _, _ = run
    results = wd / "results"
    passk = pd.read_csv(results / "tables" / "passk.csv")
    assert set(passk["algo"]) == {"base", "baseline", "rspo_pass", "rspo_pass_loo"}
    loo = passk[passk["algo"] == "rspo_pass_loo"]
    assert sorted(set(loo["seed"])) == [0, 1] and set(loo["train_k"]) == {2} and set(loo["model"]) == {"tiny", "tiny_b"}
    log = (results / "logs" / "train" / "model~tiny/algo~rspo_pass_loo/k~2/n~4/reward~pass/seed~0.log").read_text()
    assert "Traceback" not in log
    claims = pd.read_csv(results / "tables" / "claims.csv", keep_default_na=False)
    table = claims[["claim", "text", "models", "verdict", "mde", "note"]].to_string()
    # C1 on two base models: the pooled row (per training seed, the mean over the models), then one row per model
    c1 = claims[claims["claim"].str.fullmatch(r"C1(@.*)?")]
    assert list(c1["claim"]) == ["C1", "C1@tiny", "C1@tiny_b"], table
    assert list(c1["models"]) == ["tiny;tiny_b", "tiny", "tiny_b"], table
    assert (c1["n_seeds"] == 2).all() and (c1["mde"] != "").all(), table  # 2 paired seeds: an interval and a power
    rows = claims[claims["text"].str.contains("rspo_pass_loo", regex=False)]
    assert len(rows) == 6, table  # against RSPO and against the baseline, each pooled + per model
    assert set(rows["n_seeds"]) == {2} and rows["verdict"].isin(
        ["reproduced", "not reproduced", "inconclusive"]).all(), rows.to_string()
    assert rows["text"].str.contains("RSPO").any() and rows["text"].str.contains("baseline").any(), rows["text"]
    paired = pd.read_csv(results / "tables" / "paired.csv")
    assert paired.apply(lambda r: "rspo_pass_loo" in " ".join(map(str, r.values)), axis=1).any()
    # pairs within a base model: each model's rows on their own, 2 seeds each
    loo_pairs = paired[paired["method_a"] == "rspo_pass_loo"]
    assert set(loo_pairs["model"]) == {"tiny", "tiny_b"} and (loo_pairs["n_seeds"] == 2).all(), loo_pairs.to_string()
    for fig in ("fig06_passk_main", "fig13_peers_matched_k"):
        assert (results / "figures" / f"{fig}.pdf").stat().st_size > 0


@pytest.mark.timeout(600)
def test_a_changed_plugin_reruns_its_cells_and_nothing_else(run):
    wd, env, package = run
    source = package / "src" / "rspo_loo" / "estimators.py"
    source.write_text(source.read_text() + "\n# edited: a change of the plugin's code\n")
    proc = _snakemake(env, wd, "-n", *TARGETS)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # every job with a cell wildcard (train, generate, verify, score) is one of the plugin's cells
    planned = {line.split("wildcards: cell=")[1].split(",")[0].strip()
               for line in proc.stdout.splitlines() if "wildcards: cell=" in line}
    trains = [b for b in proc.stdout.split("\n\n") if b.lstrip().startswith("rule train:") or "\nrule train:" in b]
    trained = {b.split("wildcards: cell=")[1].split()[0] for b in trains}
    assert trained == {f"model~{m}/algo~rspo_pass_loo/k~2/n~4/reward~pass/seed~{s}"
                       for m in ("tiny", "tiny_b") for s in (0, 1)}, trained
    assert planned and all("/algo~rspo_pass_loo/" in p for p in planned), planned
