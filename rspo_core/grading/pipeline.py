"""Grading one or many (output, gold) pairs: truncation -> extraction -> fast path -> math-verify (in-process soft
timeout, or the sandboxed pool's hard deadline). The public entry points are re-exported by
:mod:`rspo_core.grading`; see its docstring for the pipeline and the statuses.
"""

from __future__ import annotations

import logging
import math
import multiprocessing as mp
import threading
from typing import NamedTuple, Sequence

from rspo_core.grading.equivalence import compare, fast_compare, math_verify_api
from rspo_core.grading.extract import check_fallback, extract_answer
from rspo_core.grading.pool import WorkerPool, default_workers, shared_pool

log = logging.getLogger(__name__)

STATUSES = ("ok", "timeout", "error", "truncated", "no_answer")


class GradeResult(NamedTuple):
    """One graded sample: the extracted answer (None if none), the verdict, and how the verdict was reached."""

    extracted: str | None
    correct: bool
    status: str  # one of STATUSES


def _check_timeout(timeout) -> float:
    if isinstance(timeout, bool) or not (isinstance(timeout, (int, float)) and math.isfinite(timeout)
                                         and timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    return float(timeout)


def pre_grade(output: str, gold: str, fallback: str | None,
              finish_reason: str | None) -> tuple[str | None, GradeResult | None]:
    """(extracted, verdict) for everything decided without math-verify: truncation, no answer, the fast path.

    verdict None -> math-verify must compare ``extracted`` with ``gold``.
    """
    if not isinstance(gold, str):
        raise ValueError(f"gold must be a str, got {type(gold).__name__}: {gold!r}")
    extracted = extract_answer(output, fallback)
    if finish_reason == "length":
        return extracted, GradeResult(extracted, False, "truncated")
    if extracted is None:
        return None, GradeResult(None, False, "no_answer")
    fast = fast_compare(extracted, gold)
    if fast is not None:
        return extracted, GradeResult(extracted, fast, "ok")
    return extracted, None


def grade_result(output: str, gold: str, *, fallback: str | None = None, finish_reason: str | None = None,
                 timeout: float | None = 5.0, isolate: bool | None = None) -> GradeResult:
    """Grade one pair; GradeResult(extracted, correct, status).

    Extraction and the plain-number fast path always run here. A pair that needs math-verify runs
    - in this process under a soft ``timeout`` alarm (``isolate=False``; the default in the main thread), or
    - in the process-wide :func:`~rspo_core.grading.pool.shared_pool` with a hard deadline (``isolate=True``; the
      default in other threads, where signals cannot be used: e.g. OpenRLHF's reward threads). Thread-safe;
      ``timeout=None`` disables both limits (and isolation).
    """
    extracted, pre = pre_grade(output, gold, fallback, finish_reason)
    if pre is not None:
        return pre
    if isolate is None:
        isolate = threading.current_thread() is not threading.main_thread()
    if isolate and timeout is not None and not mp.current_process().daemon:  # daemons cannot have children
        correct, status = shared_pool().compare(extracted, gold, _check_timeout(timeout))
    else:
        correct, status = compare(extracted, gold, timeout)
    return GradeResult(extracted, correct, status)


def grade(output: str, gold: str, *, fallback: str | None = None, finish_reason: str | None = None,
          timeout: float | None = 5.0, isolate: bool | None = None) -> bool:
    """True iff ``output``'s final answer equals ``gold`` (see :func:`grade_result`); truncated -> False."""
    return grade_result(output, gold, fallback=fallback, finish_reason=finish_reason, timeout=timeout,
                        isolate=isolate).correct


def grade_many(outputs: Sequence[str], golds: Sequence[str], *, fallback: str | None = None,
               finish_reasons: Sequence[str | None] | None = None, timeout: float = 5.0,
               workers: int | None = None, mem_limit_mb: int | None = 4096, pool: WorkerPool | None = None,
               progress: bool = False) -> list[GradeResult]:
    """Grade many (output, gold) pairs robustly; one GradeResult per pair, in order.

    Extraction, truncation and the plain-number fast path run here; the remaining distinct (answer, gold) pairs go
    to grading processes with a hard per-item deadline of ``timeout`` + max(1 s, timeout/2) (a stuck worker is
    killed and replaced, the item is incorrect with status "timeout"): ``pool`` if given (persistent workers, e.g.
    a trainer grading per batch), else a pool of ``workers`` processes made for this call (None: one per CPU; 0: in
    this process, soft timeout only). ``mem_limit_mb`` caps what each of this call's workers may allocate beyond its
    start-up size (None: no cap).
    """
    if len(outputs) != len(golds):
        raise ValueError(f"outputs and golds differ in length: {len(outputs)} vs {len(golds)}")
    if finish_reasons is not None and len(finish_reasons) != len(outputs):
        raise ValueError(f"finish_reasons has length {len(finish_reasons)}, expected {len(outputs)}")
    timeout = _check_timeout(timeout)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 0):
        raise ValueError(f"workers must be None or an int >= 0, got {workers!r}")
    fallback = check_fallback(fallback)
    frs = finish_reasons if finish_reasons is not None else [None] * len(outputs)

    results: list[GradeResult | None] = []
    extracted: list[str | None] = []
    todo: dict[tuple[str, str], list[int]] = {}  # distinct (answer, gold) -> sample indices
    for i, (out, gold, fr) in enumerate(zip(outputs, golds, frs)):
        ans, pre = pre_grade(out, gold, fallback, fr)
        results.append(pre)
        extracted.append(ans)
        if pre is None:
            todo.setdefault((ans, gold), []).append(i)
    keys = list(todo)
    if keys:
        math_verify_api()  # fail here, loudly, if math-verify is missing (not once per item inside the workers)
        n_workers = default_workers(len(keys)) if workers is None else workers
        if (pool is not None or n_workers) and mp.current_process().daemon:
            log.warning("grade_many in a daemonic process cannot start workers: grading in-process")
            pool, n_workers = None, 0
        if pool is not None:
            verdicts = pool.map(keys, timeout=timeout, progress=progress)
        elif n_workers == 0:
            verdicts = [compare(a, g, timeout) for a, g in keys]
        else:
            with WorkerPool(n_workers, mem_limit_mb=mem_limit_mb) as own:
                verdicts = own.map(keys, timeout=timeout, progress=progress)
        for key, (correct, status) in zip(keys, verdicts):
            for i in todo[key]:
                results[i] = GradeResult(extracted[i], correct, status)
    return results  # type: ignore[return-value]
