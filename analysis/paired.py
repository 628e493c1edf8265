"""Per-seed values and paired differences of the methods of a family: ``results/tables/paired.csv``.

For every family of the manifest with more than one seed (the default config's ``main`` and ``contamination``), every
benchmark, metric (pass@k / max@k) and evaluation k, and every pair of methods the paper compares:

    rspo_pass  - baseline   at the same training k and n   (Figure 6, claim C1)
    rspo_pass  - pg         at the same n                  (RSPO vs the risk-neutral objective)
    baseline   - pg         at the same n                  (the hitchhiking baseline vs pg)
    rspo_max   - baseline   at the same training k and n   (Max@k, Figure 11)

and, for every user's method of the family (a plugin estimator, or an estimator with hyperparameters: the manifest's
``methods`` block, analysis.manifest), the two comparisons of its claims rows (analysis.claims, docs/claims.md):

    method     - RSPO       at the same training k and n   (rspo_pass for the pass reward, rspo_max for the max reward)
    method     - baseline   at the same training k and n

(a k-free method, ``uses_k`` false in the manifest, trains at k 1: it is paired with the reference at each of the
reference's training ks, the row's train_k being the reference's). The row holds each seed's two values and their
difference (paired: same seed, hence same base model and the same evaluation seed; a seed where either cell is
missing is left out, and a pair with fewer than two common seeds gets no row), and the 95% t-interval over seeds of
the mean difference (``analysis.stats.t_interval``). Without a ``methods`` block the table is the paper's pairs only.

Columns: family, model (the base model: a family on several base models has rows for each), benchmark, metric, k,
method_a, method_b, train_k, n, seeds (``0;1;2``), values_a, values_b, diffs (``seed:value;...``), mean_diff, ci_low,
ci_high, n_seeds.
"""

from __future__ import annotations

import pandas as pd

from analysis.manifest import manifest_methods
from analysis.stats import constant_k, t_interval

# (better, worse, same training k?) pairs compared within a seed; pg ignores k (train_k 1)
PAIRS = (("rspo_pass", "baseline", True), ("rspo_pass", "pg", False), ("baseline", "pg", False),
         ("rspo_max", "baseline", True))
A_K_FREE = "a_k_free"  # third field of a pair: better ignores k (train_k 1), paired with worse at each of its ks
RSPO_FOR_REWARD = {"pass": "rspo_pass", "max": "rspo_max"}  # the RSPO a user's method is held against
PAIRED_COLUMNS = ("family", "model", "benchmark", "metric", "k", "method_a", "method_b", "train_k", "n", "seeds", "values_a",
                  "values_b", "diffs", "mean_diff", "ci_low", "ci_high", "n_seeds")


def _fmt(values) -> str:
    return ";".join(f"{v:.6g}" for v in values)


def _family_frame(metrics: pd.DataFrame, cells: list[str], benches: list[str]) -> pd.DataFrame:
    """Rows of ``metrics`` (pass@k + max@k rows, tidy) for the family's constant-k cells and benchmarks."""
    return metrics[metrics["cell"].isin(cells) & metrics["benchmark"].isin(benches) & constant_k(metrics)]


def method_pairs(methods: dict, algos) -> tuple:
    """The pairs of the user's methods among ``algos`` (a family's): (method, "rspo", mode), (method, "baseline",
    mode) for each algo of the manifest's methods block, in the family's order; "rspo" stands for RSPO_FOR_REWARD of
    the row's reward; mode True (same training k), or A_K_FREE where the manifest says the method ignores k."""
    out = []
    for algo in dict.fromkeys(algos):
        if algo in methods:
            mode = True if methods[algo].get("uses_k", True) else A_K_FREE
            out += [(algo, "rspo", mode), (algo, "baseline", mode)]
    return tuple(out)


def _aligned(ga: pd.DataFrame, gb: pd.DataFrame, mode):
    """(train_k, a's values by seed, b's values by seed) of each training k a pair compares."""
    if mode == A_K_FREE:
        if ga["train_k"].nunique() > 1:
            return
        for tk in sorted(gb["train_k"].unique()):
            yield tk, ga.set_index("seed")["value"], gb[gb["train_k"] == tk].set_index("seed")["value"]
        return
    for tk in sorted(ga["train_k"].unique()):
        sa = ga[ga["train_k"] == tk].set_index("seed")["value"]
        bk = gb[gb["train_k"] == tk] if mode else gb
        if mode is False and bk["train_k"].nunique() > 1:  # pg has one k; anything else: skip
            continue
        yield tk, sa, bk.set_index("seed")["value"]


def paired_rows(rows: pd.DataFrame, family: str, pairs: tuple = PAIRS) -> list[dict]:
    """The paired-difference rows of one family (``rows``: its tidy metric rows, several seeds) for ``pairs``
    (PAIRS and the family's method_pairs)."""
    out = []
    keys = ["model", "benchmark", "metric", "k", "n", "reward"]  # pairs within a base model: its seeds are its own
    for (model, bench, metric, k, n, reward), g in rows.groupby(keys, sort=True):
        for a, b, mode in pairs:
            if b == "rspo":
                b = RSPO_FOR_REWARD.get(reward, "rspo_pass")
            ga, gb = g[g["algo"] == a], g[g["algo"] == b]
            if ga.empty or gb.empty:
                continue
            for tk, sa, sb in _aligned(ga, gb, mode):
                seeds = sorted(set(sa.index) & set(sb.index))
                if len(seeds) < 2:
                    continue
                diffs = [float(sa[s] - sb[s]) for s in seeds]
                mean, lo, hi, s = t_interval(diffs)
                out.append({"family": family, "model": model, "benchmark": bench, "metric": metric, "k": int(k), "method_a": a,
                            "method_b": b, "train_k": int(tk), "n": int(n), "seeds": ";".join(map(str, seeds)),
                            "values_a": _fmt(sa[s] for s in seeds), "values_b": _fmt(sb[s] for s in seeds),
                            "diffs": ";".join(f"{s}:{d:.6g}" for s, d in zip(seeds, diffs)), "mean_diff": mean,
                            "ci_low": lo, "ci_high": hi, "n_seeds": s})
    return out


def paired_table(metrics: pd.DataFrame, manifest: dict) -> pd.DataFrame:
    """paired.csv: :func:`paired_rows` of every manifest family whose cells span two or more seeds, with the pairs of
    the user's methods it has (manifest ``methods``)."""
    out = []
    methods = manifest_methods(manifest)
    if not metrics.empty:
        for name, fam in (manifest.get("families") or {}).items():
            trained = [c for c in fam["cells"] if c["algo"] != "base"]
            if len({c["seed"] for c in trained}) < 2:
                continue
            pairs = PAIRS + method_pairs(methods, [c["algo"] for c in trained])
            out += paired_rows(_family_frame(metrics, [c["cell"] for c in trained], list(fam["benchmarks"])), name,
                               pairs)
    return pd.DataFrame(out, columns=list(PAIRED_COLUMNS))
