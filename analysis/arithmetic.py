"""Synthetic arithmetic train/test sets for the CPU configurations (deterministic from a seed, no network).

Rows have the frozen-benchmark shape ``{id, question, answer, meta}``; ``python -m analysis.datasets arithmetic``
writes them (see analysis.datasets). Moved here from analysis.datasets, which re-exports every public name.

Besides the train set and its test benchmark, two contamination benchmarks (:func:`make_arithmetic_sets`):
``arithmetic_seen`` (training rows, verbatim: deliberately contaminated) and ``arithmetic_clean`` (the trained
distribution, never in train or test). The n-gram audit (analysis.contamination) flags every seen row and no clean row
at its default n = 13: the questions are 2 words long ("12+7" -> ``12``, ``7``: operators are not words), so the
n-gram test never applies and the audit's exact-duplicate check decides. A smaller n is not needed, and would be wrong
(measured with seed 0, 100 rows per set): tiers add2,sub2 at n = 2 flag 44/100 clean rows, because with the operator
dropped "12-7" shares the 2-gram of a trained "12+7"; the word tier's sentences (11-13 words: 23 of 100 reach 13) stay
clear at n = 13, but at n = 8 99 of 100 clean rows share template words ("how many apples are left") with training.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable

from rspo_core.atomic import write_jsonl_atomic

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


def _plan_sets(tiers: list[str] | str, n_train: int, n_test: int, n_clean: int, n_seen: int):
    """(tiers, per-split counts per tier, tier spaces) after checking every argument of :func:`make_arithmetic_sets`
    (tiers, sizes, room in each tier's problem space) without sampling anything; ValueError naming the bad value."""
    tiers = _check_tiers(tiers)
    if min(n_train, n_test, n_clean, n_seen) < 0 or n_train + n_test == 0:
        raise ValueError(f"n_train={n_train}, n_test={n_test}, n_clean={n_clean}, n_seen={n_seen}: expected "
                         f"non-negative sizes, n_train and n_test not both zero")
    counts = {split: _split_counts(n, len(tiers))
              for split, n in (("train", n_train), ("clean", n_clean), ("test", n_test), ("seen", n_seen))}
    spaces = _tier_spaces(tiers)
    for i, t in enumerate(tiers):  # check all sizes before sampling anything
        a, c, b, s = (counts[split][i] for split in ("train", "clean", "test", "seen"))
        if a + c + b > len(spaces[t]):
            raise ValueError(f"tier {t!r} has only {len(spaces[t])} distinct problems; requested {a} train + {c} clean"
                             f" + {b} test = {a + c + b}")
        if s > a:
            raise ValueError(f"tier {t!r} has {a} training rows; requested n_seen share {s}")
    return tiers, counts, spaces


def check_arithmetic_args(*, tiers: list[str] | str, n_train: int, n_test: int, n_clean: int = 0,
                          n_seen: int = 0) -> list[str]:
    """The tier list after checking every argument of :func:`make_arithmetic_sets` without sampling anything;
    ValueError naming the bad value. The workflow calls it (through ``python -m analysis.datasets``' check_argv)
    before any job runs."""
    return _plan_sets(tiers, n_train, n_test, n_clean, n_seen)[0]


def make_arithmetic_sets(
    *, tiers: list[str] | str, n_train: int, n_test: int, seed: int, n_clean: int = 0, n_seen: int = 0
) -> dict[str, list[dict]]:
    """Deterministic synthetic sets (no I/O): ``{"train", "test", "clean", "seen"}`` -> rows (see make_arithmetic).

    Per tier, ONE draw without replacement of ``a + c + b`` indices of the tier's space (its shares of n_train,
    n_clean, n_test; ``random.Random(f"rspo-arith:{seed}:{tier}").sample``): train = the first a, clean = the next c,
    test = the last b. Distinct indices, so the three are disjoint by question string. The draw depends on a + c + b
    only, so moving rows from n_train to n_clean leaves the test set byte-identical and splits the old training rows
    into train + clean (how the default config made room for arithmetic_clean without touching its test set).

    * ``clean`` (the ``arithmetic_clean`` benchmark): problems of the SAME tiers that no stage ever reads (the test set,
      by contrast, also picks the pre-training checkpoint). Not a tier the training set never includes: the char
      model trained on add2 has never seen a "-" (sub2) or a sentence (word), so every method would score ~0 there
      and Figure 10 would compare nothing; drawn from the same space as the test set, the clean set has the test
      set's difficulty in expectation, so a method's score on it is an uncontaminated estimate of the same quantity.
    * ``seen`` (``arithmetic_seen``): training rows copied verbatim (question and answer), a test set that leaked into
      training; ``meta.train_id`` names the row. Drawn per tier from the training rows with
      ``random.Random(f"rspo-arith:{seed}:{tier}:seen")``.

    Each set is shuffled with ``random.Random(f"rspo-arith:{seed}:shuffle:{split}")``; ids ``arith-{split}-NNNNN``
    (split: train, test, clean, seen). ValueError, before sampling, on a bad tier or size.
    """
    tiers, counts, spaces = _plan_sets(tiers, n_train, n_test, n_clean, n_seen)
    sets: dict[str, list[dict]] = {"train": [], "clean": [], "test": []}
    for i, t in enumerate(tiers):
        a, c, b = counts["train"][i], counts["clean"][i], counts["test"][i]
        rng = random.Random(f"rspo-arith:{seed}:{t}")  # str seeds are hashed with sha512: stable across runs
        picks = rng.sample(range(len(spaces[t])), a + c + b)  # distinct indices -> distinct question strings
        for split, idxs in (("train", picks[:a]), ("clean", picks[a : a + c]), ("test", picks[a + c :])):
            for j in idxs:
                q, ans, meta = spaces[t][j]
                sets[split].append({"question": q, "answer": ans, "meta": {"tier": t, **meta}})
    _shuffle_and_number(sets, seed)
    sets["seen"] = []
    for i, t in enumerate(tiers):
        rows = [r for r in sets["train"] if r["meta"]["tier"] == t]
        for r in random.Random(f"rspo-arith:{seed}:{t}:seen").sample(rows, counts["seen"][i]):
            sets["seen"].append({"question": r["question"], "answer": r["answer"],
                                 "meta": {**r["meta"], "train_id": r["id"]}})
    _shuffle_and_number(sets, seed, only="seen")
    questions = {split: {r["question"] for r in rows} for split, rows in sets.items()}
    if (questions["train"] & questions["test"]) | (questions["clean"] & (questions["train"] | questions["test"])):
        raise RuntimeError("synthetic sets overlap")  # impossible by construction; a cheap invariant check
    return sets


def _shuffle_and_number(sets: dict[str, list[dict]], seed: int, only: str | None = None) -> None:
    """In place: shuffle each set (seeded per split) and give its rows ids ``arith-{split}-NNNNN`` (first key)."""
    for split in [only] if only else list(sets):
        rows = sets[split]
        random.Random(f"rspo-arith:{seed}:shuffle:{split}").shuffle(rows)
        rows[:] = [{"id": f"arith-{split}-{j:05d}", **{k: r[k] for k in ("question", "answer", "meta")}}
                   for j, r in enumerate(rows)]


def make_arithmetic_rows(
    *, tiers: list[str], n_train: int, n_test: int, seed: int
) -> tuple[list[dict], list[dict]]:
    """Deterministic synthetic train/test rows (no I/O): :func:`make_arithmetic_sets` without clean and seen rows."""
    sets = make_arithmetic_sets(tiers=tiers, n_train=n_train, n_test=n_test, seed=seed)
    return sets["train"], sets["test"]


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
    ``out_clean`` / ``out_seen``: also write the contamination benchmarks arithmetic_clean / arithmetic_seen
    (:func:`make_arithmetic_sets`) of ``n_clean`` / ``n_seen`` rows; every size is checked before any file is written.
    Returns (train rows, test rows).
    """
    if (n_clean and out_clean is None) or (n_seen and out_seen is None):
        raise ValueError(f"n_clean={n_clean}, n_seen={n_seen}: a non-zero size needs its output path")
    sets = make_arithmetic_sets(tiers=tiers, n_train=n_train, n_test=n_test, seed=seed, n_clean=n_clean,
                                n_seen=n_seen)
    train, test = sets["train"], sets["test"]
    extra = [(p, sets[split]) for split, p in (("clean", out_clean), ("seen", out_seen)) if p is not None]
    write_jsonl_atomic(out_train, train)
    write_jsonl_atomic(out_test, test)
    for path, rows in extra:
        write_jsonl_atomic(path, rows)
        log.info("arithmetic seed=%d: %d rows -> %s", seed, len(rows), path)
    log.info("arithmetic seed=%d tiers=%s: %d train -> %s, %d test -> %s", seed, tiers, len(train), out_train,
             len(test), out_test)
    return len(train), len(test)
