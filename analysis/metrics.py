"""Unbiased Pass@k and Max@k from n samples per problem, with bootstrap confidence intervals over problems.

Estimators (per problem, n samples, k <= n)
-------------------------------------------
pass@k = 1 - C(n-c, k) / C(n, k)                       (Chen et al. 2021; c = number correct)
       = 1 - prod_{i=n-c+1}^{n} (1 - k/i)              (stable product form; 1.0 when n - c < k)
max@k  = sum_{i=1}^{n} R_(i) * C(i-1, k-1) / C(n, k)   (R_(1) <= ... <= R_(n) ascending; the probability that the
                                                        i-th smallest is the max of a uniform k-subset)
Both are the exact average over all C(n, k) subsets of size k of the subset's max, hence unbiased for
E[max(R_1..R_k)]; on 0/1 rewards max@k == pass@k, and max@1 is the mean. Binomials are taken in log space (lgamma),
so n = 1024, k = 512 is fine.

Benchmark score = mean over problems of the per-problem estimate; 95% CI = percentile bootstrap over problems
(resample problems with replacement; per-problem values are computed once and reused; seeded numpy Generator).
Problems with different sample counts: each problem uses its own n; k runs only up to the smallest n.

Metric registry after lm-eval: ``@register_metric(name=..., higher_is_better=..., aggregation=...)``; the CSV's
``metric`` column holds the registry names ("pass@k", "max@k").

CLI: ``python -m analysis.metrics --verified V --out-json J --out-csv C [--n-boot 1000] [--seed 0] [--ks 1,4,16]``
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import os
import sys
import zlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Sequence

import numpy as np

from rspo_core.atomic import atomic_open, write_text_atomic

log = logging.getLogger(__name__)

CSV_COLUMNS = ("benchmark", "metric", "k", "value", "ci_low", "ci_high", "n_problems", "n_samples", "grader_version")


# ---------------------------------------------------------------------------------------------------------------------
# Estimators


def _check_nk(n: int, k: int) -> None:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be an int >= 1 (samples per problem), got {n!r}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1 or k > n:
        raise ValueError(f"k must be an int with 1 <= k <= n={n}, got {k!r}")


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct: 1 - C(n-c,k)/C(n,k), in the stable product form."""
    _check_nk(n, k)
    if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or not 0 <= c <= n:
        raise ValueError(f"c must be an int with 0 <= c <= n={n}, got {c!r}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1, dtype=np.float64)))


def max_at_k_weights(n: int, k: int) -> np.ndarray:
    """w_i = C(i-1, k-1) / C(n, k) for i = 1..n (zero for i < k), shape (n,), float64, sums to 1.

    The weight of the i-th smallest of n rewards in the unbiased max@k estimate; log-space binomials.
    Cached per (n, k); the returned array is read-only.
    """
    _check_nk(n, k)
    return _weights(int(n), int(k))


@lru_cache(maxsize=1024)
def _weights(n: int, k: int) -> np.ndarray:
    i = np.arange(1, n + 1)
    w = np.zeros(n, dtype=np.float64)
    lg = np.vectorize(math.lgamma, otypes=[np.float64])
    ii = i[k - 1:]  # i >= k
    log_c_num = lg(ii) - lg(k) - lg(ii - k + 1)  # log C(i-1, k-1)
    log_c_den = math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)  # log C(n, k)
    w[k - 1:] = np.exp(log_c_num - log_c_den)
    # the weights sum to 1 exactly (sum_{i>=k} C(i-1,k-1) = C(n,k)); renormalising removes the rounding of the
    # large lgamma values that all weights share (~1e-12 at n=1024 -> ~1e-15)
    w /= w.sum()
    w.flags.writeable = False
    return w


def _as_rewards(rewards) -> np.ndarray:
    r = np.asarray(rewards, dtype=np.float64).reshape(-1)
    if r.size == 0:
        raise ValueError("rewards is empty; need at least one sample")
    if not np.all(np.isfinite(r)):
        bad = r[~np.isfinite(r)][0]
        raise ValueError(f"rewards must be finite numbers, got {bad!r}")
    return r


def max_at_k(rewards: Sequence[float], k: int) -> float:
    """Unbiased max@k of one problem's n rewards: sum_i R_(i) C(i-1,k-1)/C(n,k) (ascending order statistics)."""
    r = _as_rewards(rewards)
    _check_nk(r.size, k)
    return float(np.sort(r) @ max_at_k_weights(r.size, k))


# ---------------------------------------------------------------------------------------------------------------------
# Registry (after lm-eval's register_metric / register_aggregation)


AGGREGATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {}


def register_aggregation(name: str):
    """Register an aggregation over problems: fn(values (..., P)) -> (...)."""
    def deco(fn):
        if name in AGGREGATIONS and AGGREGATIONS[name] is not fn:
            raise ValueError(f"aggregation {name!r} is already registered")
        AGGREGATIONS[name] = fn
        return fn
    return deco


@register_aggregation("mean")
def mean(values: np.ndarray) -> np.ndarray:
    """Mean over the last axis (problems)."""
    return np.mean(values, axis=-1)


@dataclass(frozen=True)
class MetricSpec:
    """A per-problem @k metric: fn(values of one problem (n,), k) -> float; ``field`` is the verified.jsonl column."""

    name: str
    fn: Callable[[np.ndarray, int], float]
    field: str
    higher_is_better: bool
    aggregation: str


METRICS: dict[str, MetricSpec] = {}


def register_metric(name: str, *, higher_is_better: bool = True, aggregation: str = "mean", field: str):
    """Decorator registering a per-problem metric; a different function claiming a taken name raises ValueError."""
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {aggregation!r}; expected one of {', '.join(AGGREGATIONS)}")

    def deco(fn):
        if name in METRICS and METRICS[name].fn is not fn:
            raise ValueError(f"metric {name!r} is already registered to {METRICS[name].fn.__name__}")
        METRICS[name] = MetricSpec(name, fn, field, higher_is_better, aggregation)
        return fn
    return deco


def get_metric(name: str) -> MetricSpec:
    """The registered metric, or ValueError listing the valid names."""
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; expected one of {', '.join(METRICS)}")
    return METRICS[name]


@register_metric(name="pass@k", higher_is_better=True, aggregation="mean", field="correct")
def pass_at_k_metric(correct: np.ndarray, k: int) -> float:
    """pass@k of one problem from its (n,) 0/1 correctness flags."""
    c = np.asarray(correct)
    if c.dtype != bool and not np.isin(c, (0, 1)).all():
        raise ValueError(f"pass@k needs 0/1 correctness values, got {np.unique(c)[:5]}")
    return pass_at_k(int(c.size), int(np.count_nonzero(c)), k)


@register_metric(name="max@k", higher_is_better=True, aggregation="mean", field="reward_max")
def max_at_k_metric(rewards: np.ndarray, k: int) -> float:
    """max@k of one problem from its (n,) rewards."""
    return max_at_k(rewards, k)


# ---------------------------------------------------------------------------------------------------------------------
# Curves and bootstrap


def default_ks(n: int) -> list[int]:
    """1, 2, 4, ... up to n, plus n itself."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    ks, k = [], 1
    while k <= n:
        ks.append(k)
        k *= 2
    if ks[-1] != n:
        ks.append(n)
    return ks


def per_problem_values(groups: Sequence[np.ndarray], ks: Sequence[int], metric: str) -> np.ndarray:
    """(P, K) matrix of a metric's per-problem estimates; group p has its own n_p >= max(ks)."""
    spec = get_metric(metric)
    return np.array([[spec.fn(g, int(k)) for k in ks] for g in groups], dtype=np.float64).reshape(len(groups), len(ks))


def bootstrap_ci(values: np.ndarray, *, n_boot: int = 1000, seed: int | Sequence[int] = 0, alpha: float = 0.05,
                 aggregation: str = "mean") -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap CI of the aggregate over problems, vectorised over columns.

    values: (P, K) per-problem estimates. Resamples problem indices (n_boot, P) once and reuses them for every
    column. Returns (low, high), each (K,). n_boot = 0 -> (nan, nan).
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2 or v.shape[0] < 1:
        raise ValueError(f"values must be (P, K) with P >= 1, got shape {v.shape}")
    if not isinstance(n_boot, int) or n_boot < 0:
        raise ValueError(f"n_boot must be an int >= 0, got {n_boot!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if n_boot == 0:
        nan = np.full(v.shape[1], np.nan)
        return nan, nan.copy()
    agg = AGGREGATIONS[aggregation]
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, v.shape[0], size=(n_boot, v.shape[0]))  # (B, P)
    boot = agg(np.moveaxis(v[idx], 2, 1))  # v[idx]: (B, P, K) -> (B, K, P) -> (B, K)
    low, high = np.quantile(boot, [alpha / 2, 1 - alpha / 2], axis=0)
    return low, high


def _bench_seed(seed: int, benchmark: str) -> list[int]:
    """Generator seed per benchmark, independent of the order benchmarks appear in."""
    return [int(seed), zlib.crc32(benchmark.encode())]


# ---------------------------------------------------------------------------------------------------------------------
# Files


def _read_verified(path: str | os.PathLike) -> list[dict]:
    from rspo_core.jsonl import read_jsonl

    rows = read_jsonl(path)
    if not rows:
        raise ValueError(f"{path} has no rows; nothing to score")
    need = ("benchmark", "problem_id", "correct", "reward_max")
    for j, r in enumerate(rows):
        missing = [c for c in need if c not in r]
        if missing:
            raise ValueError(f"{path}: row {j} lacks {missing}; expected verified.jsonl rows with {list(need)}")
    return rows


def check_samples_per_problem(rows: Sequence[dict], n_expected: int) -> None:
    """ValueError naming the first short (or long) problem unless every (benchmark, problem) has exactly n_expected
    rows: a lost line of a verified.jsonl would otherwise lower that problem's n and silently drop every k above it."""
    if isinstance(n_expected, bool) or not isinstance(n_expected, int) or n_expected < 1:
        raise ValueError(f"n_expected must be an int >= 1 (samples per problem), got {n_expected!r}")
    counts: dict[tuple[str, str], int] = {}
    for r in rows:
        key = (str(r["benchmark"]), str(r["problem_id"]))
        counts[key] = counts.get(key, 0) + 1
    bad = {key: c for key, c in counts.items() if c != n_expected}
    if bad:
        (bench, pid), c = sorted(bad.items())[0]
        raise ValueError(f"benchmark {bench!r} problem {pid!r} has {c} samples, expected {n_expected} "
                         f"({len(bad)} problem(s) with another count; lines lost from or added to verified.jsonl?)")


def score_rows(rows: Sequence[dict], *, ks: Sequence[int] | None = None, n_boot: int = 1000, seed: int = 0,
               metrics: Sequence[str] = ("pass@k", "max@k"), n_expected: int | None = None) -> tuple[dict, list[dict]]:
    """(metrics.json content, tidy CSV rows) for verified rows, per benchmark; see ``score``.

    n_expected: samples every problem must have (the evaluation's n); any other count is a ValueError before scoring
    (check_samples_per_problem). None accepts unequal counts (k then stops at the smallest n, said in the JSON).
    """
    if n_expected is not None:
        check_samples_per_problem(rows, n_expected)
    by_bench: dict[str, dict[str, list[dict]]] = {}
    seen: set[tuple[str, str, int]] = set()
    for r in rows:
        if r.get("sample_idx") is not None:  # a sample counted twice would bias every estimate
            key = (str(r["benchmark"]), str(r["problem_id"]), int(r["sample_idx"]))
            if key in seen:
                raise ValueError(f"duplicate sample: benchmark {key[0]!r}, problem {key[1]!r}, sample_idx {key[2]}")
            seen.add(key)
        by_bench.setdefault(str(r["benchmark"]), {}).setdefault(str(r["problem_id"]), []).append(r)
    versions = sorted({str(r.get("grader_version", "unknown")) for r in rows})
    grader_version = ",".join(versions)
    if len(versions) > 1:
        log.warning("rows were graded by several grader versions: %s", grader_version)
    out = {"grader_version": grader_version, "n_boot": n_boot, "seed": seed,
           "ci": "95% percentile bootstrap over problems",
           "estimators": {m: METRICS[m].fn.__doc__.strip().split("\n")[0] for m in metrics}, "benchmarks": {}}
    table: list[dict] = []
    for bench in sorted(by_bench):
        problems = by_bench[bench]
        pids = sorted(problems)
        ns = np.array([len(problems[p]) for p in pids])
        n_min, n_max = int(ns.min()), int(ns.max())
        if ks is None:
            bench_ks, dropped = default_ks(n_min), []
        else:  # one ks list serves benchmarks with different n: keep the ks this benchmark supports, say so
            asked = sorted({int(k) for k in ks})
            bench_ks, dropped = [k for k in asked if k <= n_min], [k for k in asked if k > n_min]
            if not bench_ks:
                raise ValueError(f"benchmark {bench!r}: every k in {asked} exceeds {n_min}, the smallest number of "
                                 f"samples per problem")
        entry = {"n_problems": len(pids), "n_samples": int(ns.sum()), "n_per_problem": {"min": n_min, "max": n_max},
                 "ks": bench_ks, "metrics": {}}
        statuses = [str(r["grade_status"]) for p in pids for r in problems[p] if "grade_status" in r]
        if statuses:  # how the verdicts were reached (timeouts and errors count as incorrect)
            entry["grade_status"] = {s: statuses.count(s) for s in sorted(set(statuses))}
        if dropped:
            entry["ks_dropped"] = dropped
            log.warning("%s: ks %s exceed the smallest n per problem (%d) and are not reported", bench, dropped, n_min)
        if n_min != n_max:
            entry["note"] = (f"problems have between {n_min} and {n_max} samples: each problem's estimate uses its "
                             f"own n; k is limited to the smallest n ({n_min})")
            log.warning("%s: unequal samples per problem (%d..%d); k limited to %d", bench, n_min, n_max, n_min)
        for m in metrics:
            spec = get_metric(m)
            groups = []
            for p in pids:
                vals = [r[spec.field] for r in problems[p]]
                if any(v is None for v in vals):
                    raise ValueError(f"benchmark {bench!r} problem {p!r}: {spec.field} is missing in some rows")
                groups.append(np.asarray(vals, dtype=np.float64))
            v = per_problem_values(groups, bench_ks, m)  # (P, K)
            point = AGGREGATIONS[spec.aggregation](v.T)  # (K,)
            low, high = bootstrap_ci(v, n_boot=n_boot, seed=_bench_seed(seed, bench), aggregation=spec.aggregation)
            entry["metrics"][m] = {
                str(k): {"value": float(point[j]), "ci_low": float(low[j]), "ci_high": float(high[j])}
                for j, k in enumerate(bench_ks)}
            for j, k in enumerate(bench_ks):
                table.append({"benchmark": bench, "metric": m, "k": int(k), "value": float(point[j]),
                              "ci_low": float(low[j]), "ci_high": float(high[j]), "n_problems": len(pids),
                              "n_samples": int(ns.sum()), "grader_version": grader_version})
        out["benchmarks"][bench] = entry
    return out, table


def score(verified_path: str | os.PathLike, out_json: str | os.PathLike, out_csv: str | os.PathLike, *,
          ks: Sequence[int] | None = None, n_boot: int = 1000, seed: int = 0, n_expected: int | None = None) -> dict:
    """Score a verified.jsonl: pass@k (from ``correct``) and max@k (from ``reward_max``) curves per benchmark.

    n_expected: the number of samples every problem must have (an error otherwise: see score_rows).
    ks: None -> 1, 2, 4, ... up to the smallest per-problem n, plus that n; given ks above a benchmark's smallest n
    are left out for that benchmark (listed under ``ks_dropped`` in the JSON). Writes metrics.json (the returned dict)
    and a tidy CSV with columns CSV_COLUMNS, both atomically.
    """
    if not isinstance(n_boot, int) or n_boot < 0:
        raise ValueError(f"n_boot must be an int >= 0, got {n_boot!r}")
    if ks is not None and (len(ks) == 0 or any(int(k) < 1 for k in ks)):
        raise ValueError(f"ks must be None or a non-empty list of ints >= 1, got {ks!r}")
    rows = _read_verified(verified_path)
    result, table = score_rows(rows, ks=ks, n_boot=n_boot, seed=seed, n_expected=n_expected)
    result["source"] = str(verified_path)

    write_text_atomic(out_json, json.dumps(result, indent=2) + "\n")
    with atomic_open(out_csv) as f:
        w = csv.DictWriter(f, fieldnames=list(CSV_COLUMNS))
        w.writeheader()
        w.writerows(table)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m analysis.metrics", description=__doc__.split("\n")[0])
    p.add_argument("--verified", required=True, help="verified.jsonl from analysis.verify")
    p.add_argument("--out-json", required=True)
    p.add_argument("--out-csv", required=True)
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (0: no CI)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ks", default=None, help="comma-separated k values (default: powers of 2 up to n, and n)")
    p.add_argument("--n-expected", type=int, default=None,
                   help="samples every problem must have (the evaluation's n); another count is an error")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    ks = [int(x) for x in a.ks.split(",")] if a.ks else None
    res = score(a.verified, a.out_json, a.out_csv, ks=ks, n_boot=a.n_boot, seed=a.seed, n_expected=a.n_expected)
    for bench, e in res["benchmarks"].items():
        pk = e["metrics"]["pass@k"]
        log.info("%s: %d problems, pass@1 %.4f, pass@%s %.4f", bench, e["n_problems"], pk["1"]["value"],
                 e["ks"][-1], pk[str(e["ks"][-1])]["value"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
