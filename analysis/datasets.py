"""Benchmark registry, HF loaders, synthetic arithmetic, and freezing everything to JSONL.

Every data set the workflow uses becomes one JSONL file of rows ``{id, question, answer, meta}``:

* ``id``       unique string ``"{benchmark}-{h}"``, h = the first 12 hex digits of sha256(question): stable when the
               data set is reordered or grows (a question that occurs twice gets ``-2``, ``-3``, ... in load order);
* ``question`` the problem text exactly as the data set gives it;
* ``answer``   the gold answer as a string. Integral floats and integers with leading zeros are canonicalised
               (``27.0`` / ``"27.0"`` -> ``"27"``, ``"033"`` -> ``"33"``) and the original value is kept in
               ``meta.answer_raw`` — never silently;
* ``meta``     everything else worth keeping (source id, config, subject, level, unit, ...).

Run::

    python -m analysis.datasets list
    python -m analysis.datasets prepare math500 results/data/math500.jsonl
    HF_TOKEN=hf_... python -m analysis.datasets prepare livemathbench results/data/livemathbench.jsonl
    python -m analysis.datasets arithmetic --train train.jsonl --test test.jsonl --tiers add2 \\
        --n-train 2000 --n-test 200 --seed 0 [--clean clean.jsonl --n-clean 200 --seen seen.jsonl --n-seen 200]

Ids, fields and row counts come from research/evaluation.md; every loader checks the row count it got.
The training set ``math_train`` is the 7,500 MATH *train* problems: MATH500 is drawn from MATH's test split,
so the test split is never read here.

Pinning: every data set is loaded at ``BenchmarkSpec.revision``, a hub commit sha read off the hub's own pages.
Where no sha could be verified the spec holds ``REVISION_UNVERIFIED`` and the loader warns and reads the hub's
current ``main``; the audit file records which. ``prepare`` also runs the gold self-check (analysis.gold_check) and
writes ``{out}.audit.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from analysis import gold_check
from analysis.arithmetic import (  # noqa: F401  (re-exported)
    SYNTHETIC_BENCHMARKS, TIERS, check_arithmetic_args, make_arithmetic, make_arithmetic_rows, make_arithmetic_sets)
from rspo_core.atomic import write_jsonl_atomic, write_text_atomic  # noqa: F401  (write_jsonl_atomic re-exported)
from rspo_core.cli import parse_strict
from rspo_core.grading import last_boxed  # the ONE answer extractor (also used to grade outputs)
from rspo_core.jsonl import read_jsonl

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------------------------------------------------
# JSONL I/O


# ----------------------------------------------------------------------------------------------------------------------
# Answer normalisation helpers

_INT_FLOAT_RE = re.compile(r"^([+-]?\d+)\.0*$")  # "27.0", "27." -> integral
_LEADING_ZERO_RE = re.compile(r"^([+-]?)0+(\d+)$")  # "033" -> "33"


def answer_to_str(value: Any) -> tuple[str, Any]:
    """Gold answer -> (canonical string, original value or None if unchanged).

    * ``str``: stripped; ``"27.0"`` -> ``"27"``; ``"033"`` -> ``"33"`` (AIME style); anything else kept as is.
    * ``int`` -> ``str(int)``; integral ``float`` -> integer string; other floats -> ``repr`` (shortest round-trip).
    * ``bool``/``None``/containers -> ValueError (a gold answer must be a scalar; lists are handled by the loader).

    The second element is the original value whenever the string differs from ``str(value)``, so callers can store
    it in ``meta.answer_raw``.
    """
    if isinstance(value, bool) or value is None or isinstance(value, (list, tuple, dict)):
        raise ValueError(f"gold answer {value!r} has type {type(value).__name__}; expected a string or a number")
    if isinstance(value, int):
        return str(value), None
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"gold answer {value!r} is not finite; expected a finite number")
        if value.is_integer():
            return str(int(value)), value
        return repr(value), None
    if not isinstance(value, str):
        raise ValueError(f"gold answer {value!r} has type {type(value).__name__}; expected a string or a number")
    s = value.strip()
    m = _INT_FLOAT_RE.match(s)
    if m:
        s = m.group(1)
    m = _LEADING_ZERO_RE.match(s)
    if m:
        s = m.group(1) + m.group(2)
    if s.startswith("+"):
        s = s[1:] if s[1:].isdigit() else s
    return s, (None if s == value else value)


def strip_math_delimiters(s: str) -> str:
    """Remove one pair of enclosing ``$...$`` / ``$$...$$`` / ``\\(...\\)`` / ``\\[...\\]`` around a whole answer."""
    t = s.strip()
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if len(t) > len(left) + len(right) and t.startswith(left) and t.endswith(right):
            inner = t[len(left) : len(t) - len(right)]
            if left == "$" and "$" in inner:  # "$a$ and $b$": not one enclosing pair
                continue
            return inner.strip()
    return t


# ----------------------------------------------------------------------------------------------------------------------
# Row normalisers: raw dataset row -> (question, answer, meta). One per schema.


def _scalar_row(question_field: str, answer_field: str, keep: tuple[str, ...] = ()) -> Callable[[dict], tuple]:
    """Normaliser for schemas with a plain question field and a scalar answer field."""

    def normalise(raw: dict) -> tuple[str, str, dict]:
        question = _require(raw, question_field)
        answer, original = answer_to_str(_require(raw, answer_field))
        meta = {k: raw[k] for k in keep if k in raw and raw[k] is not None}
        if original is not None:
            meta["answer_raw"] = original
        return question, answer, meta

    normalise.__doc__ = f"question <- {question_field!r}, answer <- {answer_field!r} (canonicalised), meta <- {keep}"
    return normalise


def _olympiad_row(raw: dict) -> tuple[str, str, dict]:
    """OlympiadBench: ``final_answer`` is a list of strings (``$...$`` wrapped); join with ", ".

    meta: ``final_answer`` (the raw list), ``multiple_answer`` (the data set's ``is_multiple_answer`` or len > 1),
    ``unit``, ``answer_type``, ``subfield``, ``source_id``. The unit is NOT appended to the answer.
    """
    question = _require(raw, "question")
    final = _require(raw, "final_answer")
    if isinstance(final, str):
        final = [final]
    if not isinstance(final, (list, tuple)) or not final:
        raise ValueError(f"OlympiadBench final_answer {final!r}: expected a non-empty list of strings")
    parts = [answer_to_str(strip_math_delimiters(str(a)))[0] for a in final]
    meta = {
        "final_answer": list(final),
        "multiple_answer": bool(raw.get("is_multiple_answer")) or len(final) > 1,
        "unit": raw.get("unit") or None,
        "answer_type": raw.get("answer_type"),
    }
    for k in ("subfield", "id"):
        if raw.get(k) is not None:
            meta["source_id" if k == "id" else k] = raw[k]
    return question, ", ".join(parts), meta


def _math_train_row(raw: dict) -> tuple[str, str, dict]:
    """MATH train: answer = content of the last ``\\boxed{}`` of ``solution`` (balanced braces;
    ``rspo_core.grading.last_boxed``, the same extractor that grades model outputs).

    meta: level, type (subject), solution (kept: the contamination audit and SFT-style uses need it).
    Raises ValueError when the solution has no box.
    """
    question = _require(raw, "problem")
    solution = _require(raw, "solution")
    answer = last_boxed(solution)
    if answer is None or not answer.strip():
        raise NoAnswerError(f"MATH solution has no \\boxed{{}} answer: {solution[-120:]!r}")
    meta = {"level": raw.get("level"), "type": raw.get("type"), "solution": solution}
    return question, answer.strip(), meta


class NoAnswerError(ValueError):
    """A raw row has no extractable gold answer (e.g. a MATH solution without \\boxed{})."""


# A training set may lose at most this fraction of rows to NoAnswerError (logged); an evaluation set loses none.
MAX_TRAIN_DROP_FRAC = 0.01


def _require(raw: Mapping, key: str) -> Any:
    if key not in raw or raw[key] is None or (isinstance(raw[key], str) and not raw[key].strip()):
        raise ValueError(f"raw row lacks a non-empty {key!r} field (has {sorted(raw)}); expected the data set's schema")
    return raw[key]


# ----------------------------------------------------------------------------------------------------------------------
# Registry


@dataclass(frozen=True)
class BenchmarkSpec:
    """One data set on the HF hub and how to freeze it.

    ``configs``: HF config names, loaded in order and concatenated (``[None]`` = the default config).
    ``expected_rows``: rows the loader must produce (None = not verified; the loader warns and logs the count).
    ``revision``: the hub commit (40 hex digits) to load, or ``REVISION_UNVERIFIED`` (warned; loads ``main``).
    ``solution_field``: raw field holding a reference solution for the gold self-check (None: none).
    ``normaliser``: raw row -> (question, answer, meta).
    """

    name: str
    hf_id: str
    configs: list[str | None]
    split: str
    question_field: str
    answer_field: str
    expected_rows: int | None
    revision: str
    gated: bool = False
    normaliser: Callable[[dict], tuple[str, str, dict]] = field(default=None, repr=False)  # type: ignore[assignment]
    is_train: bool = False
    solution_field: str | None = None
    note: str = ""

    @property
    def revision_verified(self) -> bool:
        """True iff ``revision`` is a full commit sha (40 hex digits)."""
        return bool(_SHA_RE.fullmatch(self.revision))


# A revision nobody could verify: the loader reads the hub's current main and says so. Never replace it by a sha
# that was not read off the hub (a commit page, tree page or API answer for that very data set).
REVISION_UNVERIFIED = "UNVERIFIED"
_SHA_RE = re.compile(r"[0-9a-f]{40}")


MATH_SUBJECTS = [
    "algebra",
    "counting_and_probability",
    "geometry",
    "intermediate_algebra",
    "number_theory",
    "prealgebra",
    "precalculus",
]

# Revisions: each sha below was read off a Hugging Face page of that very data set (huggingface.co/datasets/...):
#   HuggingFaceH4/MATH-500/commits/ff5b2025...   "Update README.md" (lewtun), test.jsonl (447 kB) at that commit
#   AI-MO/aimo-validation-amc/commit/b16c5c52... "Update README.md" on main; card: 83 rows, data/train-*
#   Hothan/OlympiadBench/tree/3b426ee1...        "Update README.md" (Hothan; folder OlympiadBench/, README 3.63 kB);
#                                                the README's configs (incl. OE_TO_maths_en_COMP -> OlympiadBench/
#                                                OE_TO_maths_en_COMP/OE_TO_maths_en_COMP.parquet) were added by the
#                                                earlier commit 1ed0e892 (its diff grows the README from 3 lines)
# No usable sha was found for aime_2024, amc23, minervamath, AIME2025, LiveMathBench and hendrycks_math
# (its 453d1f63... is the first commit of PR #3 "Convert dataset to Parquet": only algebra/ converted there, the
# loading script still present; main's merge 7811dc4 was seen only abbreviated): REVISION_UNVERIFIED.
BENCHMARKS: dict[str, BenchmarkSpec] = {
    s.name: s
    for s in [
        BenchmarkSpec("aime24", "HuggingFaceH4/aime_2024", [None], "train", "problem", "answer", 30,
                      REVISION_UNVERIFIED, normaliser=_scalar_row("problem", "answer", ("id", "year", "url")),
                      solution_field="solution"),
        BenchmarkSpec("amc", "AI-MO/aimo-validation-amc", [None], "train", "problem", "answer", 83,
                      "b16c5c52362a8f0acafef95fd6d94a8468982e08",
                      normaliser=_scalar_row("problem", "answer", ("id", "url")),
                      note="the paper's AMC (NuminaMath's AMC validation set, ref. [13]); float answers canonicalised"),
        BenchmarkSpec("amc23", "math-ai/amc23", [None], "test", "question", "answer", 40, REVISION_UNVERIFIED,
                      normaliser=_scalar_row("question", "answer", ("id", "url")),
                      note="alternative AMC (2023 only); answers like '27.0' are canonicalised to '27'"),
        BenchmarkSpec("math500", "HuggingFaceH4/MATH-500", [None], "test", "problem", "answer", 500,
                      "ff5b20257d8185524591543f8ff5993951537bb8",
                      normaliser=_scalar_row("problem", "answer", ("unique_id", "subject", "level")),
                      solution_field="solution"),
        BenchmarkSpec("minerva", "math-ai/minervamath", [None], "test", "question", "answer", 272,
                      REVISION_UNVERIFIED, normaliser=_scalar_row("question", "answer", ("idx", "id")),
                      note="the 272-problem Minerva/OCW set, not lm-eval's minerva_math (which is MATH)"),
        BenchmarkSpec("olympiadbench", "Hothan/OlympiadBench", ["OE_TO_maths_en_COMP"], "train", "question",
                      "final_answer", 675, "3b426ee1d587c71b495146dde9f3e995ee7ac59f", normaliser=_olympiad_row,
                      solution_field="solution", note="final_answer list joined with ', '; unit in meta.unit"),
        BenchmarkSpec("aime25", "opencompass/AIME2025", ["AIME2025-I", "AIME2025-II"], "test", "question", "answer",
                      30, REVISION_UNVERIFIED, normaliser=_scalar_row("question", "answer", ())),
        BenchmarkSpec("livemathbench", "opencompass/LiveMathBench", ["v202505_all_en"], "test", "question", "answer",
                      None, REVISION_UNVERIFIED, gated=True,
                      normaliser=_scalar_row("question", "answer", ("question_type",)),
                      note="the paper's LiveMathBench (202505): OpenCompass's v202505 default (split all, en); gated: "
                           "accept the terms on the HF page and set HF_TOKEN; row count not verified"),
        BenchmarkSpec("math_train", "EleutherAI/hendrycks_math", list(MATH_SUBJECTS), "train", "problem", "solution",
                      7500, REVISION_UNVERIFIED, normaliser=_math_train_row, is_train=True,
                      solution_field="solution",
                      note="MATH train split only (MATH500 comes from the test split); answer = last \\boxed{}"),
    ]
}

EVAL_BENCHMARKS = [n for n, s in BENCHMARKS.items() if not s.is_train]


class GatedDatasetError(ValueError):
    """A gated HF data set was requested without an access token."""


def get_spec(name: str) -> BenchmarkSpec:
    """Registry lookup; ValueError listing the valid names."""
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; expected one of {', '.join(BENCHMARKS)}")
    return BENCHMARKS[name]


def resolve_token(spec: BenchmarkSpec, token: str | None) -> str | None:
    """Token from the argument, else ``HF_TOKEN`` / ``HUGGING_FACE_HUB_TOKEN``; GatedDatasetError if gated and none."""
    token = token or os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN") or None
    if spec.gated and not token:
        raise GatedDatasetError(
            f"benchmark {spec.name!r} ({spec.hf_id}) is gated on the Hugging Face hub: accept its terms at "
            f"https://huggingface.co/datasets/{spec.hf_id} while logged in, then set HF_TOKEN=<your token> "
            f"(or pass --token) and rerun"
        )
    return token


def load_raw(spec: BenchmarkSpec, token: str | None = None, cache_dir: str | os.PathLike | None = None
             ) -> list[tuple[str | None, dict]]:
    """Download every config of ``spec`` with ``datasets.load_dataset``; returns ``[(config, raw_row), ...]``.

    ``cache_dir``: the datasets cache (default: the library's, ``~/.cache/huggingface/datasets``).
    """
    import datasets  # heavy import, only when actually loading

    revision = spec.revision if spec.revision_verified else None
    if revision is None:
        log.warning("%s (%s): revision %s: no verified commit sha is pinned; loading the hub's current main, so "
                    "this data may differ from other runs (see the audit file)", spec.name, spec.hf_id, spec.revision)
    out: list[tuple[str | None, dict]] = []
    for config in spec.configs:
        log.info("loading %s config=%s split=%s revision=%s", spec.hf_id, config, spec.split, revision or "main")
        ds = datasets.load_dataset(spec.hf_id, config, split=spec.split, token=token, revision=revision,
                                   cache_dir=str(cache_dir) if cache_dir is not None else None)
        out.extend((config, dict(row)) for row in ds)
    return out


def _tag_raw(spec: BenchmarkSpec, raw: Iterable[dict] | Mapping[str, Iterable[dict]]) -> list[tuple[str | None, dict]]:
    """Accept raw rows as an iterable of dicts, or a mapping {config: rows}; return [(config, row)]."""
    if isinstance(raw, Mapping):
        bad = [c for c in raw if c not in spec.configs]
        if bad:
            raise ValueError(f"raw configs {bad} not in {spec.name}'s configs {spec.configs}")
        return [(c, dict(r)) for c in spec.configs if c in raw for r in raw[c]]
    rows = []
    for r in raw:
        if not isinstance(r, Mapping):
            raise ValueError(f"raw row {r!r} has type {type(r).__name__}; expected a dict in {spec.hf_id}'s schema")
        rows.append((None, dict(r)))
    return rows


def content_id(name: str, question: str) -> str:
    """``"{name}-{h}"``, h = first 12 hex digits of sha256(question as UTF-8): the row's id, independent of order."""
    return f"{name}-{hashlib.sha256(question.encode('utf-8')).hexdigest()[:12]}"


def normalise_with_solutions(spec: BenchmarkSpec, tagged: list[tuple[str | None, dict]]
                             ) -> tuple[list[dict], list[str | None]]:
    """Raw rows -> (``{id, question, answer, meta}`` rows, the reference solution of each kept row or None).

    Ids: :func:`content_id`; a question seen before gets ``-2``, ``-3``, ... (warned). ValueError naming the raw row
    index on a bad row. A training set (``spec.is_train``) drops rows without an extractable answer
    (NoAnswerError), with a warning, as long as they are at most ``MAX_TRAIN_DROP_FRAC`` of the rows; an
    evaluation set never drops a row.
    """
    rows, solutions, dropped, seen = [], [], [], {}
    for i, (config, raw) in enumerate(tagged):
        try:
            question, answer, meta = spec.normaliser(raw)
        except NoAnswerError as exc:
            if not spec.is_train:
                raise ValueError(f"{spec.name} row {i}: {exc}") from exc
            dropped.append((i, str(exc)))
            continue
        except ValueError as exc:
            raise ValueError(f"{spec.name} row {i}: {exc}") from exc
        if not answer:
            raise ValueError(f"{spec.name} row {i}: empty gold answer; expected a non-empty string")
        if config is not None and len(spec.configs) > 1:
            meta = {"config": config, **meta}
        rid = content_id(spec.name, question)
        seen[rid] = seen.get(rid, 0) + 1
        if seen[rid] > 1:
            log.warning("%s row %d repeats the question of %s: id %s-%d", spec.name, i, rid, rid, seen[rid])
            rid = f"{rid}-{seen[rid]}"
        rows.append({"id": rid, "question": question, "answer": answer, "meta": meta})
        solutions.append(gold_check.reference_solution(raw, spec.solution_field))
    if dropped:
        frac = len(dropped) / len(tagged)
        detail = "; ".join(f"row {i}: {msg}" for i, msg in dropped[:5])
        if frac > MAX_TRAIN_DROP_FRAC:
            raise ValueError(f"{spec.name}: {len(dropped)}/{len(tagged)} rows have no extractable answer "
                             f"(> {MAX_TRAIN_DROP_FRAC:.0%}); expected almost all to have one. {detail}")
        log.warning("%s: dropped %d/%d rows without an extractable answer: %s", spec.name, len(dropped), len(tagged),
                    detail)
    return rows, solutions


def normalise_rows(spec: BenchmarkSpec, tagged: list[tuple[str | None, dict]]) -> list[dict]:
    """Raw rows -> ``{id, question, answer, meta}`` rows (:func:`normalise_with_solutions` without the solutions)."""
    return normalise_with_solutions(spec, tagged)[0]


def check_count(spec: BenchmarkSpec, got: int, *, allow_mismatch: bool = False) -> None:
    """ValueError (naming benchmark, got, expected) if ``got != spec.expected_rows``; a warning if allowed."""
    if spec.expected_rows is None:
        log.warning("%s (%s): got %d rows; no verified row count is registered for it, so the count is not checked",
                    spec.name, spec.hf_id, got)
        return
    if got != spec.expected_rows:
        msg = f"benchmark {spec.name!r} ({spec.hf_id}): got {got} rows, expected {spec.expected_rows}"
        if not allow_mismatch:
            raise ValueError(msg + " (pass --allow-count-mismatch / allow_count_mismatch=True to write anyway)")
        log.warning("%s; writing anyway (allow_count_mismatch)", msg)


class GoldSelfCheckError(ValueError):
    """A prepared row's gold does not grade correct against itself and is not a known upstream error."""


def audit_path_for(out_path: str | os.PathLike) -> str:
    """``results/data/x.jsonl`` -> ``results/data/x.audit.json`` (the data stage's audit file)."""
    p = str(out_path)
    return (p[: -len(".jsonl")] if p.endswith(".jsonl") else p) + ".audit.json"


def _apply_self_check(spec: BenchmarkSpec, rows: list[dict], report: dict, audit: str | None) -> list[dict]:
    """Rows to write after the gold self-check: an evaluation set with an unexpected failure raises
    GoldSelfCheckError; a training set drops such rows (at most MAX_TRAIN_DROP_FRAC of them, else ValueError)."""
    bad = gold_check.unexpected(report)
    if not bad:
        return rows
    if not spec.is_train:
        raise GoldSelfCheckError(gold_check.failure_line(spec.name, bad, audit))
    bad_ids = {f["id"] for f in bad}
    if len(bad_ids) > MAX_TRAIN_DROP_FRAC * len(rows):
        raise GoldSelfCheckError(gold_check.failure_line(spec.name, bad, audit)
                                 + f" ({len(bad_ids)}/{len(rows)} rows > {MAX_TRAIN_DROP_FRAC:.0%})")
    log.warning("%s: dropping %d/%d training rows whose gold cannot grade correct (they could never earn a reward): "
                "%s", spec.name, len(bad_ids), len(rows), ", ".join(sorted(bad_ids)[:5]))
    report["dropped_ids"] = sorted(bad_ids)
    return [r for r in rows if r["id"] not in bad_ids]


def self_check_file(name: str, path: str | os.PathLike) -> dict:
    """Gold self-check of a frozen JSONL file (no reference solutions); GoldSelfCheckError if any row fails."""
    rows = read_jsonl(path)
    report = gold_check.self_check(name, rows, [None] * len(rows))
    bad = gold_check.unexpected(report)
    if bad:
        raise GoldSelfCheckError(gold_check.failure_line(name, bad, None))
    return report


def prepare(
    name: str,
    out_path: str | os.PathLike,
    *,
    raw: Iterable[dict] | Mapping[str, Iterable[dict]] | None = None,
    token: str | None = None,
    allow_count_mismatch: bool = False,
    audit_path: str | os.PathLike | None = None,
    self_check: bool = True,
    timeout: float = 5.0,
) -> int:
    """Freeze benchmark ``name`` to JSONL at ``out_path``; returns the number of rows written.

    ``raw``: rows in the data set's own schema (an iterable, or a mapping config -> rows) instead of downloading —
    how tests feed fixtures. Without it the rows come from ``datasets.load_dataset`` at the pinned revision (for a
    gated set the token is checked first: GatedDatasetError before any download). The row count is checked against
    ``expected_rows`` before anything is written; ids must be unique. Then the gold self-check
    (analysis.gold_check; ``timeout`` s per graded pair) runs; its report, the revision and the counts go to
    ``audit_path`` (default: :func:`audit_path_for`), written even when the check fails. GoldSelfCheckError (one
    line: benchmark, row id, gold) if an evaluation row fails it and is not a known upstream error; a training set
    drops such rows instead (at most MAX_TRAIN_DROP_FRAC). The data file is written atomically, only on success.
    """
    spec = get_spec(name)
    audit = str(audit_path) if audit_path is not None else audit_path_for(out_path)
    if raw is None:
        tok = resolve_token(spec, token)
        tagged = load_raw(spec, tok)
    else:
        tagged = _tag_raw(spec, raw)
    check_count(spec, len(tagged), allow_mismatch=allow_count_mismatch)
    rows, solutions = normalise_with_solutions(spec, tagged)
    changed = sum("answer_raw" in r["meta"] for r in rows)
    if changed:
        log.info("%s: %d answers canonicalised (originals in meta.answer_raw)", name, changed)
    report = gold_check.self_check(name, rows, solutions, timeout=timeout) if self_check else None
    info = {"benchmark": name, "hf_id": spec.hf_id, "configs": spec.configs, "split": spec.split,
            "revision": spec.revision, "revision_verified": spec.revision_verified,
            "source": "download" if raw is None else "raw rows passed in", "expected_rows": spec.expected_rows,
            "raw_rows": len(tagged), "normalised_rows": len(rows), "gold_self_check": report}
    try:
        if report is not None:
            for f in report["failures"]:
                (log.info if f["known_upstream_error"] else log.error)(
                    "%s %s gold %r: %s does not grade correct (extracted %r, status %s)%s", name, f["id"], f["gold"],
                    f["check"], f["extracted"], f["status"],
                    f"; known upstream error: {f['known_upstream_error']}" if f["known_upstream_error"] else "")
            rows = _apply_self_check(spec, rows, report, audit)
            log.info("%s: gold self-check graded %d pairs in %.1f s: %d failures (%d known upstream errors)", name,
                     report["checked"], report["seconds"], len(report["failures"]),
                     len(report["failures"]) - len(gold_check.unexpected(report)))
        info["rows_written"] = len(rows)
    finally:
        write_text_atomic(audit, json.dumps(info, indent=1, ensure_ascii=False) + "\n")
    n = write_jsonl_atomic(out_path, rows)
    log.info("%s: wrote %d rows to %s (audit: %s)", name, n, out_path, audit)
    return n


# ----------------------------------------------------------------------------------------------------------------------
# CLI


def _cmd_list() -> None:
    print(f"{'name':<14} {'rows':>5}  {'gated':<5}  {'split':<6} {'revision':<12} hf_id [configs]")
    for s in BENCHMARKS.values():
        configs = "" if s.configs == [None] else " [" + ", ".join(c for c in s.configs if c) + "]"
        rows = "?" if s.expected_rows is None else str(s.expected_rows)
        rev = s.revision[:10] if s.revision_verified else s.revision
        print(f"{s.name:<14} {rows:>5}  {'yes' if s.gated else 'no':<5}  {s.split:<6} {rev:<12} {s.hf_id}{configs}")
    print("\narithmetic tiers:")
    for t, (desc, _) in TIERS.items():
        print(f"  {t:<6} {desc}")
    print("\nsynthetic benchmarks (rule arithmetic):")
    for name, desc in SYNTHETIC_BENCHMARKS.items():
        print(f"  {name:<16} {desc}")


def build_parser() -> argparse.ArgumentParser:
    """The CLI's parser: sub-commands list, prepare, arithmetic."""
    p = argparse.ArgumentParser(prog="python -m analysis.datasets", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="list registered benchmarks and arithmetic tiers")
    pp = sub.add_parser("prepare", help="download one benchmark and freeze it to JSONL")
    pp.add_argument("name", help="benchmark name (see `list`)")
    pp.add_argument("out", help="output JSONL path")
    pp.add_argument("--token", default=None, help="HF token for gated sets (default: $HF_TOKEN)")
    pp.add_argument("--allow-count-mismatch", action="store_true", help="write even if the row count is unexpected")
    pp.add_argument("--audit", default=None, help="audit JSON to write (default: OUT with .audit.json)")
    pa = sub.add_parser("arithmetic", help="write synthetic arithmetic train/test sets")
    pa.add_argument("--train", required=True, help="output train JSONL")
    pa.add_argument("--test", required=True, help="output test JSONL")
    pa.add_argument("--tiers", nargs="+", default=["add2"],
                    help=f"tiers from {', '.join(TIERS)} (space- or comma-separated)")
    pa.add_argument("--n-train", type=int, default=2000, help="total train rows (split over tiers)")
    pa.add_argument("--n-test", type=int, default=200, help="total test rows (split over tiers)")
    pa.add_argument("--seed", type=int, default=0, help="sampling seed")
    pa.add_argument("--clean", default=None, help="output arithmetic_clean JSONL (trained tiers, not in train/test)")
    pa.add_argument("--n-clean", type=int, default=0, help="arithmetic_clean rows (split over tiers)")
    pa.add_argument("--seen", default=None, help="output arithmetic_seen JSONL (training rows, verbatim)")
    pa.add_argument("--n-seen", type=int, default=0, help="arithmetic_seen rows (split over tiers)")
    return p


def _arith_tiers(args: argparse.Namespace) -> list[str]:
    return [t for item in args.tiers for t in item.split(",") if t]


def check_argv(argv: list[str]) -> None:
    """Parse and check a command line without running it (the workflow calls this before any job). ValueError."""
    args = parse_strict(build_parser(), argv)
    if args.cmd == "prepare":
        get_spec(args.name)
    elif args.cmd == "arithmetic":
        check_arithmetic_args(tiers=_arith_tiers(args), n_train=args.n_train, n_test=args.n_test,
                              n_clean=args.n_clean, n_seen=args.n_seen)
        if (args.n_clean and not args.clean) or (args.n_seen and not args.seen):
            raise ValueError(f"--n-clean {args.n_clean} / --n-seen {args.n_seen}: a non-zero size needs its output "
                             "path (--clean / --seen)")


def main(argv: list[str] | None = None) -> int:
    """CLI entry point (see module docstring)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.cmd == "list":
            _cmd_list()
        elif args.cmd == "prepare":
            n = prepare(args.name, args.out, token=args.token, allow_count_mismatch=args.allow_count_mismatch,
                        audit_path=args.audit)
            print(f"{args.name}: {n} rows -> {args.out}")
        else:
            a, b = make_arithmetic(args.train, args.test, tiers=_arith_tiers(args), n_train=args.n_train, n_test=args.n_test,
                                   seed=args.seed, out_clean=args.clean, n_clean=args.n_clean, out_seen=args.seen,
                                   n_seen=args.n_seen)
            written = [("arithmetic_train", args.train), ("arithmetic", args.test), ("arithmetic_clean", args.clean),
                       ("arithmetic_seen", args.seen)]
            for split, path in written:
                if path is not None:
                    self_check_file(split, path)  # integer golds: fast path, ~0.04 ms a row
            print(f"arithmetic: {a} train -> {args.train}, {b} test -> {args.test}"
                  + "".join(f", {n} {what} -> {p}" for what, n, p in (("clean", args.n_clean, args.clean),
                                                                       ("seen", args.n_seen, args.seen)) if p))
    except ValueError as exc:  # bad input: one clear line, exit status 2
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
