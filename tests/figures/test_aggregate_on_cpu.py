"""analysis.aggregate (cell columns, tidy tables, summaries) and analysis.stats (seed means)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from analysis.aggregate import aggregate, cell_columns, main, read_metrics, summary_table
from analysis.stats import seed_mean
from rspo_core.cells import parse_cell


def test_cell_columns_round_trip():
    c = cell_columns("model~tiny/algo~rspo_pass/k~4/n~16/reward~pass/seed~2")
    assert c == {"cell": "model~tiny/algo~rspo_pass/k~4/n~16/reward~pass/seed~2", "model": "tiny",
                 "algo": "rspo_pass", "train_k": 4, "k_schedule": "constant", "n": 16, "reward": "pass", "seed": 2}
    s = cell_columns("model~m/algo~rspo_pass/k~8-linear/n~8/reward~max/seed~0")
    assert (s["train_k"], s["k_schedule"], s["reward"]) == (8, "linear", "max")
    assert parse_cell(s["cell"]).path == s["cell"]  # the one grammar formats what it parses


@pytest.mark.parametrize("bad", ["model~m/algo~a/k~x/n~8/reward~pass/seed~0", "algo~a/k~1/n~8/reward~pass/seed~0",
                                 "model~m/algo~a/k~1/n~8/reward~pass"])
def test_cell_columns_rejects(bad):
    with pytest.raises(ValueError, match="not a cell path"):
        cell_columns(bad)


def test_aggregate_tables(synthetic_results):
    tables = synthetic_results / "tables"
    passk = pd.read_csv(tables / "passk.csv")
    maxk = pd.read_csv(tables / "maxk.csv")
    curves = pd.read_csv(tables / "train_curves.csv")
    assert set(passk["metric"]) == {"pass@k"} and set(maxk["metric"]) == {"max@k"}
    for col in ("cell", "model", "algo", "train_k", "k_schedule", "n", "reward", "seed", "benchmark", "k", "value",
                "ci_low", "ci_high", "grader_version"):
        assert col in passk.columns
    # one row per (cell, benchmark, k)
    assert not passk.duplicated(["cell", "benchmark", "k"]).any()
    row = passk[(passk["algo"] == "rspo_pass") & (passk["k_schedule"] == "linear")]
    assert set(row["train_k"]) == {8}
    assert set(passk.loc[passk["algo"] == "base", "cell"]) == {"model~tiny/algo~base/k~1/n~1/reward~pass/seed~0",
                                                                "model~big7b/algo~base/k~1/n~1/reward~pass/seed~0"}
    # training curves: per-step rows, the trainer's k renamed step_k, base cells never trained
    assert {"step", "step_k", "entropy", "train_k"} <= set(curves.columns)
    assert "base" not in set(curves["algo"])
    assert (tables / "passk_summary.tex").read_text().count("\\begin{tabular}") >= 2


def test_read_metrics_checks_benchmark_folder(tmp_path):
    d = tmp_path / "model~m/algo~pg/k~1/n~8/reward~pass/seed~0/aime24"
    d.mkdir(parents=True)
    pd.DataFrame([{"benchmark": "math500", "metric": "pass@k", "k": 1, "value": 0.5, "ci_low": 0.4, "ci_high": 0.6,
                   "n_problems": 10, "n_samples": 8, "grader_version": "g"}]).to_csv(d / "metrics.csv", index=False)
    with pytest.raises(ValueError, match="folder says 'aime24'"):
        read_metrics(tmp_path)
    with pytest.raises(ValueError, match="not a directory"):
        read_metrics(tmp_path / "nope")


def test_train_log_last_record_wins_and_truncated_line(tmp_path):
    d = tmp_path / "train/model~m/algo~pg/k~1/n~8/reward~pass/seed~0"
    d.mkdir(parents=True)
    (d / "train_log.jsonl").write_text(json.dumps({"step": 0, "entropy": 1.0}) + "\n"
                                       + json.dumps({"step": 0, "entropy": 0.9}) + "\n" + '{"step": 1, "ent')
    (tmp_path / "eval").mkdir()
    counts = aggregate(tmp_path / "eval", tmp_path / "train", tmp_path / "tables")
    curves = pd.read_csv(tmp_path / "tables/train_curves.csv")
    assert counts["train_curves.csv"] == 1 and curves["entropy"].tolist() == [0.9]
    assert pd.read_csv(tmp_path / "tables/passk.csv").empty  # header only, still readable


def test_seed_mean_intervals():
    df = pd.DataFrame({"g": ["a"] * 3 + ["b"], "value": [0.4, 0.5, 0.6, 0.3], "ci_low": [0.35, 0.45, 0.55, 0.2],
                       "ci_high": [0.45, 0.55, 0.65, 0.4]})
    out = seed_mean(df, ["g"], ci="seeds").set_index("g")
    h = 4.302652729911275 * 0.1 / np.sqrt(3)  # t_{0.975, 2} sd / sqrt(S)
    assert out.loc["a", "value"] == pytest.approx(0.5)
    assert out.loc["a", "ci_low"] == pytest.approx(0.5 - h) and out.loc["a", "ci_high"] == pytest.approx(0.5 + h)
    assert np.isnan(out.loc["b", "ci_low"])  # one seed: no across-seed interval
    m = seed_mean(df, ["g"], ci="metrics").set_index("g")
    assert m.loc["a", "ci_low"] == pytest.approx(0.45) and m.loc["b", "ci_high"] == pytest.approx(0.4)
    auto = seed_mean(df, ["g"]).set_index("g")
    assert auto.loc["a", "ci_low"] == pytest.approx(0.5 - h) and auto.loc["b", "ci_low"] == pytest.approx(0.2)
    with pytest.raises(ValueError, match="ci="):
        seed_mean(df, ["g"], ci="bogus")
    wide = pd.DataFrame({"g": ["c", "c"], "value": [0.05, 0.95], "ci_low": [0.0, 0.9], "ci_high": [0.1, 1.0]})
    clipped = seed_mean(wide, ["g"], ci="seeds").iloc[0]
    assert (clipped["ci_low"], clipped["ci_high"]) == (0.0, 1.0)  # t_{0.975,1} = 12.7: clipped to [0, 1]
    raw = seed_mean(wide, ["g"], ci="seeds", bounds=None).iloc[0]
    assert raw["ci_low"] < -5 and raw["ci_high"] > 5


def test_summary_table_and_cli(synthetic_results, tmp_path, capsys):
    passk = pd.read_csv(synthetic_results / "tables/passk.csv")
    table = summary_table(passk)
    assert {"pass@1", "pass@2", "pass@4", "pass@8", "pass@16", "seeds"} <= set(table.columns)
    main_rspo = table[(table["algo"] == "rspo_pass") & (table["train_k"] == 2) & (table["benchmark"] == "aime24")]
    assert main_rspo["seeds"].tolist() == [2] and "[" in main_rspo["pass@4"].iloc[0]
    assert main(["--eval-root", str(synthetic_results / "eval"), "--train-root", str(synthetic_results / "train"),
                 "--out-dir", str(tmp_path / "t")]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["passk.csv"] == len(passk)
