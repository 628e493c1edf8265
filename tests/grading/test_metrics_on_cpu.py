"""analysis.metrics: unbiased pass@k / max@k against brute-force subset enumeration, stability, scoring files."""

from __future__ import annotations

import csv
import itertools
import json
import math
from fractions import Fraction
from math import comb

import numpy as np
import pytest

from analysis import metrics as M


def brute_max_at_k(rewards, k) -> Fraction:
    """Average over every k-subset of the subset's max, exactly."""
    subsets = list(itertools.combinations([Fraction(r) for r in rewards], k))
    return sum(max(s) for s in subsets) / len(subsets)


def exact_max_at_k(rewards, k) -> Fraction:
    """sum_i R_(i) C(i-1,k-1) / C(n,k) in exact arithmetic (reference for large n)."""
    r = sorted(Fraction(x) for x in rewards)
    n = len(r)
    return sum(r[i - 1] * comb(i - 1, k - 1) for i in range(k, n + 1)) / comb(n, k)


@pytest.mark.parametrize("n", range(1, 9))
def test_pass_at_k_matches_enumeration(n):
    for c in range(n + 1):
        flags = [1] * c + [0] * (n - c)
        for k in range(1, n + 1):
            assert M.pass_at_k(n, c, k) == pytest.approx(float(brute_max_at_k(flags, k)), abs=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_max_at_k_matches_enumeration_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = 8
    rewards = rng.choice([0.0, 0.25, 0.5, 0.9, 1.0], size=n)  # ties on purpose
    for k in range(1, n + 1):
        assert M.max_at_k(rewards, k) == pytest.approx(float(brute_max_at_k(rewards, k)), abs=1e-12)


def test_pass_equals_max_on_binary_and_max1_is_mean():
    rng = np.random.default_rng(1)
    for n in (1, 5, 16, 64):
        flags = rng.integers(0, 2, n)
        for k in sorted({1, min(2, n), n // 2 or 1, n}):
            assert M.max_at_k(flags, k) == pytest.approx(M.pass_at_k(n, int(flags.sum()), k), abs=1e-12)
        r = rng.random(n)
        assert M.max_at_k(r, 1) == pytest.approx(r.mean(), abs=1e-12)
        assert M.max_at_k(r, n) == pytest.approx(r.max(), abs=1e-12)


def test_stable_at_n1024_k512():
    n, k = 1024, 512
    rng = np.random.default_rng(2)
    r = rng.random(n)
    assert M.max_at_k(r, k) == pytest.approx(float(exact_max_at_k(r, k)), rel=1e-10)
    for c in (0, 1, 3, 100, 511, 512, 513, 1024):
        ref = 1 - Fraction(comb(n - c, k), comb(n, k))
        flags = np.r_[np.ones(c), np.zeros(n - c)]
        assert M.pass_at_k(n, c, k) == pytest.approx(float(ref), rel=1e-10, abs=1e-15)
        assert M.max_at_k(flags, k) == pytest.approx(float(ref), rel=1e-10, abs=1e-15)
    w = M.max_at_k_weights(n, k)
    assert np.all(np.isfinite(w)) and w.sum() == pytest.approx(1.0, abs=1e-12) and np.all(w[: k - 1] == 0)


def test_bad_arguments():
    with pytest.raises(ValueError, match="k must be"):
        M.pass_at_k(4, 1, 0)
    with pytest.raises(ValueError, match="k must be"):
        M.pass_at_k(4, 1, 5)
    with pytest.raises(ValueError, match="c must be"):
        M.pass_at_k(4, 5, 1)
    with pytest.raises(ValueError, match="k must be"):
        M.max_at_k([0.1, 0.2], 3)
    with pytest.raises(ValueError, match="finite"):
        M.max_at_k([0.1, float("nan")], 1)
    with pytest.raises(ValueError, match="empty"):
        M.max_at_k([], 1)
    with pytest.raises(ValueError, match="0/1"):
        M.METRICS["pass@k"].fn(np.array([0.5, 1.0]), 1)


def test_registry():
    assert set(M.METRICS) >= {"pass@k", "max@k"}
    spec = M.get_metric("max@k")
    assert spec.higher_is_better and spec.aggregation == "mean" and spec.field == "reward_max"
    assert M.get_metric("pass@k").field == "correct"
    with pytest.raises(ValueError, match="pass@k"):
        M.get_metric("acc")
    with pytest.raises(ValueError, match="already registered"):
        M.register_metric(name="pass@k", field="correct")(lambda v, k: 0.0)
    with pytest.raises(ValueError, match="aggregation"):
        M.register_metric(name="x@k", aggregation="median", field="correct")


def test_default_ks():
    assert M.default_ks(1) == [1]
    assert M.default_ks(16) == [1, 2, 4, 8, 16]
    assert M.default_ks(24) == [1, 2, 4, 8, 16, 24]


def test_bootstrap_ci_contains_point_and_is_seeded():
    rng = np.random.default_rng(3)
    v = rng.random((40, 3))
    lo, hi = M.bootstrap_ci(v, n_boot=500, seed=7)
    point = v.mean(0)
    assert np.all(lo <= point) and np.all(point <= hi) and np.all(lo < hi)
    lo2, hi2 = M.bootstrap_ci(v, n_boot=500, seed=7)
    assert np.array_equal(lo, lo2) and np.array_equal(hi, hi2)
    lo3, _ = M.bootstrap_ci(v, n_boot=500, seed=8)
    assert not np.array_equal(lo, lo3)
    one = M.bootstrap_ci(v[:1], n_boot=50, seed=0)
    assert np.allclose(one[0], v[0]) and np.allclose(one[1], v[0])


def _verified_rows(rng, bench, n_problems, n_per, p_correct):
    rows = []
    for p in range(n_problems):
        n = n_per(p)
        for i in range(n):
            c = bool(rng.random() < p_correct[p])
            rows.append({"benchmark": bench, "problem_id": f"{bench}-{p}", "sample_idx": i, "correct": c,
                         "reward_max": (1 - 0.5 * rng.random()) if c else 0.0, "grader_version": "1.0"})
    return rows


@pytest.fixture
def verified(tmp_path):
    rng = np.random.default_rng(4)
    rows = _verified_rows(rng, "aime", 12, lambda p: 16, rng.random(12))
    rows += _verified_rows(rng, "toy", 5, lambda p: 6 if p == 0 else 8, rng.random(5))  # unequal n
    path = tmp_path / "verified.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, rows


def test_score_files(verified, tmp_path):
    path, rows = verified
    res = M.score(path, tmp_path / "m" / "metrics.json", tmp_path / "m" / "metrics.csv", n_boot=200, seed=0)
    with open(tmp_path / "m" / "metrics.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == M.CSV_COLUMNS
        table = list(reader)
    assert json.loads((tmp_path / "m" / "metrics.json").read_text()) == res
    aime = [t for t in table if t["benchmark"] == "aime" and t["metric"] == "pass@k"]
    assert [int(t["k"]) for t in aime] == [1, 2, 4, 8, 16]
    assert {t["metric"] for t in table} == {"pass@k", "max@k"}
    assert all(t["n_problems"] == "12" and t["n_samples"] == str(12 * 16) and t["grader_version"] == "1.0"
               for t in table if t["benchmark"] == "aime")
    # values equal the per-problem estimators averaged by hand
    probs = {}
    for r in rows:
        if r["benchmark"] == "aime":
            probs.setdefault(r["problem_id"], []).append(r)
    for k in (1, 4, 16):
        want_p = np.mean([M.pass_at_k(16, sum(x["correct"] for x in v), k) for v in probs.values()])
        want_m = np.mean([M.max_at_k([x["reward_max"] for x in v], k) for v in probs.values()])
        assert res["benchmarks"]["aime"]["metrics"]["pass@k"][str(k)]["value"] == pytest.approx(want_p)
        assert res["benchmarks"]["aime"]["metrics"]["max@k"][str(k)]["value"] == pytest.approx(want_m)
    for t in table:
        assert float(t["ci_low"]) <= float(t["value"]) + 1e-12 and float(t["value"]) <= float(t["ci_high"]) + 1e-12
    # curves are monotone in k
    vals = [float(t["value"]) for t in aime]
    assert vals == sorted(vals)
    # unequal n: k only up to the smallest n, and the JSON says so
    toy = res["benchmarks"]["toy"]
    assert toy["ks"] == [1, 2, 4, 6] and toy["n_per_problem"] == {"min": 6, "max": 8} and "6" in toy["note"]
    # deterministic for a seed
    res2 = M.score(path, tmp_path / "b.json", tmp_path / "b.csv", n_boot=200, seed=0)
    assert res2["benchmarks"] == res["benchmarks"]
    assert (tmp_path / "b.csv").read_text() == (tmp_path / "m" / "metrics.csv").read_text()


def test_score_errors_and_cli(verified, tmp_path):
    path, _ = verified
    with pytest.raises(ValueError, match="exceeds"):
        M.score(path, tmp_path / "a.json", tmp_path / "a.csv", ks=[7, 8])  # toy has a problem with n=6
    with pytest.raises(ValueError, match="ks must be"):
        M.score(path, tmp_path / "a.json", tmp_path / "a.csv", ks=[0, 1])
    with pytest.raises(ValueError, match="n_boot"):
        M.score(path, tmp_path / "a.json", tmp_path / "a.csv", n_boot=-1)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"benchmark": "x", "problem_id": "1"}) + "\n")
    with pytest.raises(ValueError, match="reward_max"):
        M.score(bad, tmp_path / "a.json", tmp_path / "a.csv")
    dup = tmp_path / "dup.jsonl"
    dup.write_text(path.read_text() + path.read_text().splitlines()[0] + "\n")
    with pytest.raises(ValueError, match="duplicate sample"):
        M.score(dup, tmp_path / "a.json", tmp_path / "a.csv")
    assert not (tmp_path / "a.json").exists()
    assert M.main(["--verified", str(path), "--out-json", str(tmp_path / "c.json"), "--out-csv",
                   str(tmp_path / "c.csv"), "--n-boot", "50", "--ks", "1,2,6,16"]) == 0
    res = json.loads((tmp_path / "c.json").read_text())
    assert res["benchmarks"]["aime"]["ks"] == [1, 2, 6, 16] and res["n_boot"] == 50
    assert res["benchmarks"]["toy"]["ks"] == [1, 2, 6] and res["benchmarks"]["toy"]["ks_dropped"] == [16]
    assert not math.isnan(res["benchmarks"]["aime"]["metrics"]["max@k"]["6"]["ci_low"])
