"""analysis.paired on a synthetic table whose paired differences are worked out by hand: per-seed values, the
differences within a seed, the t-interval over seeds, seeds missing one cell left out, one-seed families skipped."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from analysis.manifest import manifest_for_config
from analysis.paired import PAIRED_COLUMNS, paired_table

T2 = 4.302652729911275  # t_{0.975, 2}
CONFIG = {
    "families": {
        "main": {"model": "m", "n": 8, "reward": "pass", "seed": [0, 1, 2], "benchmarks": ["b1"],
                 "grid": [{"algo": "pg"}, {"algo": ["baseline", "rspo_pass"], "k": [4]}]},
        "grpo": {"model": "m", "n": 8, "reward": "pass", "seed": 0, "benchmarks": ["b1"],
                 "grid": [{"algo": ["pg", "grpo"]}]},
    },
}
# Pass@4 of each (algo, seed), by hand
VALUES = {("pg", 0): 0.50, ("pg", 1): 0.52, ("pg", 2): 0.47,
          ("baseline", 0): 0.55, ("baseline", 1): 0.50, ("baseline", 2): 0.52,
          ("rspo_pass", 0): 0.60, ("rspo_pass", 1): 0.58, ("rspo_pass", 2): 0.63,
          ("grpo", 0): 0.40}


def _table(drop=()):
    rows = []
    for fam in manifest_for_config(CONFIG)["families"].values():
        for c in fam["cells"]:
            key = (c["algo"], c["seed"])
            if c["algo"] == "base" or key in drop:
                continue
            rows.append({**c, "benchmark": "b1", "metric": "pass@k", "k": 4, "value": VALUES[key]})
    return pd.DataFrame(rows).drop_duplicates("cell")


def _row(t, a, b):
    (r,) = t[(t["method_a"] == a) & (t["method_b"] == b)].to_dict("records")
    return r


def test_paired_differences_and_their_interval():
    t = paired_table(_table(), manifest_for_config(CONFIG))
    assert list(t.columns) == list(PAIRED_COLUMNS)
    assert set(t["family"]) == {"main"}  # grpo has one seed: no paired rows
    r = _row(t, "rspo_pass", "baseline")
    assert r["train_k"] == 4 and r["seeds"] == "0;1;2" and r["values_a"] == "0.6;0.58;0.63"
    assert r["values_b"] == "0.55;0.5;0.52"
    d = [0.05, 0.08, 0.11]  # by hand
    assert [float(x.split(":")[1]) for x in r["diffs"].split(";")] == pytest.approx(d)
    sd = math.sqrt(sum((x - 0.08) ** 2 for x in d) / 2)
    assert r["mean_diff"] == pytest.approx(0.08)
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((0.08 - T2 * sd / math.sqrt(3), 0.08 + T2 * sd / math.sqrt(3)))
    r = _row(t, "baseline", "pg")  # pg ignores k: paired with the baseline at every training k
    assert r["mean_diff"] == pytest.approx((0.05 - 0.02 + 0.05) / 3)
    assert _row(t, "rspo_pass", "pg")["n_seeds"] == 3


def test_a_seed_missing_one_cell_is_left_out():
    t = paired_table(_table(drop={("baseline", 1)}), manifest_for_config(CONFIG))
    r = _row(t, "rspo_pass", "baseline")
    assert r["seeds"] == "0;2" and r["n_seeds"] == 2
    assert r["mean_diff"] == pytest.approx((0.05 + 0.11) / 2)
    assert _row(t, "rspo_pass", "pg")["seeds"] == "0;1;2"


def test_empty_tables_give_an_empty_table_with_the_columns():
    t = paired_table(pd.DataFrame(), manifest_for_config(CONFIG))
    assert t.empty and list(t.columns) == list(PAIRED_COLUMNS)
