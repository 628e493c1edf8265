"""Benchmark every registered estimator: ``python -m rspo_patch.bench [--prompts 1024] [--ns 16 64 256 1024]``.

Times each estimator on a (P, n) reward tensor next to ``torch.sort`` of the same tensor (the floor for the Max@k
estimators, which sort every group) and, at small n, a Python loop over the paper's Algorithm 2
(rspo_patch.reference.algorithm2_weights). Prints a table of milliseconds per call and the ratio to torch.sort.
Rewards are 0/1 for the binary-only estimators and uniform(0, 1) (no ties) otherwise; ``--ties`` adds rows for the
non-binary estimators on rewards with ties (5 levels, like graded or length-penalised rewards where many are 0).
"""

from __future__ import annotations

import argparse
import time

import torch

from rspo_patch.estimators import ESTIMATORS
from rspo_patch.reference import algorithm2_weights


def time_call(fn, repeats: int) -> float:
    """Median wall time of fn() in milliseconds over ``repeats`` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return 1e3 * times[len(times) // 2]


def _time_estimators(rows: list[dict], n: int, k: int, repeats: int, continuous: torch.Tensor,
                     binary: torch.Tensor | None, suffix: str = "") -> None:
    """Append rows for torch.sort of ``continuous`` and every estimator (binary-only ones on ``binary``, skipped when
    it is None); k = min(k, n) capped so that n - k respects the estimator's n_minus_k."""
    sort_ms = time_call(lambda: torch.sort(continuous, dim=1, stable=True), repeats)
    rows.append({"estimator": "torch.sort" + suffix, "n": n, "ms": sort_ms, "ratio_to_sort": 1.0})
    for name, spec in ESTIMATORS.items():
        if spec.binary_only and binary is None:
            continue
        kk = min(k, n - (spec.n_minus_k or 0)) if spec.uses_k else 1
        R = binary if spec.binary_only else continuous
        ms = time_call(lambda: spec.fn(R, k=kk), repeats)
        rows.append({"estimator": name + suffix, "n": n, "ms": ms, "ratio_to_sort": ms / sort_ms})


def bench_table(prompts: int, ns: list[int], k: int, repeats: int, seed: int = 0, ties: bool = False) -> list[dict]:
    """Rows {estimator, n, ms, ratio_to_sort} for every registered estimator and n (k = min(k, n), k | n for baseline).

    With ``ties``, the non-binary estimators are also timed on rewards floor(5 u) / 4 (rows named "NAME (ties)"),
    against torch.sort of that tensor."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for n in ns:
        cont = torch.rand(prompts, n, generator=g)
        binary = (torch.rand(prompts, n, generator=g) < 0.3).float()
        _time_estimators(rows, n, k, repeats, cont, binary)
        if ties:
            tied = torch.floor(5 * torch.rand(prompts, n, generator=g)) / 4
            _time_estimators(rows, n, k, repeats, tied, None, suffix=" (ties)")
    return rows


def bench_algorithm2(ns: list[int], k: int, groups: int = 4, seed: int = 0) -> list[dict]:
    """Milliseconds per group of the plain-loop Algorithm 2 (floats) versus rspo_max on the same groups."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for n in ns:
        R = torch.rand(groups, n, generator=g, dtype=torch.float64)
        lists = R.tolist()
        kk = min(k, n)
        t0 = time.perf_counter()
        for r in lists:
            algorithm2_weights(r, kk)
        loop_ms = 1e3 * (time.perf_counter() - t0) / groups
        fast_ms = time_call(lambda: ESTIMATORS["rspo_max"].fn(R, k=kk), 5) / groups
        rows.append({"n": n, "k": kk, "algorithm2_ms_per_group": loop_ms, "rspo_max_ms_per_group": fast_ms})
    return rows


def format_table(rows: list[dict], ns: list[int]) -> str:
    """Markdown table: one line per estimator, 'ms (x sort)' per n."""
    names = list(dict.fromkeys(r["estimator"] for r in rows))
    cell = {(r["estimator"], r["n"]): r for r in rows}
    lines = ["| estimator | " + " | ".join(f"n={n}" for n in ns) + " |", "|---|" + "---|" * len(ns)]
    for name in names:
        vals = [f"{cell[name, n]['ms']:.2f} ms ({cell[name, n]['ratio_to_sort']:.1f}x)" for n in ns]
        lines.append(f"| {name} | " + " | ".join(vals) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=1024, help="P, prompts per batch")
    ap.add_argument("--ns", type=int, nargs="+", default=[16, 64, 256, 1024], help="group sizes n")
    ap.add_argument("--k", type=int, default=4, help="k for the estimators that use it (capped at n)")
    ap.add_argument("--repeats", type=int, default=7, help="timed calls per cell (median reported)")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    ap.add_argument("--alg2-ns", type=int, nargs="+", default=[8, 16, 32], help="n for the Algorithm 2 loop")
    ap.add_argument("--ties", action="store_true", help="also time the non-binary estimators on tied rewards")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, P={args.prompts}, k={args.k}, float32 input")
    rows = bench_table(args.prompts, args.ns, args.k, args.repeats, ties=args.ties)
    print(format_table(rows, args.ns))
    worst = max((r["ratio_to_sort"] for r in rows if r["n"] >= 64 and "(ties)" not in r["estimator"]),
                default=float("nan"))
    print(f"\nworst ratio to torch.sort at n >= 64: {worst:.2f}x (goal: <= 3x)")
    if args.ties:
        worst_ties = max((r["ratio_to_sort"] for r in rows if r["n"] >= 64 and "(ties)" in r["estimator"]),
                         default=float("nan"))
        print(f"worst ratio with tied rewards at n >= 64: {worst_ties:.2f}x")
    print("\nAlgorithm 2 as plain loops (per group) vs rspo_max:")
    print("| n | k | Algorithm 2 loop | rspo_max | speed-up |\n|---|---|---|---|---|")
    for r in bench_algorithm2(args.alg2_ns, args.k):
        print(f"| {r['n']} | {r['k']} | {r['algorithm2_ms_per_group']:.1f} ms | {r['rspo_max_ms_per_group']:.4f} ms | "
              f"{r['algorithm2_ms_per_group'] / r['rspo_max_ms_per_group']:.0f}x |")


if __name__ == "__main__":
    main()
