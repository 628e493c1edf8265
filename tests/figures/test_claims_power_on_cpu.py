"""analysis.claims on two base models (issue 22, docs/claims.md "Several base models" and "Power"): one row per base
model and the pooled row, the pooled per-seed values recomputed here from the table rows by the documented rule (per
training seed, the mean over the models), a visible note where the verdict differs between base models, seeds and
models left out of the pool, one model = one row as before, and the power column (mde) against Monte Carlo."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import t as student_t

from analysis.claims import CLAIM_COLUMNS, claims_table
from analysis.manifest import manifest_for_config
from analysis.stats import detectable_effect, equivalence_bound, equivalence_power
from analysis.verdicts import pool_models

SEEDS = (0, 1, 2)
KS = (1, 2, 4)
MODELS = ("ta", "tb")  # two pre-training seeds of one recipe
BASE = {1: 0.30, 2: 0.40, 4: 0.50}
RSPO_GAIN = {"ta": {0: 0.10, 1: 0.11, 2: 0.09},  # RSPO - baseline on ta: reproduced
             "tb": {0: 0.04, 1: -0.03, 2: 0.01}}  # on tb: inconclusive (the pool: reproduced)
GRPO_GAP = {"ta": {0: 0.01, 1: 0.0, 2: -0.005}, "tb": {0: 0.002, 1: 0.004, 2: 0.0}}  # grpo - pg
FAMILY = {"model": list(MODELS), "n": 8, "reward": "pass", "seed": list(SEEDS), "benchmarks": ["b1"]}
CONFIG = {
    "families": {
        "main": {**FAMILY, "grid": [{"algo": "pg"}, {"algo": ["baseline", "rspo_pass"], "k": [2, 4]}]},
        "grpo": {**FAMILY, "grid": [{"algo": ["pg", "grpo"]}]},
        "hp": {**FAMILY, "base": False,  # a method with hyperparameters: the U rows split the same way
               "grid": [{"algo": "baseline", "k": 2}, {"algo": "rs_grpo", "hp": {"beta": 4.0}}]},
    },
    "contamination": {"benchmarks": ["b1"]},  # C8 = C1 on b1 here
}
MC_REPS, MC_TOL = 200_000, 0.01  # Monte-Carlo power: standard error 0.0009 at power 0.8


def value(c: dict, k: int) -> float:
    """Pass@k of a cell: BASE + an offset by algo, training k, model and seed."""
    m, s, algo = c["model"], c["seed"], c["algo"]
    if algo == "base":
        return BASE[k]
    wobble = {0: 0.0, 1: 0.01, 2: -0.01}[s] + (0.005 if m == "tb" else 0.0)
    baseline = {1: -0.02, 2: 0.02, 4: -0.03}[c["train_k"]] + wobble
    off = {"pg": -0.05 + wobble, "grpo": -0.05 + wobble + GRPO_GAP[m][s], "baseline": baseline,
           "rspo_pass": baseline + RSPO_GAIN[m][s]}.get(algo, baseline + 0.03)  # rs_grpo+beta=4.0
    return BASE[k] + off


def tables(manifest: dict, drop=lambda c: False) -> dict[str, pd.DataFrame]:
    cells = {c["cell"]: c for fam in manifest["families"].values() for c in fam["cells"]}
    passk = [{**c, "benchmark": "b1", "metric": "pass@k", "k": k, "value": value(c, k), "ci_low": np.nan,
              "ci_high": np.nan} for c in cells.values() if not drop(c) for k in KS]
    curves = [{**c, "step": s, "entropy": 1.0 if s < 9 else 0.5 + 0.1 * c["train_k"] + 0.01 * c["seed"]}
              for c in cells.values() if c["algo"] != "base" and not drop(c) for s in range(10)]
    empty = pd.DataFrame(columns=list(pd.DataFrame(passk).columns))
    return {"pass@k": pd.DataFrame(passk), "max@k": empty, "entropy": pd.DataFrame(curves)}


@pytest.fixture(scope="module")
def two():
    m = manifest_for_config(CONFIG)
    t = tables(m)
    return m, t, claims_table(t, m).set_index("claim")


def per_seed(row) -> dict:
    return {int(a): float(b) for a, b in (x.split(":") for x in row["per_seed"].split(";"))} if row["per_seed"] else {}


def c1_by_hand(passk: pd.DataFrame, model: str) -> dict:
    """C1 on one model from the table rows: per seed, the mean over training ks of the curve-mean difference."""
    out = {}
    rows = passk[passk["model"] == model]
    for s in SEEDS:
        d = []
        for tk in (2, 4):
            a = rows[(rows["algo"] == "rspo_pass") & (rows["train_k"] == tk) & (rows["seed"] == s)]
            b = rows[(rows["algo"] == "baseline") & (rows["train_k"] == tk) & (rows["seed"] == s)]
            if len(a) and len(b):
                d.append(np.mean(a.sort_values("k")["value"].to_numpy() - b.sort_values("k")["value"].to_numpy()))
        if d:
            out[s] = float(np.mean(d))
    return out


def interval(v) -> tuple[float, float, float]:
    v = np.asarray(v, dtype=float)
    h = student_t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    return v.mean(), v.mean() - h, v.mean() + h


def sd_of(row) -> float:
    """The sample sd of a row's per-seed values, from its interval (per_seed is printed to 4 decimals only)."""
    s = row["n_seeds"]
    return (row["ci_high"] - row["ci_low"]) / 2 * np.sqrt(s) / student_t.ppf(0.975, s - 1)


def mc_directional(effect: float, sd: float, s: int, seed: int = 0) -> float:
    """Share of S draws from N(effect, sd^2) whose 95% t-interval lies above 0."""
    x = np.random.default_rng(seed).normal(effect, sd, size=(MC_REPS, s))
    h = student_t.ppf(0.975, s - 1) * x.std(axis=1, ddof=1) / np.sqrt(s)
    return float(np.mean(x.mean(axis=1) - h > 0))


def mc_equivalence(diff: float, sd: float, s: int, margin: float, seed: int = 1) -> float:
    x = np.random.default_rng(seed).normal(diff, sd, size=(MC_REPS, s))
    m, h = x.mean(axis=1), student_t.ppf(0.975, s - 1) * x.std(axis=1, ddof=1) / np.sqrt(s)
    return float(np.mean((m - h >= -margin) & (m + h <= margin)))


# ----------------------------------------------------------------------------------------------------------------------
# rows per base model and pooled


def test_every_claim_on_two_models_has_the_pooled_row_then_one_per_model(two):
    _, _, claims = two
    ids = list(claims.index)
    assert list(claims.columns) == list(CLAIM_COLUMNS)[1:]
    for cid in ("C1", "C2", "C3", "C4", "C5", "C8", "C10"):  # main and grpo are on ta and tb
        i = ids.index(cid)
        assert ids[i:i + 3] == [cid, f"{cid}@ta", f"{cid}@tb"], cid
        assert [claims.loc[x, "models"] for x in ids[i:i + 3]] == ["ta;tb", "ta", "tb"], cid
        assert claims.loc[cid, "statistic"].endswith("; pooled: per training seed, the mean over the base models")
    for cid in ("C6", "C7", "C9"):  # no such family: one row
        assert claims.loc[cid, "verdict"] == "not run" and f"{cid}@ta" not in ids
    assert [x for x in ids if x.startswith("U")] == ["U1", "U1@ta", "U1@tb", "U2", "U2@ta", "U2@tb"]
    assert (claims.loc[["U1", "U1@ta", "U1@tb"], "verdict"] == "not run").all()  # hp has no RSPO cells
    assert claims.loc["U2@tb", "text"] == "rs_grpo+beta=4.0 above the baseline at every training k (rs_grpo+beta=4.0 " \
                                          "ignores k)"
    # rs_grpo trains at k 1 (BASE + 0.01 + wobble), held against the baseline at k 2 (BASE + 0.02 + wobble)
    assert (claims.loc[["U2", "U2@ta", "U2@tb"], "per_seed"] == "0:-0.0100;1:-0.0100;2:-0.0100").all()


def test_c1_per_model_and_pooled_by_the_documented_rule(two):
    _, t, claims = two
    by_model = {m: c1_by_hand(t["pass@k"], m) for m in MODELS}
    assert by_model["ta"] == pytest.approx(RSPO_GAIN["ta"]) and by_model["tb"] == pytest.approx(RSPO_GAIN["tb"])
    pooled = {s: (by_model["ta"][s] + by_model["tb"][s]) / 2 for s in SEEDS}  # per training seed, mean over models
    for cid, want, verdict in (("C1@ta", by_model["ta"], "reproduced"), ("C1@tb", by_model["tb"], "inconclusive"),
                               ("C1", pooled, "reproduced")):
        row = claims.loc[cid]
        assert per_seed(row) == pytest.approx(want, abs=5e-5) and row["n_seeds"] == 3, cid
        v = [want[s] for s in SEEDS]
        assert (row["mean"], row["ci_low"], row["ci_high"]) == pytest.approx(interval(v), abs=1e-9), cid
        assert row["verdict"] == verdict, cid
    assert claims.loc["C1", "note"] == "verdict differs between base models: ta reproduced, tb inconclusive"
    assert claims.loc["C1@ta", "note"] == ""
    sd_tb = np.std([RSPO_GAIN["tb"][s] for s in SEEDS], ddof=1)
    assert claims.loc["C1@tb", "note"] == (f"an effect of {claims.loc['C1@tb', 'mde']:+.4f} or more would be "
                                           f"reproduced with 80% power (3 seeds, sd {sd_tb:.4f})")
    c8 = claims.loc[["C8", "C8@ta", "C8@tb"]]  # C8 = C1 on the contamination benchmarks (b1 here)
    pd.testing.assert_frame_equal(c8.drop(columns=["text", "statistic"]).set_axis(["C1", "C1@ta", "C1@tb"])
                                  .rename_axis("claim"),
                                  claims.loc[["C1", "C1@ta", "C1@tb"]].drop(columns=["text", "statistic"]))


def test_every_pooled_row_is_the_mean_of_its_model_rows(two):
    _, _, claims = two
    for cid in ("C1", "C2", "C3", "C4", "C5", "C8", "C10", "U2"):
        a, b = per_seed(claims.loc[f"{cid}@ta"]), per_seed(claims.loc[f"{cid}@tb"])
        assert set(a) == set(b) == set(SEEDS), cid
        assert per_seed(claims.loc[cid]) == pytest.approx({s: (a[s] + b[s]) / 2 for s in SEEDS}, abs=1e-4), cid
        verdicts = {claims.loc[f"{cid}@ta", "verdict"], claims.loc[f"{cid}@tb", "verdict"]}
        assert ("verdict differs between base models" in claims.loc[cid, "note"]) == (len(verdicts) > 1), cid


def test_a_seed_missing_on_one_model_leaves_the_pool(two):
    m, _, _ = two
    c = claims_table(tables(m, drop=lambda c: c["model"] == "tb" and c["seed"] == 2), m).set_index("claim")
    assert c.loc["C1@tb", "seeds"] == "0;1" and c.loc["C1@ta", "seeds"] == "0;1;2"
    assert c.loc["C1", "seeds"] == "0;1" and c.loc["C1", "n_seeds"] == 2
    assert per_seed(c.loc["C1"]) == pytest.approx({s: (RSPO_GAIN["ta"][s] + RSPO_GAIN["tb"][s]) / 2 for s in (0, 1)},
                                                  abs=5e-5)
    assert "seed(s) 2 left out of the pool: not on every pooled model" in c.loc["C1", "note"]


def test_a_model_without_values_is_left_out_of_the_pool(two):
    m, _, claims = two
    c = claims_table(tables(m, drop=lambda c: c["model"] == "tb" and c["algo"] == "rspo_pass"), m)
    c = c.set_index("claim")
    assert c.loc["C1@tb", "verdict"] == "not run" and "no rows in the tables yet" in c.loc["C1@tb", "note"]
    assert c.loc["C1", "per_seed"] == c.loc["C1@ta", "per_seed"] == claims.loc["C1@ta", "per_seed"]
    assert c.loc["C1", "note"] == "pooled over ta only: no value on tb"  # not run is no differing verdict
    assert c.loc["C1", "verdict"] == "reproduced"


def test_one_model_is_one_row_identical_to_that_models_row_of_two(two):
    _, t, claims = two
    one = {"families": {name: {**fam, "model": "ta"} for name, fam in CONFIG["families"].items()},
           "contamination": CONFIG["contamination"]}
    m1 = manifest_for_config(one)
    c1 = claims_table({k: v[v["model"] == "ta"] for k, v in t.items()}, m1).set_index("claim")
    assert list(c1.index) == [f"C{i}" for i in range(1, 11)] + ["U1", "U2"]  # one row per claim, as before
    for cid in ("C1", "C2", "C3", "C4", "C5", "C8", "C10", "U2"):  # the same code path as the per-model rows
        pd.testing.assert_series_equal(c1.loc[cid], claims.loc[f"{cid}@ta"], check_names=False)
    assert (c1["models"].replace("", "ta") == "ta").all()


# ----------------------------------------------------------------------------------------------------------------------
# power


def test_mde_of_the_rows_has_80_percent_power(two):
    _, _, claims = two
    for cid in ("C1", "C1@tb", "C3@ta", "C4"):  # directional: the interval above 0 at a true mean of mde
        row = claims.loc[cid]
        sd = sd_of(row)
        assert row["mde"] == pytest.approx(detectable_effect(sd, 3), rel=1e-9), cid
        assert mc_directional(row["mde"], sd, 3) == pytest.approx(0.8, abs=MC_TOL), cid
    assert claims.loc["C4", "note"].endswith(f"an effect of {claims.loc['C4', 'mde']:+.4f} or more would be "
                                             f"reproduced with 80% power (3 seeds, sd 0.0176)")
    for cid in ("C10", "C10@ta", "C10@tb"):  # equivalence: the interval inside +-0.05 at a true difference of mde
        row = claims.loc[cid]
        sd = sd_of(row)
        assert row["mde"] < 0.05 and row["verdict"] == "reproduced", cid
        assert mc_equivalence(row["mde"], sd, 3, 0.05) == pytest.approx(0.8, abs=MC_TOL), cid
    assert np.isnan(claims.loc["C7", "mde"])  # not run: no mde


@pytest.mark.parametrize("s, multiple", [(2, 11.5499), (3, 3.2640), (4, 2.1279), (5, 1.6820)])
def test_detectable_effect_is_the_exact_small_sample_answer(s, multiple):
    assert detectable_effect(0.01, s) == pytest.approx(multiple * 0.01, abs=1e-6)  # docs/claims.md's table
    assert mc_directional(detectable_effect(0.01, s), 0.01, s, seed=s) == pytest.approx(0.8, abs=MC_TOL)
    normal = 2.8016 * 0.01 / np.sqrt(s)  # (z_0.975 + z_0.8) sd / sqrt(S): too small with few seeds
    assert mc_directional(normal, 0.01, s, seed=s) < 0.75
    assert np.isnan(detectable_effect(0.01, 1)) and detectable_effect(0.0, 3) == 0.0


@pytest.mark.parametrize("s, sd, diff", [(2, 0.002, 0.0), (3, 0.01, 0.02), (4, 0.02, 0.0), (5, 0.015, -0.01)])
def test_equivalence_power_and_bound_against_monte_carlo(s, sd, diff):
    assert equivalence_power(diff, sd, s, 0.05) == pytest.approx(mc_equivalence(diff, sd, s, 0.05), abs=MC_TOL)
    bound = equivalence_bound(sd, s, 0.05)
    if np.isnan(bound):
        assert equivalence_power(0.0, sd, s, 0.05) < 0.8
    else:
        assert mc_equivalence(bound, sd, s, 0.05, seed=s) == pytest.approx(0.8, abs=MC_TOL)


def test_equivalence_bound_is_empty_when_even_no_difference_falls_short():
    assert equivalence_power(0.0, 0.05, 3, 0.05) < 0.8 and np.isnan(equivalence_bound(0.05, 3, 0.05))
    assert equivalence_bound(0.0, 3, 0.05) == 0.05 and np.isnan(equivalence_bound(0.01, 1, 0.05))


def test_pool_models_rule():
    pooled, models, left = pool_models({"a": {0: 1.0, 1: 2.0, 2: 3.0}, "b": {0: 3.0, 1: 4.0}, "c": {}})
    assert pooled == {0: 2.0, 1: 3.0} and models == ["a", "b"] and left == [2]
    assert pool_models({"a": {}, "b": {}}) == ({}, [], [])
