"""rspo_core.grading.pool: the one sandboxed worker pool (hard deadlines, memory cap, threads, reuse) and grade_many."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from cases import CASES  # noqa: E402

import rspo_core.grading as G  # noqa: E402
from rspo_core.grading.pool import WorkerPool  # noqa: E402


def test_grade_many_pool_agrees_with_in_process():
    """The process pool and the in-process path give the same verdicts on the table (rows without a fallback)."""
    rows = [c for c in CASES if c[2] is None]
    outs, golds, frs = [c[0] for c in rows], [c[1] for c in rows], [c[3] for c in rows]
    pool = G.grade_many(outs, golds, finish_reasons=frs, workers=2)
    local = G.grade_many(outs, golds, finish_reasons=frs, workers=0)
    assert pool == local
    assert [r.correct for r in pool] == [c[4] for c in rows]



def _adversarial():
    n = 10_000
    return [
        "\\boxed{" + "\\frac{" * n + "}" * n + "}",                 # \frac{ x 10000 (balanced so it reaches sympy)
        "\\boxed{" + "\\frac{1}{" * n + "2" + "}" * n + "}",
        "\\boxed{" + "{" * 5000 + "1" + "}" * 5000 + "}",            # deeply nested braces
        "\\boxed{10^{10^{10}}}",
        "\\boxed{10^(10^10)}",
        "\\boxed{" + "1+" * 200_000 + "1}",                          # huge
        "\\frac{" * n,                                                # raw, no box
        "9" * 100_000,                                                # 100k-digit integer (fast path)
    ]


def test_adversarial_inputs_are_incorrect_within_timeout():
    outs = _adversarial() + ["\\boxed{5}"]
    golds = ["5"] * len(outs)
    t = time.perf_counter()
    res = G.grade_many(outs, golds, fallback="last_number", timeout=1.0, workers=2)
    elapsed = time.perf_counter() - t
    assert [r.correct for r in res[:-1]] == [False] * (len(outs) - 1)
    assert res[-1] == G.GradeResult("5", True, "ok")  # the pool survived the bad items
    assert {r.status for r in res} <= set(G.STATUSES)
    assert sum(r.status == "timeout" for r in res) >= 3
    # each item: at most timeout + grace (2 s) on one of 2 workers, plus pool start-up
    assert elapsed < 30, elapsed


def test_hard_kill_when_the_alarm_cannot_fire():
    """With the in-worker alarm off (as for code that ignores signals) the parent kills and replaces the worker."""
    jobs = [("\\frac{" * 3000 + "}" * 3000, "5"), ("\\frac12", "0.5")]
    t = time.perf_counter()
    with WorkerPool(1, mem_limit_mb=4096) as pool:
        res = pool.map(jobs, timeout=0.5, soft_timeout=False)
    assert res == [(False, "timeout"), (True, "ok")]
    assert time.perf_counter() - t < 15


def test_memory_cap_fails_fast_instead_of_exhausting_memory():
    """2^400000000 needs a 50 MB integer: with 10 MB of headroom sympy's allocation fails at once (math-verify turns
    the MemoryError into a plain "not equal"), instead of computing for seconds; the worker keeps serving."""
    res = G.grade_many(["\\boxed{2^{400000000}}", "\\boxed{\\frac{2}{8}}"], ["5", "0.25"], workers=1,
                       mem_limit_mb=10, timeout=3.0)
    assert res[0].correct is False and res[0].status in ("ok", "error")
    assert res[1] == G.GradeResult("\\frac{2}{8}", True, "ok")


def test_threads_grade_in_isolated_workers():
    """Signals cannot be used outside the main thread: there pairs go to the shared worker processes, which still
    enforce the timeout (OpenRLHF calls the reward function from worker threads)."""
    bad = "\\boxed{" + "\\frac{1}{" * 3000 + "2" + "}" * 3000 + "}"
    items = [("\\boxed{\\frac{2}{4}}", "0.5"), (bad, "5"), ("\\boxed{x=3}", "3"), ("\\boxed{7}", "7")]
    out = [None] * len(items)

    def run(i):
        out[i] = G.grade_result(*items[i], timeout=1.0)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(items))]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert [(r.correct, r.status) for r in out] == [(True, "ok"), (False, "timeout"), (True, "ok"), (True, "ok")]
    assert time.perf_counter() - t < 30




def test_a_pool_is_reused_across_calls_and_threads():
    """A persistent pool (a trainer grading per batch) keeps its workers between calls: the second batch starts no
    process; threads share the workers (never more than max_workers alive) and get the same verdicts."""
    jobs = [("\\frac{2}{4}", "0.5"), ("x=3", "3"), ("\\sqrt{2}/2", "\\frac{\\sqrt2}{2}"), ("3", "\\pi")]
    expected = [(True, "ok"), (True, "ok"), (True, "ok"), (False, "ok")]
    with WorkerPool(2) as pool:
        assert pool.map(jobs, timeout=5.0) == expected
        pids = sorted(w.proc.pid for w in pool._idle)
        assert len(pids) == 2
        outs = G.grade_many([f"\\boxed{{{a}}}" for a, _ in jobs], [g for _, g in jobs], pool=pool)
        assert [(r.correct, r.status) for r in outs] == expected
        assert sorted(w.proc.pid for w in pool._idle) == pids  # no new process for the second batch
        got = [None] * 6

        def run(i):
            got[i] = pool.compare(*jobs[i % len(jobs)], timeout=5.0)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(6)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
        assert got == [expected[i % len(jobs)] for i in range(6)]
        assert pool._started == 2
    assert pool._started == 0 and not pool._idle  # closed: every worker stopped
    with pytest.raises(ValueError, match="max_workers"):
        WorkerPool(0)
