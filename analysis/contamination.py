"""n-gram overlap audit of each evaluation benchmark against the training set (GPT-3 style, Brown et al. 2020 §4).

For every benchmark problem we ask: does any word n-gram of its question (default n = 13, as in GPT-3's audit) also
occur in the training data (training questions, and by default their solutions)? Reported per benchmark:

* ``frac_flagged`` = #flagged problems / #problems (flagged: >= 1 shared n-gram, or an exact duplicate, below);
* ``overlap`` of a problem = shared n-grams / its n-grams (1.0 = the whole question appears in training text);
  ``max_overlap`` and ``mean_overlap`` over the problems that have at least n words;
* ``flagged``: id, overlap, exact, and the ids of training rows sharing an n-gram or equal to it (for a human
  to look at).

Problems shorter than n words have no n-gram and are counted in ``n_too_short``. Independently of n, a problem whose
normalised question equals a training question (whitespace ignored) is an exact duplicate (``n_exact``); this is the
check that still works for short problems such as the synthetic "12+7". A problem is flagged if it shares an n-gram
or is an exact duplicate.

Text normalisation (``normalise_text``): lowercase; drop LaTeX spacing (``\\,``, ``\\;``, ``\\!``, ``\\quad``, ``~``,
``\\left``/``\\right``, ...) and ``$``; ``\\dfrac``/``\\tfrac`` -> ``\\frac``; collapse whitespace. Words
(``tokenize``): maximal runs of ``[a-z0-9]`` and LaTeX command names (``\\frac``); everything else separates words.

The training n-grams are kept as a set of Python hashes of the word tuples (64-bit; salted per process, never
stored, so only consistency within one run matters; collisions are negligible at ~10^6 n-grams).

    python -m analysis.contamination --train results/data/math_train.jsonl \\
        --bench math500=results/data/math500.jsonl --bench aime24=results/data/aime24.jsonl \\
        --out-json results/tables/contamination.json --out-csv results/tables/contamination.csv [--n 13]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from tqdm import tqdm

from rspo_core.atomic import write_text_atomic
from rspo_core.cli import parse_strict

from rspo_core.jsonl import read_jsonl

log = logging.getLogger(__name__)

NORMALISER_VERSION = "1"
CSV_COLUMNS = ["benchmark", "n", "n_problems", "n_too_short", "n_exact", "n_flagged", "frac_flagged", "max_overlap",
               "mean_overlap", "train_rows", "train_ngrams"]

_SPACING_RE = re.compile(r"\\(?:[,;:! ]|quad\b|qquad\b|enspace\b|thinspace\b|medspace\b|thickspace\b|left\b|right\b"
                         r"|displaystyle\b|hspace\*?\{[^}]*\}|vspace\*?\{[^}]*\})|~|\$")
_WORD_RE = re.compile(r"\\[a-z]+|[a-z0-9]+")


def normalise_text(text: str) -> str:
    """Lowercase, strip LaTeX spacing commands and ``$``, unify ``\\dfrac``/``\\tfrac``, collapse whitespace."""
    t = text.lower()
    t = _SPACING_RE.sub(" ", t)
    t = re.sub(r"\\[dt]frac(?![a-z])", r"\\frac", t)
    return " ".join(t.split())


def tokenize(text: str) -> list[str]:
    """Normalised words of ``text``: ``[a-z0-9]+`` runs and LaTeX command names (see module docstring)."""
    return _WORD_RE.findall(normalise_text(text))


def ngram_hashes(words: list[str], n: int) -> Iterator[int]:
    """Hashes of the ``len(words) - n + 1`` contiguous word n-grams (none if fewer than n words)."""
    for i in range(len(words) - n + 1):
        yield hash(tuple(words[i : i + n]))


def _check_n(n: int) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n-gram size n={n!r}; expected a positive integer (GPT-3 used 13)")


def training_texts(row: Mapping, include_solutions: bool = True) -> list[str]:
    """Texts of one training row: its question, plus ``meta.solution`` when present and asked for."""
    texts = [row.get("question") or ""]
    sol = (row.get("meta") or {}).get("solution")
    if include_solutions and isinstance(sol, str):
        texts.append(sol)
    return texts


def exact_key(text: str) -> int:
    """Hash of the normalised text with all whitespace removed (exact-duplicate detection)."""
    return hash("".join(normalise_text(text).split()))


class TrainIndex(set):
    """Set of hashed word n-grams of the training texts, plus ``exact``: hashed normalised training questions."""

    def __init__(self, *args):
        super().__init__(*args)
        self.exact: set[int] = set()


def build_index(train_rows: Iterable[Mapping], n: int = 13, *, include_solutions: bool = True) -> TrainIndex:
    """Set of hashed word n-grams over all training texts (a ``TrainIndex``, a ``set[int]``)."""
    _check_n(n)
    index = TrainIndex()
    for row in tqdm(train_rows, desc="train n-grams", unit="row", disable=None):
        for text in training_texts(row, include_solutions):
            index.update(ngram_hashes(tokenize(text), n))
        index.exact.add(exact_key(row.get("question") or ""))
    return index


def problem_overlap(question: str, index: set[int], n: int) -> tuple[int, int]:
    """(shared n-grams, total n-grams) of one question against the index; total 0 if under n words."""
    grams = list(ngram_hashes(tokenize(question), n))
    return sum(g in index for g in grams), len(grams)


def audit_rows(name: str, rows: list[Mapping], index: set[int], n: int) -> dict:
    """Per-benchmark summary (see module docstring); ``flagged`` entries ``{id, overlap, shared, total, exact}``.

    ``overlap`` is None for a problem under n words (flagged only when it is an exact duplicate).
    """
    exact_set = getattr(index, "exact", set())
    flagged, overlaps, too_short, n_exact = [], [], 0, 0
    for row in rows:
        question = row.get("question") or ""
        shared, total = problem_overlap(question, index, n)
        exact = exact_key(question) in exact_set
        n_exact += exact
        ratio = shared / total if total else None
        if total == 0:
            too_short += 1
        else:
            overlaps.append(ratio)
        if shared or exact:
            flagged.append({"id": row["id"], "overlap": ratio, "shared": shared, "total": total, "exact": exact})
    n_problems = len(rows)
    return {
        "benchmark": name,
        "n": n,
        "n_problems": n_problems,
        "n_too_short": too_short,
        "n_exact": n_exact,
        "n_flagged": len(flagged),
        "frac_flagged": len(flagged) / n_problems if n_problems else 0.0,
        "max_overlap": max(overlaps) if overlaps else 0.0,
        "mean_overlap": sum(overlaps) / len(overlaps) if overlaps else 0.0,
        "flagged": sorted(flagged, key=lambda f: (-(f["overlap"] if f["overlap"] is not None else 1.0),
                                                  not f["exact"], str(f["id"]))),
    }


def attach_train_ids(results: dict[str, dict], bench_rows: dict[str, list[Mapping]], train_rows: list[Mapping],
                     n: int, *, include_solutions: bool = True, max_ids: int = 5) -> None:
    """Second, targeted pass: for each flagged problem, the ids of (up to ``max_ids``) training rows sharing an n-gram.

    Only the flagged problems' n-grams are looked up, so this costs one scan of the training set.
    """
    wanted: dict[int, list[tuple[str, int]]] = {}  # n-gram hash -> [(benchmark, index in flagged list)]
    wanted_exact: dict[int, list[tuple[str, int]]] = {}  # exact key -> [(benchmark, index in flagged list)]
    for name, res in results.items():
        by_id = {r["id"]: r for r in bench_rows[name]}
        for j, f in enumerate(res["flagged"]):
            f["train_ids"] = []
            question = by_id[f["id"]].get("question") or ""
            for g in set(ngram_hashes(tokenize(question), n)):
                wanted.setdefault(g, []).append((name, j))
            if f["exact"]:
                wanted_exact.setdefault(exact_key(question), []).append((name, j))
    if not wanted and not wanted_exact:
        return
    for row in train_rows:
        grams = set()
        for text in training_texts(row, include_solutions):
            grams.update(ngram_hashes(tokenize(text), n))
        hits = [(name, j) for g in grams & wanted.keys() for name, j in wanted[g]]
        hits += wanted_exact.get(exact_key(row.get("question") or ""), [])
        for name, j in hits:
            ids = results[name]["flagged"][j]["train_ids"]
            if row.get("id") not in ids and len(ids) < max_ids:
                ids.append(row.get("id"))


def audit(train_path: str | os.PathLike, benches: Mapping[str, str | os.PathLike], out_json: str | os.PathLike,
          out_csv: str | os.PathLike, *, n: int = 13, include_solutions: bool = True) -> dict:
    """Audit every benchmark JSONL in ``benches`` (name -> path) against the training JSONL; write JSON + CSV.

    Inputs are checked (n, non-empty benchmark list, files exist) before the training set is read.
    Returns the JSON document: ``{n, train, train_rows, train_ngrams, include_solutions, normaliser_version,
    benchmarks: {name: summary}}``; the CSV has one row per benchmark with ``CSV_COLUMNS``.
    """
    _check_n(n)
    if not benches:
        raise ValueError("no benchmarks given; expected at least one NAME=PATH")
    missing = [str(p) for p in [train_path, *benches.values()] if not Path(p).is_file()]
    if missing:
        raise ValueError(f"input file(s) not found: {missing}")
    train_rows = read_jsonl(train_path)
    log.info("indexing %d training rows (n=%d, solutions=%s)", len(train_rows), n, include_solutions)
    index = build_index(train_rows, n, include_solutions=include_solutions)
    bench_rows = {name: read_jsonl(p) for name, p in benches.items()}
    results = {name: audit_rows(name, rows, index, n) for name, rows in bench_rows.items()}
    attach_train_ids(results, bench_rows, train_rows, n, include_solutions=include_solutions)
    for res in results.values():
        res["train_rows"], res["train_ngrams"] = len(train_rows), len(index)
        log.info("%s: %d/%d flagged (%.1f%%; %d exact duplicates, %d under n words), max overlap %.3f",
                 res["benchmark"], res["n_flagged"], res["n_problems"], 100 * res["frac_flagged"], res["n_exact"],
                 res["n_too_short"], res["max_overlap"])
    doc = {"n": n, "train": str(train_path), "train_rows": len(train_rows), "train_ngrams": len(index),
           "include_solutions": include_solutions, "normaliser_version": NORMALISER_VERSION, "benchmarks": results}
    write_text_atomic(out_json, json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for res in results.values():
        w.writerow(res)
    write_text_atomic(out_csv, buf.getvalue())
    return doc


def parse_bench_args(items: list[str]) -> dict[str, str]:
    """``["math500=a.jsonl", ...]`` -> ``{"math500": "a.jsonl"}``; ValueError on a malformed or repeated name."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--bench {item!r}: expected NAME=PATH")
        if name in out:
            raise ValueError(f"--bench name {name!r} given twice; expected each benchmark once")
        out[name] = path
    return out


def build_parser() -> argparse.ArgumentParser:
    """The CLI's parser."""
    p = argparse.ArgumentParser(prog="python -m analysis.contamination", description=__doc__.split("\n")[0])
    p.add_argument("--train", required=True, help="training set JSONL (rows {id, question, answer, meta})")
    p.add_argument("--bench", action="append", required=True, metavar="NAME=PATH", help="benchmark JSONL (repeat)")
    p.add_argument("--out-json", required=True, help="output JSON (summary + flagged problems)")
    p.add_argument("--out-csv", required=True, help="output CSV (one row per benchmark)")
    p.add_argument("--n", type=int, default=13, help="word n-gram size (GPT-3: 13)")
    p.add_argument("--questions-only", action="store_true", help="index training questions only, not solutions")
    return p


def check_argv(argv: list[str]) -> None:
    """Parse and check a command line without running it (the workflow calls this before any job). ValueError."""
    args = parse_strict(build_parser(), argv)
    if args.n < 1:
        raise ValueError(f"--n {args.n}: expected an n-gram size >= 1")
    parse_bench_args(args.bench)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point (see module docstring)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        doc = audit(args.train, parse_bench_args(args.bench), args.out_json, args.out_csv, n=args.n,
                    include_solutions=not args.questions_only)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for res in doc["benchmarks"].values():
        print(f"{res['benchmark']}: {res['n_flagged']}/{res['n_problems']} flagged, max overlap {res['max_overlap']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
