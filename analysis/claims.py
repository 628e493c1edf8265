"""The claims table: each claim C1-C10 of the paper's §5 judged on the tidy tables, by the rule of docs/claims.md; then
two rows U1, U2, ... per user's method (a plugin estimator or hyperparameters: the manifest's ``methods`` block) in
each family that has it, against RSPO and against the baseline at equal k (none without a ``methods`` block).

    python -m analysis.claims --tables results/tables --cells results/cells.json --out results/tables/claims.csv \
        [--paired-out results/tables/paired.csv]

For each claim: a per-seed statistic d_s (paired within a seed: same base model, same evaluation seed), the 95%
t-interval over seeds (analysis.stats.t_interval), a verdict: reproduced (interval above 0), not reproduced (below
0), inconclusive (contains 0, or one seed), not run (no cells for it in the manifest, or no rows yet), and ``mde``,
the smallest effect the seeds detect with 80% power at their observed spread (analysis.stats.detectable_effect; C10:
the largest difference still shown alike, analysis.stats.equivalence_bound). C10 is an equivalence claim with margin
EQUIV_MARGIN. The statistics (docs/claims.md has the table):

    curve mean      mean of Pass@k (Max@k) over the evaluation ks both compared cells have on a benchmark
    C1 / C7-C9      curve mean of RSPO at training k - that of the baseline at the same k (and n)
    C2              min over consecutive baseline ks k_i < k_(i+1) of curve mean(k_i) - curve mean(k_(i+1))
    C3              per RSPO training k_t (pg = k 1): Pass@k_t of k_t - best Pass@k_t of the other ks; mean over k_t
    C4              at the largest evaluation k: min(RSPO(largest k) - base, base - pg)
    C5              min(mean_k final entropy RSPO(k) - pg, RSPO(largest k) - RSPO(smallest k))
    C6              min(smallest n below every other n, largest n above every other n) in curve means
    C10             curve mean of grpo - that of pg, reproduced if the interval lies in [-margin, margin]
    U rows          the C1 statistic with better = the method, worse = RSPO for the cells' reward (rspo_pass for
                    pass, on Pass@k; rspo_max for max, on Max@k) or the baseline; a k-free method (manifest uses_k
                    false) is held against the reference at each of its training ks

Per seed, the terms (one per benchmark, reward, n, ... where defined) are averaged into d_s. A family whose trained
cells span several base models gets, per claim, the pooled row (claim id ``C8``, ``models`` "tiny;tiny_b": per
training seed the mean over models of each model's d_s, seeds on every pooled model only) and then one row per model
(``C8@tiny``, ...: that model's cells alone); one model: one row, as ever (docs/claims.md, "Several base models").
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from collections import defaultdict
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.aggregate import METRIC_FILES, TRAIN_FILE, write_csv_atomic
from analysis.manifest import LARGER_MODEL_FAMILIES, N_SCALING_FAMILIES, manifest_methods, read_manifest
from analysis.paired import RSPO_FOR_REWARD, paired_table
from analysis.stats import constant_k
from analysis.verdicts import VERDICTS, judged_rows, unjudged, verdict  # noqa: F401 (VERDICTS, verdict: re-exported)

log = logging.getLogger("analysis.claims")

EQUIV_MARGIN = 0.05  # C10: |grpo - pg| in curve-mean Pass@k counted as "alike" (fixed in docs/claims.md)
FINAL_FRACTION = 0.1  # C5: final entropy = mean over the last 10% of logged steps (at least one)
CLAIM_COLUMNS = ("claim", "text", "family", "models", "statistic", "rule", "seeds", "per_seed", "mean", "ci_low",
                 "ci_high", "mde", "n_seeds", "verdict", "note")
PASS = "pass@k"
MAX = "max@k"
REWARD_TABLE = {"pass": PASS, "max": MAX}  # the U rows judge a cell on the metric of its training reward

Curves = dict  # (model, reward, bench) -> {(algo, train_k, n): {seed: {k: value}}}


# ----------------------------------------------------------------------------------------------------------------------
# data


def metric_curves(table: pd.DataFrame, cells: list[str], benches: list[str]) -> tuple[Curves, dict]:
    """(curves, base) of one metric table restricted to ``cells`` (paths) on ``benches``, constant k only.

    curves: (model, reward, bench) -> {(algo, train_k, n): {seed: {k: value}}} for trained cells;
    base: (model, bench) -> {k: value} for the untrained model (one cell, paired with every seed).
    """
    curves: Curves = defaultdict(lambda: defaultdict(dict))
    base: dict = {}
    if table.empty:
        return curves, base
    sub = table[table["cell"].isin(cells) & table["benchmark"].isin(benches)
                & constant_k(table)]
    for key, g in sub.groupby(["model", "reward", "benchmark", "algo", "train_k", "n", "seed"], sort=True):
        model, reward, bench, algo, tk, n, seed = key
        vals = {int(k): float(v) for k, v in zip(g["k"], g["value"])}
        if algo == "base":
            base[(model, bench)] = vals
        else:
            curves[(model, reward, bench)][(algo, int(tk), int(n))][int(seed)] = vals
    return curves, base


def final_entropy(curves: pd.DataFrame, cells: list[str]) -> dict:
    """(model, reward, n) -> {(algo, train_k): {seed: mean entropy over the last FINAL_FRACTION of logged steps}}."""
    out: dict = defaultdict(lambda: defaultdict(dict))
    if curves.empty:
        return out
    sub = curves[curves["cell"].isin(cells) & constant_k(curves)]
    for key, g in sub.groupby(["model", "reward", "n", "algo", "train_k", "seed"], sort=True):
        model, reward, n, algo, tk, seed = key
        ent = pd.to_numeric(g.sort_values("step")["entropy"], errors="coerce").dropna()
        if ent.empty:
            continue
        last = max(1, math.ceil(FINAL_FRACTION * len(ent)))
        out[(model, reward, int(n))][(algo, int(tk))][int(seed)] = float(ent.iloc[-last:].mean())
    return out


def curve_mean_diff(a: dict, b: dict) -> float | None:
    """mean over the ks both have of a[k] - b[k] ({k: value} each); None without a common k."""
    ks = sorted(set(a) & set(b))
    return float(np.mean([a[k] - b[k] for k in ks])) if ks else None


def _collect(terms: dict) -> dict:
    """{seed: [term, ...]} -> {seed: mean term} (seeds without terms dropped)."""
    return {s: float(np.mean(v)) for s, v in terms.items() if v}


# ----------------------------------------------------------------------------------------------------------------------
# statistics: each takes (curves, base) or final entropies and returns {seed: d_s}


def stat_above(curves: Curves, base: dict, *, better: str = "rspo_pass", worse: str | Mapping = "baseline",
               every_k: bool = False) -> dict:
    """C1 (C7, C8, C9, the U rows): curve mean of ``better`` at training k minus ``worse`` at the same (k, n), per seed.

    worse: an algo, or reward -> algo (the U rows' RSPO: rspo_pass for pass, rspo_max for max). every_k: ``better``
    ignores k (its cell trains at k 1) and is held against ``worse`` at each of worse's training ks at the same n."""
    terms = defaultdict(list)
    for (model, reward, bench), methods in curves.items():
        w = worse.get(reward) if isinstance(worse, Mapping) else worse
        for (algo, tk, n), by_seed in methods.items():
            if algo != better:
                continue
            others = ([s for (a, _, m), s in sorted(methods.items()) if a == w and m == n] if every_k
                      else [methods.get((w, tk, n))])
            for other in others:
                for seed, c in by_seed.items():
                    if other and seed in other:
                        d = curve_mean_diff(c, other[seed])
                        if d is not None:
                            terms[seed].append(d)
    return _collect(terms)


def _by_n(methods: dict, algo: str) -> dict:
    """n -> {train_k: {seed: curve}} of one algo."""
    out: dict = defaultdict(dict)
    for (a, tk, n), by_seed in methods.items():
        if a == algo:
            out[n][tk] = by_seed
    return out


def stat_degrades(curves: Curves, base: dict, *, algo: str = "baseline") -> dict:
    """C2: min over consecutive training ks of curve mean(k_i) - curve mean(k_(i+1)); needs two ks."""
    terms = defaultdict(list)
    for methods in curves.values():
        for per_k in _by_n(methods, algo).values():
            ks = sorted(per_k)
            if len(ks) < 2:
                continue
            for seed in set.intersection(*(set(per_k[k]) for k in ks)):
                diffs = [curve_mean_diff(per_k[a][seed], per_k[b][seed]) for a, b in zip(ks, ks[1:])]
                if all(d is not None for d in diffs):
                    terms[seed].append(min(diffs))
    return _collect(terms)


def stat_matched_k(curves: Curves, base: dict, *, algo: str = "rspo_pass", k1: str = "pg") -> dict:
    """C3: per training k_t, Pass@k_t of the k_t cell minus the best Pass@k_t of the other training ks (``k1`` is
    training k = 1); averaged over k_t. Needs two training ks."""
    terms = defaultdict(list)
    for methods in curves.values():
        per_n = _by_n(methods, algo)
        for (a, tk, n), by_seed in methods.items():
            if a == k1 and n in per_n and 1 not in per_n[n]:
                per_n[n][1] = by_seed
        for per_k in per_n.values():
            if len(per_k) < 2:
                continue
            for kt, own in per_k.items():
                for seed, c in own.items():
                    others = [per_k[k][seed][kt] for k in per_k if k != kt and seed in per_k[k]
                              and kt in per_k[k][seed]]
                    if kt in c and others:
                        terms[seed].append(c[kt] - max(others))
    return _collect(terms)


def stat_beats_base(curves: Curves, base: dict, *, algo: str = "rspo_pass", risk_neutral: str = "pg") -> dict:
    """C4: at the largest evaluation k the three cells share: min(algo at its largest training k - base,
    base - risk_neutral)."""
    terms = defaultdict(list)
    for (model, reward, bench), methods in curves.items():
        b = base.get((model, bench))
        if b is None:
            continue
        for n, per_k in _by_n(methods, algo).items():
            pg = methods.get((risk_neutral, 1, n))
            if not pg:
                continue
            top = per_k[max(per_k)]
            for seed, c in top.items():
                if seed not in pg:
                    continue
                ks = set(c) & set(b) & set(pg[seed])
                if ks:
                    k = max(ks)
                    terms[seed].append(min(c[k] - b[k], b[k] - pg[seed][k]))
    return _collect(terms)


def stat_entropy(entropy: dict, *, algo: str = "rspo_pass", risk_neutral: str = "pg") -> dict:
    """C5: min(mean over training ks of final entropy algo(k) - risk_neutral, algo(largest k) - algo(smallest k));
    needs two training ks of algo and the risk-neutral cell."""
    terms = defaultdict(list)
    for methods in entropy.values():
        per_k = {tk: s for (a, tk), s in methods.items() if a == algo}
        pg = methods.get((risk_neutral, 1))
        if len(per_k) < 2 or not pg:
            continue
        lo, hi = min(per_k), max(per_k)
        for seed in set(pg).intersection(*(set(s) for s in per_k.values())):
            above = float(np.mean([per_k[k][seed] - pg[seed] for k in per_k]))
            terms[seed].append(min(above, per_k[hi][seed] - per_k[lo][seed]))
    return _collect(terms)


def stat_n_scaling(curves: Curves, base: dict, *, algo: str = "rspo_pass") -> dict:
    """C6: for algo at one training k: min(smallest n below every other n, largest n above every other n), margins
    in curve means; needs two n."""
    terms = defaultdict(list)
    for methods in curves.values():
        per_k: dict = defaultdict(dict)
        for (a, tk, n), by_seed in methods.items():
            if a == algo:
                per_k[tk][n] = by_seed
        for per_n in per_k.values():
            ns = sorted(per_n)
            if len(ns) < 2:
                continue
            lo, hi = ns[0], ns[-1]
            for seed in set.intersection(*(set(per_n[n]) for n in ns)):
                c = {n: per_n[n][seed] for n in ns}
                low = [curve_mean_diff(c[n], c[lo]) for n in ns if n != lo]
                high = [curve_mean_diff(c[hi], c[n]) for n in ns if n != hi]
                if all(d is not None for d in low + high):
                    terms[seed].append(min(min(low), min(high)))
    return _collect(terms)


def stat_alike(curves: Curves, base: dict, *, algo: str = "grpo", reference: str = "pg") -> dict:
    """C10: curve mean of algo minus that of reference at the same n (both k-free: training k 1) -- the paired
    difference of :func:`stat_above`; C10's verdict (equivalence) differs, not its statistic."""
    return stat_above(curves, base, better=algo, worse=reference)


# ----------------------------------------------------------------------------------------------------------------------
# the claims


_ABOVE = "curve mean of {a} minus the baseline at the same training k and n"
CLAIMS = (  # id, text, families (first present), table ("pass@k", "max@k", "entropy"), statistic, its words, margin
    ("C1", "RSPO above the baseline at equal k", ("main",), PASS, stat_above, _ABOVE.format(a="RSPO"), None),
    ("C2", "the baseline degrades as k grows", ("main",), PASS, stat_degrades,
     "min over consecutive baseline ks of curve mean(k_i) - curve mean(k_i+1)", None),
    ("C3", "best Pass@k when training k = evaluation k", ("main",), PASS, stat_matched_k,
     "mean over training k_t of Pass@k_t(k_t) - best Pass@k_t of the other training ks (pg = k 1)", None),
    ("C4", "RSPO with large k beats the base model at large-k Pass@k where pg does not", ("main",), PASS,
     stat_beats_base, "at the largest evaluation k: min(RSPO(largest k) - base, base - pg)", None),
    ("C5", "RSPO keeps more entropy than pg, more so as k grows", ("main",), "entropy", stat_entropy,
     "min(mean_k final entropy RSPO(k) - pg, RSPO(largest k) - RSPO(smallest k))", None),
    ("C6", "larger n is better, the smallest n worst", N_SCALING_FAMILIES, PASS, stat_n_scaling,
     "min(every n - smallest n, largest n - every n) in curve means, RSPO at one k", None),
    ("C7", "the findings (C1) hold at the larger model", LARGER_MODEL_FAMILIES, PASS, stat_above,
     _ABOVE.format(a="RSPO") + ", larger model", None),
    ("C8", "they (C1) hold on the clean benchmarks", ("contamination", "main"), PASS, stat_above,
     _ABOVE.format(a="RSPO") + ", clean benchmarks", None),
    ("C9", "Max@k follows Pass@k (RSPO-Max above the baseline at equal k)", ("maxk",), MAX,
     lambda c, b: stat_above(c, b, better="rspo_max"), _ABOVE.format(a="RSPO-Max") + ", Max@k", None),
    ("C10", "GRPO behaves like pg", ("grpo",), PASS, stat_alike, "curve mean of GRPO minus pg at the same n",
     EQUIV_MARGIN),
)


def _family(manifest: dict, claim: str, names: tuple[str, ...]) -> tuple[str | None, list[dict], list[str]]:
    """(family name, its cells (manifest dicts), benchmarks) for a claim; C8 without a contamination family: main on
    the contamination benchmarks."""
    fams = manifest.get("families") or {}
    name = next((n for n in names if n in fams), None)
    if name is None:
        return None, [], []
    benches = list(fams[name]["benchmarks"])
    if claim == "C8" and name != "contamination":
        benches = list((manifest.get("contamination") or {}).get("benchmarks") or [])
    return name, list(fams[name]["cells"]), benches


def base_models(cells: list[dict]) -> list[str]:
    """The base models of a family's trained cells, in the manifest's order: two or more split its claims into a
    pooled row and one row per model (docs/claims.md, "Several base models")."""
    return list(dict.fromkeys(c["model"] for c in cells if c["algo"] != "base"))


def _paths(cells: list[dict], model: str | None) -> list[str]:
    """The paths of the cells on one base model (None: all of them)."""
    return [c["cell"] for c in cells if model is None or c["model"] == model]


def _planned(manifest: dict, name: str, cells: list[str], benches: list[str], metric: str) -> pd.DataFrame:
    """The rows a complete run would have for these cells (value 0 at ks 1..1024): is the statistic defined at all?"""
    fam = manifest["families"][name]
    ks = [2 ** i for i in range(11)]
    recs = [{**c, "benchmark": b, "metric": metric, "k": k, "value": 0.0, "step": 0, "entropy": 0.0}
            for c in fam["cells"] if c["cell"] in cells for b in (benches or ["-"]) for k in ks]
    return pd.DataFrame(recs)


def _stat(kind: str, fn: Callable, table: pd.DataFrame, cells: list[str], benches: list[str]) -> dict:
    if kind == "entropy":
        return fn(final_entropy(table, cells))
    return fn(*metric_curves(table, cells, benches))


def _row(cid: str, text: str, family: str, words: str, equiv: float | None = None, models=()) -> dict:
    """A claims row before judging: verdict "not run", no statistic."""
    return {"claim": cid, "text": text, "family": family, "models": ";".join(models), "statistic": words,
            "rule": f"95% t-interval over seeds inside [-{equiv}, {equiv}]" if equiv else
            "95% t-interval over seeds above 0", "seeds": "", "per_seed": "", "mean": np.nan,
            "ci_low": np.nan, "ci_high": np.nan, "mde": np.nan, "n_seeds": 0, "verdict": "not run", "note": ""}


def _claim_stats(manifest: dict, tables: dict, name: str, fam_cells: list[dict], benches: list[str], kind: str,
                 fn: Callable) -> tuple[Callable, Callable]:
    """(planned(model), observed(model)) of a claim's statistic on one base model's cells of the family."""
    plan = _planned(manifest, name, _paths(fam_cells, None), benches, kind)
    return (lambda m: _stat(kind, fn, plan, _paths(fam_cells, m), benches),
            lambda m: _stat(kind, fn, tables[kind], _paths(fam_cells, m), benches))


def claims_table(tables: dict[str, pd.DataFrame], manifest: dict) -> pd.DataFrame:
    """One row per claim (columns CLAIM_COLUMNS): C1-C10, then the U rows of the user's methods (method_claims); a
    claim whose family is on several base models: its pooled row, then one per model (judged_rows).
    tables: {"pass@k": passk, "max@k": maxk, "entropy": train_curves} (tidy frames of analysis.aggregate); manifest:
    results/cells.json (analysis.manifest)."""
    rows = []
    for cid, text, names, kind, fn, words, equiv in CLAIMS:
        name, fam_cells, benches = _family(manifest, cid, names)
        models = base_models(fam_cells)

        def blank(i, ms, text=text, family=name or " / ".join(names), words=words, equiv=equiv):
            return _row(i, text, family, words, equiv, ms)

        if name is None:
            rows += unjudged(cid, blank, [], f"the config has no family {' / '.join(names)}")
        elif kind != "entropy" and not benches:
            rows += unjudged(cid, blank, models,
                             f"family {name!r}: no benchmarks for this claim (contamination.benchmarks is empty)")
        else:
            planned, observed = _claim_stats(manifest, tables, name, fam_cells, benches, kind, fn)
            rows += judged_rows(cid, blank, name, models, planned, observed, equiv)
    rows += method_claims(tables, manifest)
    return pd.DataFrame(rows, columns=list(CLAIM_COLUMNS))


# ----------------------------------------------------------------------------------------------------------------------
# the U rows: a user's method (plugin estimator, or hyperparameters) against RSPO and the baseline at equal k


def _reward_curves(tables: dict[str, pd.DataFrame], fam_cells: list[dict], benches: list[str]) -> Curves:
    """Curves of the family's cells, each from the table of its training reward (pass: Pass@k, max: Max@k)."""
    curves: Curves = {}
    for reward, kind in REWARD_TABLE.items():
        cells = [c["cell"] for c in fam_cells if c["reward"] == reward]
        if cells:
            curves.update(metric_curves(tables[kind], cells, benches)[0])
    return curves


def method_claims(tables: dict[str, pd.DataFrame], manifest: dict) -> list[dict]:
    """The U rows (docs/claims.md, "A user's method"): for each family (manifest order) and each algo of the
    manifest's ``methods`` block among its cells (in the family's order), "<algo> above RSPO at equal k" (RSPO for
    the cells' reward: rspo_pass, rspo_max) and "<algo> above the baseline at equal k": the C1 statistic with
    better = algo, on the metric of the reward, numbered U1, U2, ... (split per base model as C1-C10 are); none
    without a ``methods`` block."""
    methods, rows, number = manifest_methods(manifest), [], 0
    for name, fam in ((manifest.get("families") or {}).items() if methods else ()):
        benches, models = list(fam["benchmarks"]), base_models(fam["cells"])
        planned = _planned(manifest, name, _paths(fam["cells"], None), benches, PASS)
        for algo in dict.fromkeys(c["algo"] for c in fam["cells"] if c["algo"] in methods):
            every_k = not methods[algo].get("uses_k", True)
            rewards = sorted({c["reward"] for c in fam["cells"] if c["algo"] == algo})
            metric = " / ".join({"pass": "Pass@k", "max": "Max@k"}.get(r, r) for r in rewards)
            for ref, who in (("rspo", "RSPO"), ("baseline", "the baseline")):
                worse = RSPO_FOR_REWARD if ref == "rspo" else "baseline"
                ref_names = " / ".join(RSPO_FOR_REWARD.get(r, r) for r in rewards) if ref == "rspo" else ref
                at = (f"at each training k of {ref_names} (same n; {algo} ignores k)" if every_k
                      else "at the same training k and n")
                text = (f"{algo} above {who} at every training k ({algo} ignores k)" if every_k
                        else f"{algo} above {who} at equal k")
                words = f"curve mean of {algo} minus {ref_names} {at}, {metric}"
                number += 1

                def blank(i, ms, text=text, name=name, words=words):
                    return _row(i, text, name, words, models=ms)

                def stat(t, m, algo=algo, worse=worse, every_k=every_k, fam=fam, benches=benches):
                    cells = [c for c in fam["cells"] if m is None or c["model"] == m]
                    return stat_above(_reward_curves(t, cells, benches), {}, better=algo, worse=worse,
                                      every_k=every_k)

                lacks = (f"family {name!r} lacks the cells this statistic needs: {ref_names} "
                         f"{'at the same n as' if every_k else 'at the training k and n of'} {algo} (docs/claims.md)")
                if not benches:
                    rows += unjudged(f"U{number}", blank, models, f"family {name!r} has no benchmarks")
                else:
                    rows += judged_rows(f"U{number}", blank, name, models,
                                        lambda m, stat=stat, planned=planned: stat({PASS: planned, MAX: planned}, m),
                                        lambda m, stat=stat: stat(tables, m), lacks=lacks)
    return rows


def read_tables(tables_dir: Path) -> dict[str, pd.DataFrame]:
    """{"pass@k", "max@k", "entropy"} -> the tidy tables in tables_dir; ValueError naming a missing file."""
    tables_dir = Path(tables_dir)
    files = {**METRIC_FILES, "entropy": TRAIN_FILE}
    out = {}
    for kind, fname in files.items():
        path = tables_dir / fname
        if not path.is_file():
            raise ValueError(f"table {str(path)!r} does not exist (python -m analysis.aggregate writes it)")
        out[kind] = pd.read_csv(path)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m analysis.claims", description=__doc__.split("\n\n")[0])
    p.add_argument("--tables", type=Path, required=True, help="results/tables (passk.csv, maxk.csv, train_curves.csv)")
    p.add_argument("--cells", type=Path, required=True, help="the DAG's cell manifest results/cells.json")
    p.add_argument("--out", type=Path, required=True, help="claims.csv to write")
    p.add_argument("--paired-out", type=Path, default=None,
                   help="also write paired.csv: per-seed values and paired differences (analysis.paired)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        manifest, tables = read_manifest(a.cells), read_tables(a.tables)
    except ValueError as e:
        p.error(str(e))
    table = claims_table(tables, manifest)
    write_csv_atomic(table, a.out)
    if a.paired_out is not None:
        metrics = pd.concat([tables["pass@k"], tables["max@k"]], ignore_index=True)
        write_csv_atomic(paired_table(metrics, manifest), a.paired_out)
    print(json.dumps(dict(zip(table["claim"], table["verdict"]))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
