"""The file stage of grading: ``samples.jsonl`` + frozen benchmark -> ``verified.jsonl`` (the workflow's verify rule).

The grader itself (extraction, math-verify with timeouts, the sandboxed pool, the xVerify judge) is
:mod:`rspo_core.grading`, shared with both trainers; this module only reads, grades and writes files.

CLI: ``python -m analysis.verify --samples S --data D --out O --max-new-tokens N [--fallback last_number]
[--verifier math-verify|xverify --xverify-model PATH] [--workers W] [--timeout 5]``
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Sequence

from rspo_core.atomic import write_jsonl_atomic
from rspo_core.cli import parse_strict
from rspo_core.grading import (DEFAULT_TIMEOUT_S, FALLBACKS, GRADER_VERSION, STATUSES, VERIFIERS, XVerifyJudge,
                               check_fallback, grade_many)
from rspo_core.jsonl import read_jsonl
from rspo_core.rewards import max_reward, pass_reward

log = logging.getLogger(__name__)

_SAMPLE_FIELDS = ("problem_id", "output", "finish_reason", "num_tokens")


def verify_file(samples_path: str | os.PathLike, data_path: str | os.PathLike, out_path: str | os.PathLike, *,
                max_new_tokens: int, verifier: str = "math-verify", fallback: str | None = None,
                timeout: float = DEFAULT_TIMEOUT_S, workers: int | None = None,
                xverify_model: str | os.PathLike | None = None, progress: bool = True) -> dict:
    """Grade samples.jsonl against the frozen benchmark and write verified.jsonl atomically.

    Each output row = the sample + {extracted, correct, reward_pass, reward_max, verifier, grader_version,
    grade_status} (+ correct_math_verify and xverify_label when verifier="xverify": ``correct`` is then xVerify's
    verdict, "invalid" labels counting as incorrect; truncated samples are not judged: label None, incorrect).
    Grader: rspo_core.grading; rewards: rspo_core.rewards.
    Returns a summary: counts of samples, correct, each grade status, seconds, paths, grader version.
    """
    check_settings(max_new_tokens=max_new_tokens, verifier=verifier, timeout=timeout, workers=workers,
                   xverify_model=xverify_model)
    if verifier == "xverify":  # checked before the (long) math-verify pass
        if not (Path(xverify_model) / "config.json").is_file():
            raise ValueError(f"xverify_model {str(xverify_model)!r} is not a local model folder with config.json")
    fallback = check_fallback(fallback)
    t0 = time.time()
    samples = read_jsonl(samples_path)
    data_rows = read_jsonl(data_path)
    for j, r in enumerate(data_rows):
        if "id" not in r or "answer" not in r:
            raise ValueError(f"{data_path}: row {j} lacks 'id' or 'answer'; expected {{id, question, answer, meta}}")
    data = {str(r["id"]): r for r in data_rows}
    for j, s in enumerate(samples):
        missing = [k for k in _SAMPLE_FIELDS if k not in s]
        if missing:
            raise ValueError(f"{samples_path}: row {j} lacks fields {missing}; expected {list(_SAMPLE_FIELDS)}")
        if not isinstance(s["output"], str):
            raise ValueError(f"{samples_path}: row {j} output is {type(s['output']).__name__}, expected a string")
    unknown = sorted({str(s["problem_id"]) for s in samples} - set(data))
    if unknown:
        raise ValueError(f"{samples_path}: {len(unknown)} problem_id(s) not in {data_path}, e.g. {unknown[:5]}")
    golds = [str(data[str(s["problem_id"])]["answer"]) for s in samples]
    log.info("grading %d samples of %s with %s (grader %s)", len(samples), samples_path, verifier, GRADER_VERSION)
    res = grade_many([s["output"] for s in samples], golds, fallback=fallback,
                     finish_reasons=[s.get("finish_reason") for s in samples], timeout=timeout, workers=workers,
                     progress=progress)
    labels: list[str | None] | None = None
    if verifier == "xverify":  # truncated samples are incorrect anyway: not sent to the judge (label None)
        judge = XVerifyJudge(xverify_model)
        todo = [j for j, r in enumerate(res) if r.status != "truncated"]
        judged = judge.judge([str(data[str(samples[j]["problem_id"])]["question"]) for j in todo],
                             [samples[j]["output"] for j in todo], [golds[j] for j in todo])
        labels = [None] * len(samples)
        for j, lab in zip(todo, judged):
            labels[j] = lab
    rows = []
    for j, (s, r) in enumerate(zip(samples, res)):
        correct = r.correct
        row = dict(s)
        if labels is not None:
            row["correct_math_verify"] = r.correct
            row["xverify_label"] = labels[j]
            correct = labels[j] == "Correct" and r.status != "truncated"
        row.update(extracted=r.extracted, correct=bool(correct), reward_pass=pass_reward(correct),
                   reward_max=max_reward(correct, int(s["num_tokens"]), max_new_tokens), verifier=verifier,
                   grader_version=GRADER_VERSION, grade_status=r.status)
        rows.append(row)
    write_jsonl_atomic(out_path, rows)
    counts = Counter(r.status for r in res)
    summary = {
        "samples": len(rows), "correct": sum(r["correct"] for r in rows),
        "accuracy": (sum(r["correct"] for r in rows) / len(rows)) if rows else None,
        **{s: counts.get(s, 0) for s in STATUSES},
        "verifier": verifier, "grader_version": GRADER_VERSION, "fallback": fallback,
        "seconds": round(time.time() - t0, 3), "out": str(out_path),
    }
    if labels is not None:
        lc = Counter(lab for lab in labels if lab is not None)
        summary.update(xverify_model=str(xverify_model), xverify_invalid=lc.get("invalid", 0),
                       agreement_with_math_verify=sum(r["correct"] == r["correct_math_verify"] for r in rows)
                       / max(1, len(rows)))
    log.info("verified %s", json.dumps(summary))
    return summary


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m analysis.verify", description=__doc__.split("\n")[0])
    p.add_argument("--samples", required=True, help="samples.jsonl from analysis.generate")
    p.add_argument("--data", required=True, help="frozen benchmark JSONL {id, question, answer, meta}")
    p.add_argument("--out", required=True, help="verified.jsonl to write")
    p.add_argument("--max-new-tokens", type=int, required=True, help="generation budget (for the max reward)")
    p.add_argument("--fallback", default=None, choices=["none", *FALLBACKS],
                   help="answer when there is no \\boxed{} (default: none)")
    p.add_argument("--verifier", default="math-verify", choices=VERIFIERS)
    p.add_argument("--xverify-model", default=None, help="local folder of an xVerify model (with --verifier xverify)")
    p.add_argument("--workers", type=int, default=None, help="grading processes (default: one per CPU; 0: in-process)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S,
                   help="seconds per pair before it counts as a timeout")
    p.add_argument("--summary", default=None, help="also write the summary JSON here")
    return p


def check_settings(*, max_new_tokens, verifier: str, timeout, workers, xverify_model) -> None:
    """ValueError (one line) for a setting verify_file cannot run with; nothing is read."""
    if verifier not in VERIFIERS:
        raise ValueError(f"unknown verifier {verifier!r}; expected one of {', '.join(VERIFIERS)}")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens <= 0:
        raise ValueError(f"max_new_tokens must be a positive int, got {max_new_tokens!r}")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < float("inf"):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 0):
        raise ValueError(f"workers must be None or an int >= 0, got {workers!r}")
    if verifier == "xverify" and xverify_model is None:
        raise ValueError("verifier='xverify' needs xverify_model (a local model folder)")


def check_argv(argv: Sequence[str]) -> None:
    """Parse and check a command line without running it (the workflow calls this before any job). ValueError."""
    a = parse_strict(build_parser(), argv)
    check_settings(max_new_tokens=a.max_new_tokens, verifier=a.verifier, timeout=a.timeout, workers=a.workers,
                   xverify_model=a.xverify_model)


def main(argv: Sequence[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    summary = verify_file(a.samples, a.data, a.out, max_new_tokens=a.max_new_tokens, verifier=a.verifier,
                          fallback=a.fallback, timeout=a.timeout, workers=a.workers, xverify_model=a.xverify_model)
    if a.summary:
        Path(a.summary).parent.mkdir(parents=True, exist_ok=True)
        Path(a.summary).write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
