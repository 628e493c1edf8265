"""ONE sandboxed pool of grading processes: hard per-item deadline and an address-space cap.

A pair that math-verify must compare can run into code that ignores signals (GMP, C extensions) or allocates
without bound, so the soft alarm of :func:`rspo_core.grading.equivalence.compare` is not enough. A
:class:`WorkerPool` keeps up to ``max_workers`` worker processes (forkserver on Linux; each caps its address space at
its start-up size + ``mem_limit_mb``). ``map(jobs, timeout=T)`` grades (answer, gold) jobs over the idle workers,
each item with the soft alarm ``T`` inside the worker and a hard deadline ``T + max(1 s, T/2)`` after it was sent: an
overdue worker is killed and replaced (the item: incorrect, status "timeout"); a worker that dies mid-item
(segfault, out of memory) gives status "error". The pool never hangs and never crashes the caller.

Thread-safe: several threads may call ``map`` / ``compare`` at once (OpenRLHF's reward threads call ``compare`` one
pair at a time); each borrows idle workers, starting new ones up to ``max_workers``, and waits when none is free.
Workers persist between calls, so a trainer that grades per batch pays the start-up once. Used by
:func:`rspo_core.grading.grade_many` (a private pool per call, or one passed in) and by
:func:`rspo_core.grading.grade_result` off the main thread (:func:`shared_pool`).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import multiprocessing.connection as mpc
import os
import signal
import sys
import threading
import time
from collections import deque
from typing import Sequence

from rspo_core.grading.equivalence import compare

log = logging.getLogger(__name__)

# extra seconds a worker gets past the soft timeout before it is killed (the soft alarm normally fires first)
HARD_GRACE_S = 1.0
# how long a new grading worker may take to start and warm up; a map gives up after this many failed starts in a row
_STARTUP_TIMEOUT_S = 120.0
_MAX_FAILED_STARTS = 3


def hard_deadline_s(timeout: float) -> float:
    """Seconds a worker may spend on one item before it is killed: timeout + max(HARD_GRACE_S, timeout / 2)."""
    return timeout + max(HARD_GRACE_S, 0.5 * timeout)


def _limit_address_space(extra_mb: int) -> None:
    """Cap this process's address space at its current size + extra_mb (RLIMIT_AS; a no-op where unsupported).

    Relative to the current size, so a worker forked from a big parent (mapped libraries, CUDA reservations) is not
    starved; runaway sympy allocations then raise MemoryError instead of exhausting the machine.
    """
    try:
        import resource

        with open("/proc/self/status") as f:
            vm_kb = next(int(line.split()[1]) for line in f if line.startswith("VmSize:"))
        limit = vm_kb * 1024 + int(extra_mb) * 1024 * 1024
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, OSError, ValueError, StopIteration):
        pass


def _worker_main(conn, mem_limit_mb: int | None) -> None:
    """Worker process: warm up, greet ("ready",), then serve (idx, answer, gold, timeout) jobs with
    (idx, correct, status) replies until it receives None or the pipe closes. Out of memory outside a job -> exit 3
    quietly (the parent grades the item "error" and starts a new worker)."""
    try:
        _serve(conn, mem_limit_mb)
    except MemoryError:
        os._exit(3)


def _serve(conn, mem_limit_mb: int | None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and kills us
    if mem_limit_mb:
        _limit_address_space(mem_limit_mb)
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    try:  # warm up (imports, regexes, the ANTLR parser) so the first real item is not charged for it
        compare("\\frac{1}{2}", "0.5", None)
    except Exception:  # noqa: BLE001 - a broken worker shows up on its first job
        pass
    try:
        conn.send(("ready",))
    except (EOFError, OSError):
        return
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        idx, answer, gold, timeout = job
        correct, status = compare(answer, gold, timeout)  # never raises (but MemoryError)
        try:
            conn.send((idx, bool(correct), status))
        except (EOFError, OSError):
            return


def _mp_context():
    """forkserver on Linux (cheap, safe forks from a clean server that has math-verify imported), else spawn."""
    if sys.platform.startswith("linux"):
        ctx = mp.get_context("forkserver")
        try:
            ctx.set_forkserver_preload(["rspo_core.grading.equivalence", "math_verify", "sympy"])
        except Exception:  # noqa: BLE001 - preloading is an optimisation only
            pass
        return ctx
    return mp.get_context("spawn")


class _Worker:
    """One grading process with its own duplex pipe; ``job`` is (idx, deadline) while it grades an item."""

    def __init__(self, ctx, mem_limit_mb: int | None):
        self.conn, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=_worker_main, args=(child, mem_limit_mb), daemon=True)
        self.proc.start()
        child.close()
        self.ready = False
        self.job: tuple[int, float] | None = None

    def wait_ready(self, startup_timeout: float = _STARTUP_TIMEOUT_S) -> None:
        """Block until the worker has warmed up; OSError if it dies or takes longer than startup_timeout."""
        if self.ready:
            return
        try:
            if not self.conn.poll(startup_timeout):
                raise OSError(f"grading worker {self.proc.pid} did not start within {startup_timeout} s")
            greeting = self.conn.recv()
        except EOFError as e:
            raise OSError(f"grading worker {self.proc.pid} died while starting") from e
        if greeting != ("ready",):
            raise OSError(f"grading worker {self.proc.pid} sent an unexpected greeting")
        self.ready = True

    def submit(self, idx: int, answer: str, gold: str, timeout: float, soft: bool = True) -> None:
        """Send one job once the worker is ready; the hard deadline starts now."""
        self.wait_ready()
        self.conn.send((idx, answer, gold, timeout if soft else None))
        self.job = (idx, time.monotonic() + hard_deadline_s(timeout))

    def kill(self) -> None:
        try:
            self.conn.close()
        except OSError:
            pass
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(timeout=5)

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except (OSError, BrokenPipeError):
            pass
        self.proc.join(timeout=1)
        self.kill()


class WorkerPool:
    """Up to ``max_workers`` persistent grading processes, shared by every thread that calls ``map``/``compare``.

    >>> with WorkerPool(2) as pool:                                    # doctest: +SKIP
    ...     pool.map([("\\\\frac{2}{4}", "0.5"), ("x=3", "3")], timeout=5.0)
    [(True, 'ok'), (True, 'ok')]
    """

    def __init__(self, max_workers: int, *, mem_limit_mb: int | None = 4096):
        if not isinstance(max_workers, int) or max_workers < 1:
            raise ValueError(f"max_workers must be an int >= 1, got {max_workers!r}")
        self.max_workers = max_workers
        self.mem_limit_mb = mem_limit_mb
        self._ctx = _mp_context()
        self._idle: list[_Worker] = []
        self._started = 0  # live workers, idle or borrowed
        self._cond = threading.Condition()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _new_worker(self) -> _Worker:
        return _Worker(self._ctx, self.mem_limit_mb)

    def _borrow(self, want: int) -> list[_Worker]:
        """1..want workers: idle ones first, then new ones up to max_workers; blocks while none is free."""
        with self._cond:
            while not self._idle and self._started >= self.max_workers:
                self._cond.wait()
            got = [self._idle.pop() for _ in range(min(want, len(self._idle)))]
            n_new = min(want - len(got), self.max_workers - self._started)
            self._started += n_new
        try:
            for made in range(n_new):
                got.append(self._new_worker())
        except BaseException:
            self._give_back(got, lost=n_new - made)
            raise
        return got

    def _give_back(self, idle: Sequence[_Worker], lost: int = 0) -> None:
        """Return idle workers to the pool and forget ``lost`` reservations (killed or never started workers)."""
        with self._cond:
            self._idle.extend(idle)
            self._started -= lost
            self._cond.notify_all()

    def map(self, jobs: Sequence[tuple[str, str]], *, timeout: float, soft_timeout: bool = True,
            progress: bool = False) -> list[tuple[bool, str]]:
        """(correct, status) per (answer, gold) job, in order; see the module docstring for the deadlines.

        ``soft_timeout=False`` switches the in-worker alarm off, leaving only the hard kill (as for code that
        ignores signals). RuntimeError when workers fail to start more than 3 times in a row.
        """
        if not jobs:
            return []
        results: list[tuple[bool, str] | None] = [None] * len(jobs)
        pending = deque(range(len(jobs)))
        bar = None
        if progress and len(jobs) >= 50:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(jobs), desc="grading", unit="pair", leave=False)
        workers = self._borrow(len(jobs))
        try:
            failed_starts = 0
            while pending or any(w.job for w in workers):
                for slot, w in enumerate(workers):
                    if w.job is None and pending:
                        i = pending.popleft()
                        try:
                            w.submit(i, jobs[i][0], jobs[i][1], timeout, soft_timeout)
                            failed_starts = 0
                        except OSError as e:  # died while starting or idle: replace it, retry the item
                            pending.appendleft(i)
                            w.kill()
                            failed_starts += 1
                            if failed_starts > _MAX_FAILED_STARTS:
                                raise RuntimeError(f"grading workers keep failing to start ({e})") from e
                            workers[slot] = self._new_worker()
                busy = [w for w in workers if w.job]
                if not busy:
                    continue
                wait_s = max(0.0, min(w.job[1] for w in busy) - time.monotonic())
                ready = set(mpc.wait([w.conn for w in busy], timeout=wait_s))
                now = time.monotonic()
                for slot, w in enumerate(workers):
                    if w.job is None:
                        continue
                    idx, deadline = w.job
                    if w.conn in ready:
                        try:
                            ridx, correct, status = w.conn.recv()
                            results[ridx] = (correct, status)
                            w.job = None
                            if bar is not None:
                                bar.update(1)
                            continue
                        except (EOFError, OSError):  # crashed mid-item (segfault, OOM kill)
                            results[idx] = (False, "error")
                    elif now >= deadline:  # stuck in code that ignores signals (GMP, C extensions)
                        log.debug("killing grading worker %d stuck on item %d", w.proc.pid, idx)
                        results[idx] = (False, "timeout")
                    else:
                        continue
                    if bar is not None:
                        bar.update(1)
                    w.kill()
                    w.job = None
                    workers[slot] = self._new_worker()
        except BaseException:
            for w in workers:
                w.kill()
            self._give_back([], lost=len(workers))
            raise
        finally:
            if bar is not None:
                bar.close()
        self._give_back(workers)
        return [r if r is not None else (False, "error") for r in results]

    def compare(self, answer: str, gold: str, timeout: float) -> tuple[bool, str]:
        """(correct, status) of one pair under the pool's deadlines (= ``map([(answer, gold)])[0]``)."""
        return self.map([(answer, gold)], timeout=timeout)[0]

    def close(self) -> None:
        """Stop the idle workers (borrowed ones are stopped by their ``map`` when it ends)."""
        with self._cond:
            idle, self._idle = self._idle, []
            self._started -= len(idle)
            self._cond.notify_all()
        for w in idle:
            w.stop()


_SHARED: WorkerPool | None = None
_SHARED_LOCK = threading.Lock()


def shared_pool() -> WorkerPool:
    """The process-wide pool (created on first use); RSPO_VERIFY_WORKERS sets its size (default 2)."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None:
            raw = os.environ.get("RSPO_VERIFY_WORKERS", "2")
            try:
                n = int(raw)
            except ValueError:
                raise ValueError(f"RSPO_VERIFY_WORKERS must be an int >= 1, got {raw!r}") from None
            if n < 1:
                raise ValueError(f"RSPO_VERIFY_WORKERS must be >= 1, got {n}")
            _SHARED = WorkerPool(n, mem_limit_mb=4096)
        return _SHARED


def default_workers(n_items: int) -> int:
    """Worker count: CPUs available to this process, at most one per item."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, n_items))
