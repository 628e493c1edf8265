"""The verdict of a claims row (docs/claims.md's rule) and the split of a claim over base models, for analysis.claims.

    verdict(per_seed)        {seed: d_s} -> seeds, per-seed values, 95% t-interval, mde (analysis.stats), verdict
    judge(row, ...)          a row's verdict and note ("not run" when the planned cells cannot define the statistic;
                             an inconclusive row's note says what its seeds could have detected)
    pool_models(per_model)   {model: {seed: d_(m,s)}} -> {seed: mean over models} on the seeds every model has
    judged_rows(cid, ...)    one row on one base model; on several, the pooled row ``cid`` then ``cid@model`` each

The training seed is the pooling unit, not the (model, seed) pair: the same training seed draws the same prompts
through the same random streams on every base model (rspo_patch/train_local.py), so its values on two models share
noise; the seed means are independent (docs/claims.md, "Several base models").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np

from analysis.stats import POWER, detectable_effect, equivalence_bound, t_interval

VERDICTS = ("reproduced", "not reproduced", "inconclusive", "not run")
Blank = Callable[[str, list[str]], dict]  # (row id, its base models) -> a claims row before judging


def verdict(per_seed: dict, *, equivalence: float | None = None) -> dict:
    """{seeds, per_seed, mean, ci_low, ci_high, mde, n_seeds, sd, verdict} of per-seed statistics {seed: d_s}.

    Directional (claimed d > 0): reproduced if the 95% t-interval's low > 0, not reproduced if its high < 0, else
    inconclusive; one seed: inconclusive (no interval). equivalence=delta: reproduced if the interval lies in
    [-delta, delta], not reproduced if low > delta or high < -delta, else inconclusive. No seeds: "not run".
    mde (two seeds or more, from their sample sd): the true mean the directional verdict detects with 80% power;
    with equivalence, the largest |true difference| still shown inside [-delta, delta] with 80% power (NaN if none).
    """
    seeds = sorted(per_seed)
    values = [per_seed[k] for k in seeds]
    mean, lo, hi, s = t_interval(values)
    sd = float(np.std(values, ddof=1)) if s >= 2 else float("nan")
    out = {"seeds": ";".join(str(k) for k in seeds),
           "per_seed": ";".join(f"{k}:{per_seed[k]:+.4f}" for k in seeds),
           "mean": mean, "ci_low": lo, "ci_high": hi, "n_seeds": s, "sd": sd,
           "mde": detectable_effect(sd, s) if equivalence is None else equivalence_bound(sd, s, equivalence)}
    if s == 0:
        out["verdict"] = "not run"
    elif s < 2:
        out["verdict"] = "inconclusive"
    elif equivalence is None:
        out["verdict"] = "reproduced" if lo > 0 else "not reproduced" if hi < 0 else "inconclusive"
    else:
        d = equivalence
        out["verdict"] = ("reproduced" if -d <= lo and hi <= d else
                          "not reproduced" if lo > d or hi < -d else "inconclusive")
    return out


def power_note(row: dict, equiv: float | None) -> str:
    """What an inconclusive row's seeds could have found (docs/claims.md, "Power")."""
    spread, pct = f"({row['n_seeds']} seeds, sd {row['sd']:.4f})", f"{POWER:.0%}"
    if equiv is None:
        return f"an effect of {row['mde']:+.4f} or more would be reproduced with {pct} power {spread}"
    if math.isnan(row["mde"]):
        return f"even a true difference of 0 would be shown alike with less than {pct} power {spread}"
    return f"true differences within +-{row['mde']:.4f} would be shown alike with {pct} power {spread}"


def judge(row: dict, name: str, planned, stat: Callable[[], dict], equiv: float | None = None,
          lacks: str | None = None) -> dict:
    """row with its verdict: "not run" when the statistic is undefined on the planned cells (``planned``: its value
    there, or whether it is defined), else the verdict of ``stat()`` over seeds; the note says why a row has no
    interval, or for an inconclusive one what its seeds could have detected."""
    if not planned:
        row["note"] = lacks or f"family {name!r} lacks the cells this statistic needs (docs/claims.md)"
        return row
    per_seed = stat()
    row.update(verdict(per_seed, equivalence=equiv))
    if not per_seed:
        row["note"] = f"family {name!r}: the planned cells have no rows in the tables yet"
    elif len(per_seed) == 1:
        row["note"] = "one seed: no interval"
    elif row["verdict"] == "inconclusive":
        row["note"] = power_note(row, equiv)
    return row


def pool_models(per_model: Mapping[str, dict]) -> tuple[dict, list[str], list]:
    """(pooled, models, left out) of {model: {seed: d_(m,s)}}: pooled {seed: mean over the models of d_(m,s)} for the
    seeds every pooled model has; the models pooled (those with a value in some seed); the seeds left out (on some
    pooled model only)."""
    have = {m: d for m, d in per_model.items() if d}
    if not have:
        return {}, [], []
    every = set.intersection(*(set(d) for d in have.values()))
    some = set.union(*(set(d) for d in have.values()))
    return ({s: float(np.mean([d[s] for d in have.values()])) for s in sorted(every)}, list(have),
            sorted(some - every))


def row_ids(cid: str, models: list[str]) -> list[tuple[str, list[str]]]:
    """(row id, its models) of one claim: the claim's own id first (pooled), then cid@model per model if several."""
    return [(cid, list(models))] + ([(f"{cid}@{m}", [m]) for m in models] if len(models) > 1 else [])


def _pool_note(models: list[str], rows: list[dict], pooled: list[str], left_out: list) -> list[str]:
    """The pooled row's notes: verdicts that differ between base models, models and seeds left out of the pool."""
    notes = []
    judged = [(m, r["verdict"]) for m, r in zip(models, rows) if r["verdict"] != "not run"]
    if len({v for _, v in judged}) > 1:
        notes.append("verdict differs between base models: " + ", ".join(f"{m} {v}" for m, v in judged))
    if pooled and len(pooled) < len(models):
        notes.append(f"pooled over {', '.join(pooled)} only: no value on "
                     f"{', '.join(m for m in models if m not in pooled)}")
    if left_out:
        notes.append(f"seed(s) {';'.join(map(str, left_out))} left out of the pool: not on every pooled model")
    return notes


def judged_rows(cid: str, blank: Blank, name: str, models: list[str], planned: Callable[[str | None], dict],
                observed: Callable[[str | None], dict], equiv: float | None = None,
                lacks: str | None = None) -> list[dict]:
    """The rows of one claim on family ``name`` (docs/claims.md): on one base model, one row (id ``cid``); on several,
    the pooled row ``cid`` (pool_models of the per-model statistics) and ``cid@model`` per model. blank(id, models):
    a row before judging; planned(model) / observed(model): {seed: d_s} on the planned cells / in the tables, of one
    model's cells (None: all the family's)."""
    if len(models) < 2:
        return [judge(blank(cid, models), name, planned(None), lambda: observed(None), equiv, lacks)]
    plans, per_model = {m: planned(m) for m in models}, {m: observed(m) for m in models}
    rows = [judge(blank(f"{cid}@{m}", [m]), name, plans[m], lambda m=m: per_model[m], equiv, lacks) for m in models]
    pooled_seeds, pooled, left_out = pool_models(per_model)
    row = judge(blank(cid, models), name, any(plans.values()), lambda: pooled_seeds, equiv, lacks)
    row["statistic"] += "; pooled: per training seed, the mean over the base models"
    notes = _pool_note(models, rows, pooled, left_out) + ([row["note"]] if row["note"] else [])
    row["note"] = "; ".join(notes)
    return [row] + rows


def unjudged(cid: str, blank: Blank, models: list[str], note: str) -> list[dict]:
    """The rows of a claim that cannot be judged at all (same ids as judged_rows), each with ``note``."""
    return [{**blank(i, ms), "note": note} for i, ms in row_ids(cid, models)]
