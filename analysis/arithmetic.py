"""Synthetic arithmetic train/test sets for the CPU configurations (deterministic from a seed, no network).

Rows have the frozen-benchmark shape ``{id, question, answer, meta}``; ``python -m analysis.datasets arithmetic``
writes them (see analysis.datasets). Moved here from analysis.datasets, which re-exports every public name.
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


def _split_counts(total: int, k: int) -> list[int]:
    """Split ``total`` into ``k`` near-equal parts, remainder to the first parts."""
    return [total // k + (1 if i < total % k else 0) for i in range(k)]


def make_arithmetic_rows(
    *, tiers: list[str], n_train: int, n_test: int, seed: int
) -> tuple[list[dict], list[dict]]:
    """Deterministic synthetic train/test rows (no I/O). See :func:`make_arithmetic`."""
    if isinstance(tiers, str):
        tiers = [t for t in tiers.split(",") if t]
    if not tiers:
        raise ValueError("tiers is empty; expected at least one of " + ", ".join(TIERS))
    bad = [t for t in tiers if t not in TIERS]
    if bad:
        raise ValueError(f"unknown arithmetic tier(s) {bad}; expected some of {', '.join(TIERS)}")
    if len(set(tiers)) != len(tiers):
        raise ValueError(f"tiers {tiers} has duplicates; expected distinct tier names")
    if n_train < 0 or n_test < 0 or n_train + n_test == 0:
        raise ValueError(f"n_train={n_train}, n_test={n_test}: expected non-negative sizes, not both zero")
    tr_counts = _split_counts(n_train, len(tiers))
    te_counts = _split_counts(n_test, len(tiers))
    # Each tier's space minus the questions of the tiers before it ("3+4" is in add1 and add2): questions stay
    # unique across tiers, so train/test are disjoint by question string over the whole file.
    spaces, seen = {}, set()
    for t in tiers:
        spaces[t] = [p for p in TIERS[t][1]() if p[0] not in seen]
        seen.update(p[0] for p in spaces[t])
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


def make_arithmetic(
    out_train: str | os.PathLike,
    out_test: str | os.PathLike,
    *,
    tiers: list[str] | str,
    n_train: int,
    n_test: int,
    seed: int,
) -> tuple[int, int]:
    """Write synthetic arithmetic train/test JSONL sets, deterministic from ``seed``.

    ``n_train`` / ``n_test`` are totals, split as evenly as possible over ``tiers`` (remainder to the first tiers).
    Train and test are disjoint by question string (sampled without replacement from each tier's problem space; a
    question shared by two tiers, e.g. "3+4" in add1 and add2, belongs to the first tier listed); ValueError if a
    tier's space is smaller than its train + test share. Questions look like ``"12+7"``/``"3*4"``
    (no spaces, no "=": the ``plain`` prompt template appends "="); answers are integer strings; ``meta.tier``.
    Returns (train rows, test rows).
    """
    train, test = make_arithmetic_rows(tiers=tiers, n_train=n_train, n_test=n_test, seed=seed)
    write_jsonl_atomic(out_train, train)
    write_jsonl_atomic(out_test, test)
    log.info("arithmetic seed=%d tiers=%s: %d train -> %s, %d test -> %s", seed, tiers, len(train), out_train,
             len(test), out_test)
    return len(train), len(test)
