"""analysis.claims on synthetic tables whose answers are worked out by hand (docs/claims.md's rule): every verdict
(reproduced, not reproduced, inconclusive, not run) comes out where the numbers put it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.claims import CLAIM_COLUMNS, claims_table, main, verdict
from analysis.manifest import manifest_for_config, write_manifest
from rspo_core.cells import Cell

T2 = 4.302652729911275  # t_{0.975, 2}
KS = (1, 2, 4)
BASE = {1: 0.30, 2: 0.40, 4: 0.50}
E = {0: 0.0, 1: 0.01, 2: -0.01}  # per-seed wobble
CONFIG = {
    "families": {
        "main": {"model": "m", "n": 8, "reward": "pass", "seed": [0, 1, 2], "benchmarks": ["b1"],
                 "grid": [{"algo": "pg"}, {"algo": ["baseline", "rspo_pass"], "k": [2, 4]}]},
        "n_scaling": {"model": "m", "reward": "pass", "benchmarks": ["b1"], "base": False,
                      "grid": [{"algo": "rspo_pass", "k": 2, "n": 8, "seed": [0, 1, 2]},
                               {"algo": "rspo_pass", "k": 2, "n": 4, "seed": 0}]},
        "grpo": {"model": "m", "n": 8, "reward": "pass", "seed": [0, 1, 2], "benchmarks": ["b1"],
                 "grid": [{"algo": ["pg", "grpo"]}]},
        "maxk": {"model": "m", "n": 8, "reward": "max", "seed": [0, 1, 2], "benchmarks": ["b1"], "base": False,
                 "grid": [{"algo": ["baseline", "rspo_max"], "k": 2}]},
    },
    "contamination": {"benchmarks": ["clean"]},  # planned, never evaluated here: C8 "not run"
}


def offset(algo: str, k: int, n: int, reward: str, seed: int) -> float | dict:
    """Each cell's Pass@k = BASE + this offset (constant over the evaluation k unless a dict k -> offset)."""
    e = E[seed]
    if algo == "pg":
        return -0.05  # 0.45 < base 0.50 at k = 4
    if algo == "grpo":
        return -0.05 + {0: 0.01, 1: 0.0, 2: -0.005}[seed]
    if reward == "max":
        return {"baseline": 0.02, "rspo_max": -0.06 + e}[algo]
    if algo == "baseline":
        return {2: 0.02 + e, 4: -0.03 + 2 * e}[k]
    if algo == "rspo_pass" and n == 4:
        return 0.12 + 2 * e - 0.03
    return {2: 0.12 + 2 * e, 4: 0.07 + 3 * e}[k]  # rspo_pass: the baseline at the same k + 0.10 + e


def tables() -> dict[str, pd.DataFrame]:
    passk, maxk, curves = [], [], []
    cells = {c["cell"]: c for fam in manifest_for_config(CONFIG)["families"].values() for c in fam["cells"]}
    for path, c in cells.items():
        for k in KS:
            if c["algo"] == "base":
                value = BASE[k]
            else:
                off = offset(c["algo"], c["train_k"], c["n"], c["reward"], c["seed"])
                value = BASE[k] + (off[k] if isinstance(off, dict) else off)
            row = {**c, "benchmark": "b1", "k": k, "value": value, "ci_low": np.nan, "ci_high": np.nan}
            (maxk if c["reward"] == "max" else passk).append({**row, "metric": "max@k" if c["reward"] == "max"
                                                              else "pass@k"})
        if c["algo"] != "base":  # entropy 1.0 until the last of 10 steps (the final 10%), then the cell's value
            f = {0: 0.02, 1: -0.02, 2: 0.01}[c["seed"]]
            final = {"pg": 0.5, "rspo_pass": 0.6 + (f if c["train_k"] == 4 else 0.0)}.get(c["algo"], 0.7)
            curves += [{**c, "step": s, "entropy": 1.0 if s < 9 else final} for s in range(10)]
    return {"pass@k": pd.DataFrame(passk), "max@k": pd.DataFrame(maxk), "entropy": pd.DataFrame(curves)}


@pytest.fixture(scope="module")
def claims():
    return claims_table(tables(), manifest_for_config(CONFIG)).set_index("claim")


def _ci(values):
    v = np.asarray(values)
    h = T2 * v.std(ddof=1) / np.sqrt(3)
    return v.mean(), v.mean() - h, v.mean() + h


@pytest.mark.parametrize("cid, per_seed, expected", [
    ("C1", [0.10, 0.11, 0.09], "reproduced"),  # RSPO - baseline = 0.10 + e at both k
    ("C2", [0.05, 0.04, 0.06], "reproduced"),  # baseline k2 - k4 = 0.05 - e
    ("C3", [(-0.17 + 0.05 - 0.05) / 3, (-0.19 + 0.04 - 0.04) / 3, (-0.15 + 0.06 - 0.06) / 3], "not reproduced"),
    ("C4", [0.05, 0.05, 0.04], "reproduced"),  # min(RSPO k4 - base = 0.07 + 3e, base - pg = 0.05) at k = 4
    ("C5", [0.02, -0.02, 0.01], "inconclusive"),  # min(0.1 + f/2, f) = f: entropy of RSPO k4 - k2
    ("C9", [-0.08, -0.07, -0.09], "not reproduced"),  # RSPO-Max - baseline = -0.08 + e
    ("C10", [0.01, 0.0, -0.005], "reproduced"),  # grpo - pg inside +-0.05
])
def test_verdicts_with_three_seeds(claims, cid, per_seed, expected):
    row = claims.loc[cid]
    got = [float(x.split(":")[1]) for x in row["per_seed"].split(";")]
    assert row["seeds"] == "0;1;2" and got == pytest.approx(per_seed, abs=5e-5)  # per_seed printed to 4 decimals
    mean, lo, hi = _ci(per_seed)
    assert (row["mean"], row["ci_low"], row["ci_high"]) == pytest.approx((mean, lo, hi), abs=1e-9)
    assert row["verdict"] == expected and row["n_seeds"] == 3


def test_one_seed_and_not_run(claims):
    c6 = claims.loc["C6"]  # only seed 0 has n = 4: one paired difference n8 - n4 = 0.03, no interval
    assert c6["verdict"] == "inconclusive" and c6["n_seeds"] == 1 and c6["per_seed"] == "0:+0.0300"
    assert np.isnan(c6["ci_low"]) and c6["note"] == "one seed: no interval"
    assert claims.loc["C7", "verdict"] == "not run" and "no family main_large / main_7b" in claims.loc["C7", "note"]
    assert claims.loc["C8", "verdict"] == "not run" and "no rows" in claims.loc["C8", "note"]
    assert set(claims["verdict"]) == {"reproduced", "not reproduced", "inconclusive", "not run"}


def test_one_model_rows_name_it_and_carry_the_power(claims):
    # one base model per family: one row per claim (docs/claims.md, "Several base models"), models = the model
    assert list(claims.reset_index().columns) == list(CLAIM_COLUMNS)
    assert (claims.drop(index="C7")["models"] == "m").all() and claims.loc["C7", "models"] == ""
    assert claims.loc["C1", "mde"] == pytest.approx(3.2640435 * 0.01, rel=1e-6)  # sd(0.10, 0.11, 0.09) = 0.01
    assert np.isnan(claims.loc["C6", "mde"]) and np.isnan(claims.loc["C8", "mde"])  # one seed; no rows
    assert claims.loc["C5", "note"] == ("an effect of +0.0679 or more would be reproduced with 80% power "
                                        "(3 seeds, sd 0.0208)")  # inconclusive: what the seeds could have found
    assert 0 < claims.loc["C10", "mde"] < 0.05 and claims.loc["C1", "note"] == ""


def test_family_without_the_needed_cells_is_not_run():
    cfg = {"families": {"main": {**CONFIG["families"]["main"],
                                 "grid": [{"algo": "pg"}, {"algo": ["baseline", "rspo_pass"], "k": 4}]}}}
    t = claims_table(tables(), manifest_for_config(cfg)).set_index("claim")
    for cid in ("C2", "C5"):  # one baseline k, one RSPO k: no degradation or entropy trend to judge
        assert t.loc[cid, "verdict"] == "not run" and "lacks the cells" in t.loc[cid, "note"], cid
    assert t.loc["C3", "n_seeds"] == 3  # pg counts as training k = 1: two training ks remain
    assert t.loc["C1", "per_seed"] == "0:+0.1000;1:+0.1100;2:+0.0900"


def test_verdict_rule_boundaries():
    assert verdict({})["verdict"] == "not run"
    assert verdict({0: 0.3})["verdict"] == "inconclusive"
    assert verdict({0: 0.1, 1: 0.1})["verdict"] == "reproduced"  # sd 0: the interval is the point 0.1
    assert verdict({0: -0.1, 1: -0.2})["verdict"] == "inconclusive"  # -0.15 +- 12.7 * 0.0707 / 1.41 covers 0
    assert verdict({0: -0.1, 1: -0.11, 2: -0.12})["verdict"] == "not reproduced"
    # 0.09 +- 4.303 * 0.01 / sqrt(3) = [0.065, 0.115]: entirely above the margin
    assert verdict({0: 0.08, 1: 0.09, 2: 0.10}, equivalence=0.05)["verdict"] == "not reproduced"
    assert verdict({0: -0.08, 1: -0.09, 2: -0.10}, equivalence=0.05)["verdict"] == "not reproduced"
    assert verdict({0: 0.04, 1: 0.05, 2: 0.06}, equivalence=0.05)["verdict"] == "inconclusive"


def test_cli_writes_the_table(tmp_path, capsys):
    t = tables()
    d = tmp_path / "tables"
    d.mkdir()
    t["pass@k"].to_csv(d / "passk.csv", index=False)
    t["max@k"].to_csv(d / "maxk.csv", index=False)
    t["entropy"].to_csv(d / "train_curves.csv", index=False)
    cells = write_manifest(manifest_for_config(CONFIG), tmp_path / "cells.json")
    assert main(["--tables", str(d), "--cells", str(cells), "--out", str(tmp_path / "claims.csv")]) == 0
    out = pd.read_csv(tmp_path / "claims.csv")
    assert list(out["claim"]) == [f"C{i}" for i in range(1, 11)]
    assert '"C1": "reproduced"' in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--tables", str(tmp_path / "nope"), "--cells", str(cells), "--out", str(tmp_path / "x.csv")])
