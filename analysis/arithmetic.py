"""Synthetic arithmetic train/test sets for the CPU configurations (deterministic from a seed, no network).

Rows have the frozen-benchmark shape ``{id, question, answer, meta}``; ``python -m analysis.datasets arithmetic``
writes them (see analysis.datasets). Moved here from analysis.datasets, which re-exports every public name.

Besides the train set and its test benchmark, two contamination benchmarks (:func:`make_contamination_rows`):
``arithmetic_seen`` (training rows, verbatim: deliberately contaminated) and ``arithmetic_clean`` (the trained
distribution, never in train or test). The n-gram audit (analysis.contamination) flags every seen row and no clean row
at its default n = 13: the questions are 2 words long ("12+7" -> ``12``, ``7``: operators are not words), so the
n-gram test never applies and the audit's exact-duplicate check decides. A smaller n is not needed, and would be wrong
(measured with seed 0, 100 rows per set): tiers add2,sub2 at n = 2 flag 43/100 clean rows, because with the operator
dropped "12-7" shares the 2-gram of a trained "12+7"; the word tier's sentences (11-13 words: 22 of 100 reach 13) stay
clear at n = 13, but at n = 8 every clean row shares template words ("how many apples are left") with training.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable

from analysis.atomic import write_jsonl_atomic

log = logging.getLogger(__name__)


_NAMES = ["tom", "ann", "sam", "mia", "ben", "eva", "max", "zoe"]
_ITEMS = ["apples", "pears", "books", "coins", "pens", "cards", "balls", "shells"]


def _space_binary(op: str, lo_a: int, hi_a: int, lo_b: int, hi_b: int, *, nonneg: bool = False) -> list[tuple]:
    """All problems "a{op}b" for a in [lo_a, hi_a], b in [lo_b, hi_b]: list of (question, answer, meta)."""
    fn = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}[op]
    out = []
    for a in range(lo_a, hi_a + 1):
        for b in range(lo_b, hi_b + 1):
            if nonneg and fn(a, b) < 0:
                continue
            out.append((f"{a}{op}{b}", str(fn(a, b)), {"a": a, "b": b, "op": op}))
    return out


def _space_word() -> list[tuple]:
    """Short lowercase word problems (add / take away / groups of), numbers 1..9."""
    out = []
    for name in _NAMES:
        for item in _ITEMS:
            for a in range(1, 10):
                for b in range(1, 10):
                    out.append((f"{name} has {a} {item} and buys {b} more. how many {item}?", str(a + b),
                                {"a": a, "b": b, "op": "+"}))
                    if b <= a:
                        out.append((f"{name} has {a} {item} and gives away {b}. how many {item} are left?",
                                    str(a - b), {"a": a, "b": b, "op": "-"}))
                    out.append((f"{name} has {a} bags with {b} {item} in each. how many {item}?", str(a * b),
                                {"a": a, "b": b, "op": "*"}))
    return out


# tier -> (description, space builder). Spaces are small (<= ~20k) so they are materialised.
TIERS: dict[str, tuple[str, Callable[[], list[tuple]]]] = {
    "add1": ("1-digit addition a+b, a,b in 0..9 (100 problems)", lambda: _space_binary("+", 0, 9, 0, 9)),
    "mul1": ("1-digit multiplication a*b, a,b in 0..9 (100 problems)", lambda: _space_binary("*", 0, 9, 0, 9)),
    "add2": ("addition a+b, a,b in 0..99 (10,000 problems)", lambda: _space_binary("+", 0, 99, 0, 99)),
    "sub2": ("subtraction a-b, 0 <= b <= a <= 99 (5,050 problems)",
             lambda: _space_binary("-", 0, 99, 0, 99, nonneg=True)),
    "word": ("lowercase word problems, + - * on 1..9", _space_word),
}


# Benchmarks the `arithmetic` rule writes (results/data/NAME.jsonl), not in analysis.datasets.BENCHMARKS.
SYNTHETIC_BENCHMARKS: dict[str, str] = {
    "arithmetic": "the test split: held out from training (it also picks the pre-training checkpoint)",
    "arithmetic_clean": "contamination control: the trained tiers' problems in neither train nor test (n_clean)",
    "arithmetic_seen": "deliberately contaminated: training rows copied verbatim (n_seen)",
}


def _split_counts(total: int, k: int) -> list[int]:
    """Split ``total`` into ``k`` near-equal parts, remainder to the first parts."""
    return [total // k + (1 if i < total % k else 0) for i in range(k)]


def _check_tiers(tiers: list[str] | str) -> list[str]:
    """The tier list (a comma string is split); ValueError on an empty list, an unknown tier or a duplicate."""
    if isinstance(tiers, str):
        tiers = [t for t in tiers.split(",") if t]
    if not tiers:
        raise ValueError("tiers is empty; expected at least one of " + ", ".join(TIERS))
    bad = [t for t in tiers if t not in TIERS]
    if bad:
        raise ValueError(f"unknown arithmetic tier(s) {bad}; expected some of {', '.join(TIERS)}")
    if len(set(tiers)) != len(tiers):
        raise ValueError(f"tiers {tiers} has duplicates; expected distinct tier names")
    return list(tiers)


def _tier_spaces(tiers: list[str]) -> dict[str, list[tuple]]:
    """tier -> its problem space minus the questions of the tiers listed before it ("3+4" is in add1 and add2).

    Questions thus stay unique across tiers, so sets sampled without replacement are disjoint by question string.
    """
    spaces, seen = {}, set()
    for t in tiers:
        spaces[t] = [p for p in TIERS[t][1]() if p[0] not in seen]
        seen.update(p[0] for p in spaces[t])
    return spaces


def make_arithmetic_rows(
    *, tiers: list[str], n_train: int, n_test: int, seed: int
) -> tuple[list[dict], list[dict]]:
    """Deterministic synthetic train/test rows (no I/O). See :func:`make_arithmetic`."""
    tiers = _check_tiers(tiers)
    if n_train < 0 or n_test < 0 or n_train + n_test == 0:
        raise ValueError(f"n_train={n_train}, n_test={n_test}: expected non-negative sizes, not both zero")
    tr_counts = _split_counts(n_train, len(tiers))
    te_counts = _split_counts(n_test, len(tiers))
    spaces = _tier_spaces(tiers)
    for t, a, b in zip(tiers, tr_counts, te_counts):  # check all sizes before sampling anything
        if a + b > len(spaces[t]):
            raise ValueError(
                f"tier {t!r} has only {len(spaces[t])} distinct problems; requested {a} train + {b} test = {a + b}"
            )
    train, test = [], []
    for t, a, b in zip(tiers, tr_counts, te_counts):
        rng = random.Random(f"rspo-arith:{seed}:{t}")  # str seeds are hashed with sha512: stable across runs
        picks = rng.sample(range(len(spaces[t])), a + b)  # distinct indices -> distinct question strings
        for dest, idxs in ((train, picks[:a]), (test, picks[a:])):
            for i in idxs:
                q, ans, meta = spaces[t][i]
                dest.append({"question": q, "answer": ans, "meta": {"tier": t, **meta}})
    for split, rows in (("train", train), ("test", test)):
        random.Random(f"rspo-arith:{seed}:shuffle:{split}").shuffle(rows)
        for j, row in enumerate(rows):
            row["id"] = f"arith-{split}-{j:05d}"
    overlap = {r["question"] for r in train} & {r["question"] for r in test}
    if overlap:  # guaranteed empty by construction; kept as a cheap invariant check
        raise RuntimeError(f"train/test overlap {sorted(overlap)[:5]}")
    key_order = ("id", "question", "answer", "meta")
    return ([{k: r[k] for k in key_order} for r in train], [{k: r[k] for k in key_order} for r in test])


def make_contamination_rows(
    train: list[dict], test: list[dict], *, tiers: list[str] | str, n_clean: int, n_seen: int, seed: int
) -> tuple[list[dict], list[dict]]:
    """The two contamination benchmarks of a synthetic train/test pair (no I/O): ``(clean rows, seen rows)``.

    * ``arithmetic_seen`` (``n_seen`` rows): training rows copied verbatim (question and answer), i.e. a test set
      that leaked into training. ``meta.train_id`` names the training row. Drawn per tier (same split over tiers as
      the test set) from ``train`` with ``random.Random(f"rspo-arith:{seed}:{tier}:seen")``.
    * ``arithmetic_clean`` (``n_clean`` rows): fresh problems from the SAME tiers' problem spaces that are in neither
      ``train`` nor ``test`` (disjoint by question string), drawn per tier with
      ``random.Random(f"rspo-arith:{seed}:{tier}:clean")`` from what train and test left over.

    Why the clean set is the trained tiers' leftover space and not a tier the training set never includes: the
    char-level model has never seen, e.g., a "-" (sub2) or a sentence (word) when trained on add2, so it would score
    ~0 there for every method and Figure 10 would compare nothing. A problem of the trained distribution that no
    stage ever read (the test set, by contrast, also picks the pre-training checkpoint) has the same difficulty as the
    test set in expectation, so a method's score on it is an uncontaminated estimate of the same quantity.
    The price: train + test + clean must fit in each tier's space (add2: 10,000 problems), so a config that used the
    whole space for train + test must shrink ``n_train`` by ``n_clean``. ``train``/``test`` themselves are not
    touched: a config without these sets writes byte-identical train/test files.

    Rows: ``{id: "arith-clean-NNNNN" / "arith-seen-NNNNN", question, answer, meta: {tier, a, b, op[, train_id]}}``,
    shuffled with their own seeded RNG. ValueError (before sampling) if a tier lacks room or training rows.
    """
    tiers = _check_tiers(tiers)
    if n_clean < 0 or n_seen < 0:
        raise ValueError(f"n_clean={n_clean}, n_seen={n_seen}: expected non-negative sizes")
    spaces = _tier_spaces(tiers)
    used = {r["question"] for r in train} | {r["question"] for r in test}
    left = {t: [p for p in spaces[t] if p[0] not in used] for t in tiers}
    train_by_tier = {t: [r for r in train if r["meta"]["tier"] == t] for t in tiers}
    cl_counts, se_counts = _split_counts(n_clean, len(tiers)), _split_counts(n_seen, len(tiers))
    for t, c, s in zip(tiers, cl_counts, se_counts):  # check all sizes before sampling anything
        if c > len(left[t]):
            raise ValueError(f"tier {t!r}: train + test leave {len(left[t])} unused problems; requested n_clean share "
                             f"{c} (lower n_train or n_test, or n_clean)")
        if s > len(train_by_tier[t]):
            raise ValueError(f"tier {t!r} has {len(train_by_tier[t])} training rows; requested n_seen share {s}")
    clean, seen = [], []
    for t, c, s in zip(tiers, cl_counts, se_counts):
        for q, ans, meta in random.Random(f"rspo-arith:{seed}:{t}:clean").sample(left[t], c):
            clean.append({"question": q, "answer": ans, "meta": {"tier": t, **meta}})
        for r in random.Random(f"rspo-arith:{seed}:{t}:seen").sample(train_by_tier[t], s):
            seen.append({"question": r["question"], "answer": r["answer"], "meta": {**r["meta"], "train_id": r["id"]}})
    out = []
    for split, rows in (("clean", clean), ("seen", seen)):
        random.Random(f"rspo-arith:{seed}:shuffle:{split}").shuffle(rows)
        out.append([{"id": f"arith-{split}-{j:05d}", **row} for j, row in enumerate(rows)])
    if {r["question"] for r in out[0]} & used:  # guaranteed empty by construction; a cheap invariant check
        raise RuntimeError("clean set overlaps train/test")
    return out[0], out[1]


def make_arithmetic(
    out_train: str | os.PathLike,
    out_test: str | os.PathLike,
    *,
    tiers: list[str] | str,
    n_train: int,
    n_test: int,
    seed: int,
    out_clean: str | os.PathLike | None = None,
    n_clean: int = 0,
    out_seen: str | os.PathLike | None = None,
    n_seen: int = 0,
) -> tuple[int, int]:
    """Write synthetic arithmetic train/test JSONL sets, deterministic from ``seed``.

    ``n_train`` / ``n_test`` are totals, split as evenly as possible over ``tiers`` (remainder to the first tiers).
    Train and test are disjoint by question string (sampled without replacement from each tier's problem space; a
    question shared by two tiers, e.g. "3+4" in add1 and add2, belongs to the first tier listed); ValueError if a
    tier's space is smaller than its train + test share. Questions look like ``"12+7"``/``"3*4"``
    (no spaces, no "=": the ``plain`` prompt template appends "="); answers are integer strings; ``meta.tier``.
    ``out_clean`` / ``out_seen``: also write the contamination benchmarks (:func:`make_contamination_rows`) of
    ``n_clean`` / ``n_seen`` rows; every size is checked before any file is written.
    Returns (train rows, test rows).
    """
    if (n_clean and out_clean is None) or (n_seen and out_seen is None):
        raise ValueError(f"n_clean={n_clean}, n_seen={n_seen}: a non-zero size needs its output path")
    train, test = make_arithmetic_rows(tiers=tiers, n_train=n_train, n_test=n_test, seed=seed)
    extra = []
    if out_clean is not None or out_seen is not None:
        clean, seen = make_contamination_rows(train, test, tiers=tiers, n_clean=n_clean, n_seen=n_seen, seed=seed)
        extra = [(p, rows) for p, rows in ((out_clean, clean), (out_seen, seen)) if p is not None]
    write_jsonl_atomic(out_train, train)
    write_jsonl_atomic(out_test, test)
    for path, rows in extra:
        write_jsonl_atomic(path, rows)
        log.info("arithmetic seed=%d: %d rows -> %s", seed, len(rows), path)
    log.info("arithmetic seed=%d tiers=%s: %d train -> %s, %d test -> %s", seed, tiers, len(train), out_train,
             len(test), out_test)
    return len(train), len(test)
