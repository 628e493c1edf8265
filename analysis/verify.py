"""The ONE grader: answer extraction + equivalence checking, for evaluation AND for both trainers' rewards.

Pipeline for one (output, gold) pair
------------------------------------
1. ``finish_reason == "length"``  -> incorrect, status "truncated" (a truncated sample never counts, even if it
   happened to box something before the cut).
2. ``extract_answer``: content of the last ``\\boxed{...}`` / ``\\fbox{...}`` (balanced braces, escaped braces
   ignored; also the brace-less ``\\boxed 5`` form); without one, the fallback ("last_number": last integer, decimal
   or fraction in the text) or nothing -> status "no_answer".
3. Fast path (no sympy): when gold and answer are both plain numbers (``-12``, ``27.0``, ``4.5e-4``) equal decimal
   values are correct and unequal *integers* are wrong; everything else goes to math-verify. The fast path never
   disagrees with math-verify (tested), it only skips it: integer-answer rewards cost microseconds.
4. math-verify 0.9.0: ``parse`` the gold (wrapped as ``$gold$`` unless it has an unescaped ``$``) and the answer
   (wrapped as ``\\boxed{answer}``) with ``[LatexExtractionConfig(), ExprExtractionConfig()]``, then
   ``verify(gold, pred, float_rounding=6, strict=True)`` (gold first: verify is not symmetric). Plain e-notation
   (``4.5e-4``) is rewritten to ``4.5\\times 10^{-4}`` first, because math-verify reads the ``e`` as Euler's number.

Timeouts
--------
math-verify's own ``signal.alarm`` timeouts are switched off; instead one ``setitimer`` alarm covers parse + verify
(soft timeout, status "timeout"; only armed in the main thread, as signals demand; a caller's pending alarm is
re-armed afterwards). Work that ignores signals (GMP, C extensions) can outlive it, so ``grade_many`` runs pairs in
worker processes (forkserver; address space capped) and kills a worker that overruns its item's hard deadline
(``timeout`` + max(1 s, timeout/2)), grading that item incorrect with status "timeout" and starting a fresh worker.
A worker that dies (segfault, out of memory) yields status "error". The run never hangs or crashes.
``grade``/``grade_result`` called outside the main thread (OpenRLHF's reward threads) send the pair to a small
process-wide pool of such workers (RSPO_VERIFY_WORKERS, default 2), so they get the hard deadline too.

Known behaviour of math-verify 0.9.0 (asserted in tests/grading): lenient on ``10\\%`` vs ``10`` and on ``x=3`` vs
``3``; units in ``\\text{}`` / ``\\mathrm{}`` are dropped; ``90^\\circ`` equals ``90`` but ``30^\\circ`` is not
``\\pi/6``; no relative tolerance (``1.3`` vs ``1.31`` is wrong: matters on Minerva), but numbers that agree after
rounding to 6 decimals are equal.

Changelog (GRADER_VERSION, written into every verified.jsonl row and every metrics file)
-----------------------------------------------------------------------------------------
1.0  first version: last \\boxed/\\fbox, fallback last_number, integer/decimal fast path, e-notation rewrite,
     math-verify 0.9.0 (float_rounding=6, strict), truncated = incorrect, process pool with hard timeouts,
     optional xVerify judge (verdict kept next to math-verify's).
1.1  a gold whose only dollars are escaped (MATH's ``\\$18.90``) is wrapped as ``$gold$`` before parsing (1.0 parsed
     it to nothing: three MATH500 golds could never be graded correct).

CLI: ``python -m analysis.verify --samples S --data D --out O --max-new-tokens N [--fallback last_number]
[--verifier math-verify|xverify --xverify-model PATH] [--workers W] [--timeout 5]``
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import multiprocessing as mp
import multiprocessing.connection as mpc
import os
import re
import signal
import sys
import threading
import time
from collections import Counter, deque
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple, Sequence

from analysis.atomic import write_jsonl_atomic

log = logging.getLogger(__name__)

GRADER_VERSION = "1.1"

FALLBACKS = ("last_number",)
STATUSES = ("ok", "timeout", "error", "truncated", "no_answer")
VERIFIERS = ("math-verify", "xverify")
XVERIFY_LABELS = ("Correct", "Incorrect", "invalid")

# extra seconds a worker gets past the soft timeout before it is killed (the soft alarm normally fires first)
_HARD_GRACE_S = 1.0
# how long a new grading worker may take to start and warm up; a pool gives up after this many failed starts in a row
_STARTUP_TIMEOUT_S = 120.0
_MAX_FAILED_STARTS = 3


class GradeResult(NamedTuple):
    """One graded sample: the extracted answer (None if none), the verdict, and how the verdict was reached."""

    extracted: str | None
    correct: bool
    status: str  # one of STATUSES


# ---------------------------------------------------------------------------------------------------------------------
# Extraction

# one pass over the text: \boxed / \fbox commands (eating following spaces), escaped characters, braces
_TOKEN = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])\s*|\\.|[{}]", re.DOTALL)
_BRACELESS = re.compile(r"[^\s$]+")
# last number: optional sign (not a binary minus: no digit/closing bracket before it), thousands separators,
# decimals, a/b fractions; \frac{a}{b} / \dfrac / \tfrac with integer parts
_NUMBER = re.compile(
    r"\\[dt]?frac\{\s*-?\d+\s*\}\{\s*-?\d+\s*\}"
    r"|(?<![\d)\]}.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+(?:\.\d+)?)?"
)


def _check_fallback(fallback: str | None) -> str | None:
    """Normalise the fallback argument: None/"none" -> None, "last_number" kept, anything else ValueError."""
    if fallback is None or fallback == "none":
        return None
    if fallback not in FALLBACKS:
        raise ValueError(f"unknown fallback {fallback!r}; expected None, 'none' or one of {', '.join(FALLBACKS)}")
    return fallback


def last_boxed(text: str) -> str | None:
    """Content of the last complete ``\\boxed{...}`` / ``\\fbox{...}`` (by start position), or None.

    Braces are matched with a stack in one linear pass (escaped ``\\{``, ``\\}`` are not braces); an unclosed box
    (e.g. a cut-off output) is skipped, so an earlier complete one still counts. ``\\boxed 5`` (no braces) gives "5".
    Nested boxes: the inner one starts later, so ``\\boxed{\\boxed{5}}`` gives "5" (as Hendrycks' last_boxed_only).
    """
    best_start, best = -1, None
    stack: list[int | None] = []  # per open brace: content start if it opens a box, else None
    box_start: int | None = None  # position of a \boxed whose "{" comes next
    box_pos = {}
    for m in _TOKEN.finditer(text):
        tok = m.group()
        if tok[0] == "\\" and len(tok) > 2 and tok[1] in "bf":
            if text.startswith("{", m.end()):
                box_start = m.start()
            else:
                bm = _BRACELESS.match(text, m.end())
                if bm and m.start() > best_start:
                    best_start, best = m.start(), bm.group().rstrip(".,;:")
            continue
        if tok == "{":
            if box_start is not None:
                stack.append(m.end())
                box_pos[m.end()] = box_start
                box_start = None
            else:
                stack.append(None)
        elif tok == "}":
            if stack:
                s = stack.pop()
                if s is not None and box_pos[s] > best_start:
                    best_start, best = box_pos[s], text[s:m.start()]
        else:
            box_start = None
    return best.strip() if best is not None else None


def last_number(text: str) -> str | None:
    """Last integer / decimal / fraction in the text (thousands commas removed), or None.

    "so x = -3." -> "-3"; "1,234 apples" -> "1234"; "3/4" -> "3/4"; "\\frac{1}{2}" -> "\\frac{1}{2}"; "5-3=2" -> "2".
    """
    last = None
    for last in _NUMBER.finditer(text):
        pass
    if last is None:
        return None
    s = last.group()
    return s if s.startswith("\\") else re.sub(r"\s+", "", s.replace(",", ""))


def extract_answer(output: str, fallback: str | None = None) -> str | None:
    """The final answer of a model output: last ``\\boxed{}``/``\\fbox{}`` content, else the fallback, else None.

    fallback: None (boxed only; the Qwen2.5-Math protocol) or "last_number" (arithmetic sets, SmolLM2, the
    char-level model that writes the bare answer).
    """
    fallback = _check_fallback(fallback)
    if not isinstance(output, str):
        raise ValueError(f"output must be a str, got {type(output).__name__}")
    boxed = last_boxed(output)
    if boxed is not None and boxed != "":
        return boxed
    if fallback == "last_number":
        return last_number(output)
    return None


# ---------------------------------------------------------------------------------------------------------------------
# Comparison

_PLAIN_NUM = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_PLAIN_INT = re.compile(r"[+-]?\d+")
_SCI = re.compile(r"([+-]?(?:\d+(?:\.\d*)?|\.\d+))[eE]([+-]?\d+)")


def _fast_compare(pred: str, gold: str) -> bool | None:
    """Exact verdict for two plain numbers, None when math-verify must decide.

    Equal decimal values -> True ("27" vs "27.0", "4.5e-4" vs "0.00045"); two unequal integers -> False
    (math-verify compares integers exactly too). Unequal decimals go to math-verify (it rounds to 6 places).
    """
    p, g = pred.strip(), gold.strip()
    if len(p) > 1_000_000 or len(g) > 1_000_000 or not _PLAIN_NUM.fullmatch(p) or not _PLAIN_NUM.fullmatch(g):
        return None
    try:
        if Decimal(p) == Decimal(g):
            return True
    except (InvalidOperation, ValueError):
        return None
    if _PLAIN_INT.fullmatch(p) and _PLAIN_INT.fullmatch(g):
        return False
    return None


def _sci_to_latex(s: str) -> str:
    """'4.5e-4' -> '4.5\\times 10^{-4}' for a plain e-notation number (math-verify reads 'e' as Euler's e)."""
    m = _SCI.fullmatch(s.strip())
    return f"{m.group(1)}\\times 10^{{{int(m.group(2))}}}" if m else s


@lru_cache(maxsize=1)
def _mv():
    """math-verify's parse/verify and the extraction config (imported lazily: the fast path needs no sympy)."""
    try:
        from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify
        import math_verify.grader
        import math_verify.parser
    except ImportError as e:
        raise ImportError("analysis.verify needs math-verify 0.9.0: pip install 'math-verify[antlr4_13_2]==0.9.0' "
                          "(part of the cpu and gpu extras)") from e

    # we arm our own alarm around parse + verify; silence the "timeout disabled" warning that says so
    math_verify.parser.TIMEOUT_WARNING_SHOWN = True
    math_verify.grader.TIMEOUT_WARNING_SHOWN = True
    return parse, verify, [LatexExtractionConfig(), ExprExtractionConfig()]


# a "$" that is not escaped: preceded by an even number (0, 2, ...) of backslashes. "\\$36" (MATH's dollar sign)
# is escaped, so such a gold still gets its "$...$" wrapping.
_UNESCAPED_DOLLAR = re.compile(r"(?<!\\)(?:\\\\)*\$")


@lru_cache(maxsize=4096)
def _parse_gold(gold: str):
    parse, _, cfg = _mv()
    g = _sci_to_latex(gold.strip())
    text = g if (_UNESCAPED_DOLLAR.search(g) or "\\boxed" in g) else f"${g}$"
    return parse(text, extraction_config=cfg, parsing_timeout=None)


@lru_cache(maxsize=4096)
def _parse_pred(answer: str):
    parse, _, cfg = _mv()
    return parse(f"\\boxed{{{_sci_to_latex(answer)}}}", extraction_config=cfg, parsing_timeout=None)


def _compare(answer: str, gold: str) -> tuple[bool, str]:
    """(correct, status) for an extracted answer and a gold answer, no timeout handling."""
    fast = _fast_compare(answer, gold)
    if fast is not None:
        return fast, "ok"
    gp = _parse_gold(gold)
    if not gp:
        log.warning("math-verify could not parse gold answer %r", gold[:200])
        return False, "error"
    pp = _parse_pred(answer)
    if not pp:
        return False, "ok"
    _, verify, _ = _mv()
    return bool(verify(gp, pp, float_rounding=6, timeout_seconds=None, strict=True)), "ok"


class _SoftTimeout(BaseException):
    """Raised by our SIGALRM handler; a BaseException so math-verify's `except Exception` cannot swallow it."""


def _raise_soft_timeout(signum, frame):
    raise _SoftTimeout()


def _compare_with_timeout(answer: str, gold: str, timeout: float | None) -> tuple[bool, str]:
    """_compare under a setitimer alarm (main thread only; elsewhere no timeout). Errors -> (False, "error").

    math-verify is imported before the alarm is armed, so the first call's import never counts as a timeout.
    """
    fast = _fast_compare(answer, gold)
    if fast is not None:
        return fast, "ok"
    _mv()
    use_alarm = (timeout is not None and timeout > 0 and hasattr(signal, "setitimer")
                 and threading.current_thread() is threading.main_thread())
    if not use_alarm:
        return _compare_guarded(answer, gold)
    old_handler = signal.signal(signal.SIGALRM, _raise_soft_timeout)
    old_timer, t0 = (0.0, 0.0), time.monotonic()
    try:
        try:
            old_timer = signal.setitimer(signal.ITIMER_REAL, timeout)
            try:
                return _compare_guarded(answer, gold)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)  # disarm first: an alarm firing here is caught below
        except _SoftTimeout:
            return False, "timeout"
    finally:
        signal.signal(signal.SIGALRM, old_handler)
        if old_timer[0] > 0:  # re-arm a caller's pending alarm (e.g. pytest-timeout) for its remaining time
            signal.setitimer(signal.ITIMER_REAL, max(1e-3, old_timer[0] - (time.monotonic() - t0)), old_timer[1])


def _compare_guarded(answer: str, gold: str) -> tuple[bool, str]:
    """_compare with every ordinary exception turned into (False, "error"); _SoftTimeout passes through."""
    try:
        return _compare(answer, gold)
    except Exception as e:  # noqa: BLE001 - any grading failure (incl. RecursionError, MemoryError) is an "error"
        log.debug("grading error for %r vs %r: %s", answer[:100], gold[:100], e)
        return False, "error"


def _pre_grade(output: str, gold: str, fallback: str | None,
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
    fast = _fast_compare(extracted, gold)
    if fast is not None:
        return extracted, GradeResult(extracted, fast, "ok")
    return extracted, None


def grade_result(output: str, gold: str, *, fallback: str | None = None, finish_reason: str | None = None,
                 timeout: float | None = 5.0, isolate: bool | None = None) -> GradeResult:
    """Grade one pair; GradeResult(extracted, correct, status).

    Extraction and the plain-number fast path always run here. A pair that needs math-verify runs
    - in this process under a soft ``timeout`` alarm (``isolate=False``; the default in the main thread), or
    - in a persistent grading worker process with a hard deadline (``isolate=True``; the default in other threads,
      where signals cannot be used: e.g. OpenRLHF's reward threads). Thread-safe; ``timeout=None`` disables both
      limits (and isolation).
    """
    extracted, pre = _pre_grade(output, gold, fallback, finish_reason)
    if pre is not None:
        return pre
    if isolate is None:
        isolate = threading.current_thread() is not threading.main_thread()
    if isolate and timeout is not None and not mp.current_process().daemon:  # daemons cannot have children
        if not (math.isfinite(timeout) and timeout > 0):
            raise ValueError(f"timeout must be a positive number of seconds or None, got {timeout!r}")
        correct, status = _shared_service().compare(extracted, gold, float(timeout))
    else:
        correct, status = _compare_with_timeout(extracted, gold, timeout)
    return GradeResult(extracted, correct, status)


def grade(output: str, gold: str, *, fallback: str | None = None, finish_reason: str | None = None,
          timeout: float | None = 5.0, isolate: bool | None = None) -> bool:
    """True iff ``output``'s final answer equals ``gold`` (see the module docstring); truncated -> False."""
    return grade_result(output, gold, fallback=fallback, finish_reason=finish_reason, timeout=timeout,
                        isolate=isolate).correct


# ---------------------------------------------------------------------------------------------------------------------
# Process pool with per-item hard timeouts


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
        _compare_with_timeout("\\frac{1}{2}", "0.5", None)
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
        correct, status = _compare_with_timeout(answer, gold, timeout)  # never raises (but MemoryError)
        try:
            conn.send((idx, bool(correct), status))
        except (EOFError, OSError):
            return


def _mp_context():
    """forkserver on Linux (cheap, safe forks from a clean server that has math-verify imported), else spawn."""
    if sys.platform.startswith("linux"):
        ctx = mp.get_context("forkserver")
        try:
            ctx.set_forkserver_preload(["analysis.verify", "math_verify", "sympy"])
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
        if not self.conn.poll(startup_timeout):
            raise OSError(f"grading worker {self.proc.pid} did not start within {startup_timeout} s")
        if self.conn.recv() != ("ready",):
            raise OSError(f"grading worker {self.proc.pid} sent an unexpected greeting")
        self.ready = True

    def submit(self, idx: int, answer: str, gold: str, timeout: float, soft: bool = True) -> None:
        """Send one job once the worker is ready; the hard deadline starts now."""
        try:
            self.wait_ready()
        except EOFError as e:
            raise OSError(f"grading worker {self.proc.pid} died while starting") from e
        self.conn.send((idx, answer, gold, timeout if soft else None))
        self.job = (idx, time.monotonic() + timeout + max(_HARD_GRACE_S, 0.5 * timeout))

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


class _GradingService:
    """Up to ``max_workers`` persistent grading processes shared by all threads of this process.

    ``compare`` borrows an idle worker (starting one if fewer than max_workers exist, else waiting), sends one pair
    and waits for the answer until the hard deadline; an overdue worker is killed and replaced.
    """

    def __init__(self, max_workers: int, mem_limit_mb: int | None):
        self.max_workers = max_workers
        self.mem_limit_mb = mem_limit_mb
        self._ctx = _mp_context()
        self._idle: list[_Worker] = []
        self._started = 0
        self._cond = threading.Condition()

    def _borrow(self) -> _Worker:
        with self._cond:
            while not self._idle and self._started >= self.max_workers:
                self._cond.wait()
            if self._idle:
                return self._idle.pop()
            self._started += 1
        try:
            return _Worker(self._ctx, self.mem_limit_mb)
        except BaseException:
            with self._cond:
                self._started -= 1
                self._cond.notify()
            raise

    def _give_back(self, w: _Worker | None) -> None:
        with self._cond:
            if w is None:
                self._started -= 1
            else:
                self._idle.append(w)
            self._cond.notify()

    def compare(self, answer: str, gold: str, timeout: float) -> tuple[bool, str]:
        w = self._borrow()
        try:
            w.submit(0, answer, gold, timeout)  # waits for a fresh worker to warm up first
            remaining = w.job[1] - time.monotonic()
            if w.conn.poll(max(0.0, remaining)):
                _, correct, status = w.conn.recv()
                w.job = None
                self._give_back(w)
                return correct, status
            result = (False, "timeout")
        except (EOFError, OSError):  # the worker died (segfault, OOM kill)
            result = (False, "error")
        except BaseException:
            w.kill()
            self._give_back(None)
            raise
        w.kill()
        self._give_back(None)
        return result


_SERVICE: _GradingService | None = None
_SERVICE_LOCK = threading.Lock()


def _shared_service() -> _GradingService:
    """The process-wide grading service; RSPO_VERIFY_WORKERS sets its size (default 2)."""
    global _SERVICE
    with _SERVICE_LOCK:
        if _SERVICE is None:
            n = int(os.environ.get("RSPO_VERIFY_WORKERS", "2"))
            if n < 1:
                raise ValueError(f"RSPO_VERIFY_WORKERS must be >= 1, got {n}")
            _SERVICE = _GradingService(n, mem_limit_mb=4096)
        return _SERVICE


def default_workers(n_items: int) -> int:
    """Worker count: CPUs available to this process, at most one per item."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, n_items))


def _run_pool(jobs: list[tuple[str, str]], *, timeout: float, workers: int, mem_limit_mb: int | None,
              progress: bool, soft_timeout: bool = True) -> list[tuple[bool, str]]:
    """Grade (answer, gold) jobs in ``workers`` processes; (correct, status) per job, in order.

    Each item gets a soft alarm of ``timeout`` s inside the worker (``soft_timeout=False`` disables it, leaving only
    the hard kill, as for code that ignores signals) and a hard deadline of timeout + max(1 s, timeout/2).
    """
    from tqdm.auto import tqdm

    results: list[tuple[bool, str] | None] = [None] * len(jobs)
    pending = deque(range(len(jobs)))
    ctx = _mp_context()
    pool: list[_Worker] = []
    bar = tqdm(total=len(jobs), desc="grading", unit="pair", disable=not progress or len(jobs) < 50, leave=False)
    try:
        pool = [_Worker(ctx, mem_limit_mb) for _ in range(min(workers, len(jobs)))]
        failed_starts = 0
        while pending or any(w.job for w in pool):
            for slot, w in enumerate(pool):
                if w.job is None and pending:
                    i = pending.popleft()
                    try:
                        w.submit(i, jobs[i][0], jobs[i][1], timeout, soft_timeout)
                        failed_starts = 0
                    except OSError as e:  # died while starting or idle: replace it, retry the item
                        failed_starts += 1
                        if failed_starts > _MAX_FAILED_STARTS:
                            raise RuntimeError(f"grading workers keep failing to start ({e})") from e
                        pending.appendleft(i)
                        w.kill()
                        pool[slot] = _Worker(ctx, mem_limit_mb)
            busy = [w for w in pool if w.job]
            if not busy:
                continue
            wait_s = max(0.0, min(w.job[1] for w in busy) - time.monotonic())
            ready = set(mpc.wait([w.conn for w in busy], timeout=wait_s))
            now = time.monotonic()
            for slot, w in enumerate(pool):
                if w.job is None:
                    continue
                idx, deadline = w.job
                if w.conn in ready:
                    try:
                        ridx, correct, status = w.conn.recv()
                        results[ridx] = (correct, status)
                        w.job = None
                        bar.update(1)
                        continue
                    except (EOFError, OSError):  # crashed mid-item (segfault, OOM kill)
                        results[idx] = (False, "error")
                elif now >= deadline:  # stuck in code that ignores signals (GMP, C extensions)
                    log.debug("killing grading worker %d stuck on item %d", w.proc.pid, idx)
                    results[idx] = (False, "timeout")
                else:
                    continue
                bar.update(1)
                w.kill()
                pool[slot] = _Worker(ctx, mem_limit_mb)
    finally:
        bar.close()
        for w in pool:
            w.stop()
    return [r if r is not None else (False, "error") for r in results]


def grade_many(outputs: Sequence[str], golds: Sequence[str], *, fallback: str | None = None,
               finish_reasons: Sequence[str | None] | None = None, timeout: float = 5.0,
               workers: int | None = None, mem_limit_mb: int | None = 4096,
               progress: bool = False) -> list[GradeResult]:
    """Grade many (output, gold) pairs robustly; one GradeResult per pair, in order.

    Extraction, truncation and the plain-number fast path run here; the remaining distinct (answer, gold) pairs go
    to ``workers`` processes (None: one per CPU; 0: in this process, soft timeout only) with a hard per-item
    deadline of ``timeout`` + max(1 s, timeout/2): a stuck worker is killed and replaced, the item is incorrect with
    status "timeout". ``mem_limit_mb`` caps what each worker may allocate beyond its start-up size (None: no cap).
    """
    if len(outputs) != len(golds):
        raise ValueError(f"outputs and golds differ in length: {len(outputs)} vs {len(golds)}")
    if finish_reasons is not None and len(finish_reasons) != len(outputs):
        raise ValueError(f"finish_reasons has length {len(finish_reasons)}, expected {len(outputs)}")
    if not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    if workers is not None and (not isinstance(workers, int) or workers < 0):
        raise ValueError(f"workers must be None or an int >= 0, got {workers!r}")
    fallback = _check_fallback(fallback)
    frs = finish_reasons if finish_reasons is not None else [None] * len(outputs)

    results: list[GradeResult | None] = []
    extracted: list[str | None] = []
    todo: dict[tuple[str, str], list[int]] = {}  # distinct (answer, gold) -> sample indices
    for i, (out, gold, fr) in enumerate(zip(outputs, golds, frs)):
        ans, pre = _pre_grade(out, gold, fallback, fr)
        results.append(pre)
        extracted.append(ans)
        if pre is None:
            todo.setdefault((ans, gold), []).append(i)
    keys = list(todo)
    if keys:
        _mv()  # fail here, loudly, if math-verify is missing (not once per item inside the workers)
        n_workers = default_workers(len(keys)) if workers is None else workers
        if n_workers and mp.current_process().daemon:
            log.warning("grade_many in a daemonic process cannot start workers: grading in-process")
            n_workers = 0
        if n_workers == 0:
            verdicts = [_compare_with_timeout(a, g, timeout) for a, g in keys]
        else:
            verdicts = _run_pool(keys, timeout=timeout, workers=n_workers, mem_limit_mb=mem_limit_mb,
                                 progress=progress)
        for key, (correct, status) in zip(keys, verdicts):
            for i in todo[key]:
                results[i] = GradeResult(extracted[i], correct, status)
    return results  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------------------------------
# xVerify judge (a fine-tuned LLM grader, served with vLLM)

JUDGE_INSTRUCTION = (
    "You are checking the final answer of another model to a question against the reference answer.\n"
    "Read the question, the model's complete output and the correct answer below. Identify the final answer the "
    "output commits to (ignore the reasoning that leads there) and decide whether it is equivalent to the correct "
    "answer. Answers that are mathematically equal count as the same: equivalent fractions, decimals or radicals, "
    "rearranged algebraic expressions, the same set of values in another order, the same option letter or text, "
    "units written or omitted. If the output gives no final answer, gives several different final answers, or its "
    "answer differs from the correct one, the output is incorrect.\n"
    "Reply with a single word: Correct or Incorrect."
)


def build_judge_prompt(question: str, output: str, gold: str, *, max_output_chars: int = 12_000) -> str:
    """The user message for an xVerify-style judge: instruction, question, LLM output, correct answer.

    Fields follow the xVerify paper's description (Question / Output sentence / Correct answer / Judgement).
    Outputs longer than ``max_output_chars`` keep their end (where the final answer is), prefixed by "[...]".
    """
    if max_output_chars < 1:
        raise ValueError(f"max_output_chars must be >= 1, got {max_output_chars}")
    for name, v in (("question", question), ("output", output), ("gold", gold)):
        if not isinstance(v, str):
            raise ValueError(f"{name} must be a str, got {type(v).__name__}")
    out = output.strip()
    if len(out) > max_output_chars:
        out = "[...] " + out[-max_output_chars:]
    return (f"{JUDGE_INSTRUCTION}\n\n"
            f"Question: {question.strip()}\n\n"
            f"Output sentence: {out}\n\n"
            f"Correct answer: {gold.strip()}\n\n"
            f"Judgement:")


def parse_judge_label(text: str) -> str:
    """'Correct' / 'Incorrect' from the judge's reply (case, spaces, quotes, markdown, final period tolerated),
    anything else 'invalid' (counted as incorrect by verify_file)."""
    t = (text or "").strip().strip("*_`'\"[]() \t\n").rstrip(".!").strip("*_`'\" \t\n").lower()
    if t == "correct":
        return "Correct"
    if t == "incorrect":
        return "Incorrect"
    return "invalid"


def render_chat(tokenizer, user_message: str) -> str:
    """The judge prompt through the model's own chat template (one user turn, generation prompt appended)."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("the xVerify model's tokenizer has no chat_template; xVerify models ship one")
    return tokenizer.apply_chat_template([{"role": "user", "content": user_message}], tokenize=False,
                                         add_generation_prompt=True)


def fit_judge_prompt(tokenizer, question: str, output: str, gold: str, *, max_prompt_tokens: int,
                     max_output_chars: int = 12_000) -> str:
    """Chat-formatted judge prompt of at most ``max_prompt_tokens`` tokens: the output's kept tail is halved until
    it fits (down to 256 characters; a question too long even then is returned as is and vLLM reports it)."""
    if max_prompt_tokens < 1:
        raise ValueError(f"max_prompt_tokens must be >= 1, got {max_prompt_tokens}")
    chars = max_output_chars
    while True:
        text = render_chat(tokenizer, build_judge_prompt(question, output, gold, max_output_chars=chars))
        if chars <= 256 or len(tokenizer.encode(text, add_special_tokens=False)) <= max_prompt_tokens:
            return text
        chars //= 2


class XVerifyJudge:
    """xVerify (IAAR-Shanghai, arXiv 2504.10481) as a grader: an LLM that reads (question, output, correct answer)
    and answers "Correct" or "Incorrect". Weights are loaded BY LOCAL PATH (they are CC-BY-NC-ND; never downloaded
    or vendored here); greedy decoding, ``max_tokens`` new tokens.

    >>> judge = XVerifyJudge("/models/xVerify-0.5B-I")          # doctest: +SKIP
    >>> judge.judge(["1+1?"], ["... so \\\\boxed{2}"], ["2"])      # doctest: +SKIP
    ['Correct']
    """

    def __init__(self, model_path: str | os.PathLike, *, tensor_parallel_size: int = 1,
                 gpu_memory_utilization: float = 0.85, max_model_len: int = 8192, max_tokens: int = 16,
                 temperature: float = 0.0, seed: int = 0, max_output_chars: int = 12_000, dtype: str = "auto",
                 **llm_kwargs):
        path = Path(model_path)
        if not path.is_dir() or not (path / "config.json").is_file():
            raise ValueError(f"xVerify model_path {str(model_path)!r} is not a local model folder with config.json; "
                             "download the weights yourself and pass their directory")
        try:
            from vllm import LLM, SamplingParams
        except ImportError as e:
            raise ImportError("the xVerify verifier needs vLLM (`pip install -e '.[gpu]'` on a GPU machine); "
                              "use --verifier math-verify otherwise") from e
        self.model_path = str(path)
        self.max_output_chars = max_output_chars
        self.max_prompt_tokens = max_model_len - max_tokens
        self.llm = LLM(model=self.model_path, tensor_parallel_size=tensor_parallel_size,
                       gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len, seed=seed,
                       dtype=dtype, **llm_kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self.sampling = SamplingParams(temperature=temperature, max_tokens=max_tokens, n=1, seed=seed)

    def prompts(self, questions: Sequence[str], outputs: Sequence[str], golds: Sequence[str]) -> list[str]:
        """Chat-formatted judge prompts, one per (question, output, gold)."""
        if not (len(questions) == len(outputs) == len(golds)):
            raise ValueError(f"questions/outputs/golds lengths differ: {len(questions)}, {len(outputs)}, {len(golds)}")
        return [fit_judge_prompt(self.tokenizer, q, o, g, max_prompt_tokens=self.max_prompt_tokens,
                                 max_output_chars=self.max_output_chars)
                for q, o, g in zip(questions, outputs, golds)]

    def judge(self, questions: Sequence[str], outputs: Sequence[str], golds: Sequence[str]) -> list[str]:
        """Labels in XVERIFY_LABELS, one per pair (vLLM batches internally)."""
        prompts = self.prompts(questions, outputs, golds)
        if not prompts:
            return []
        gens = self.llm.generate(prompts, self.sampling, use_tqdm=True)
        return [parse_judge_label(g.outputs[0].text if g.outputs else "") for g in gens]


# ---------------------------------------------------------------------------------------------------------------------
# Files


_SAMPLE_FIELDS = ("problem_id", "output", "finish_reason", "num_tokens")


def verify_file(samples_path: str | os.PathLike, data_path: str | os.PathLike, out_path: str | os.PathLike, *,
                max_new_tokens: int, verifier: str = "math-verify", fallback: str | None = None,
                timeout: float = 5.0, workers: int | None = None, xverify_model: str | os.PathLike | None = None,
                progress: bool = True) -> dict:
    """Grade samples.jsonl against the frozen benchmark and write verified.jsonl atomically.

    Each output row = the sample + {extracted, correct, reward_pass, reward_max, verifier, grader_version,
    grade_status} (+ correct_math_verify and xverify_label when verifier="xverify": ``correct`` is then xVerify's
    verdict, "invalid" labels counting as incorrect; truncated samples are not judged: label None, incorrect).
    Rewards: rspo_patch.rewards.
    Returns a summary: counts of samples, correct, each grade status, seconds, paths, grader version.
    """
    from rspo_patch.rewards import max_reward, pass_reward

    if verifier not in VERIFIERS:
        raise ValueError(f"unknown verifier {verifier!r}; expected one of {', '.join(VERIFIERS)}")
    if not isinstance(max_new_tokens, int) or max_new_tokens <= 0:
        raise ValueError(f"max_new_tokens must be a positive int, got {max_new_tokens!r}")
    if verifier == "xverify":  # checked before the (long) math-verify pass
        if xverify_model is None:
            raise ValueError("verifier='xverify' needs xverify_model (a local model folder)")
        if not (Path(xverify_model) / "config.json").is_file():
            raise ValueError(f"xverify_model {str(xverify_model)!r} is not a local model folder with config.json")
    fallback = _check_fallback(fallback)
    t0 = time.time()
    from analysis.datasets import read_jsonl  # here, not at the top: analysis.datasets imports this module

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


def main(argv: Sequence[str] | None = None) -> int:
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
    p.add_argument("--timeout", type=float, default=5.0, help="seconds per pair before it counts as a timeout")
    p.add_argument("--summary", default=None, help="also write the summary JSON here")
    a = p.parse_args(argv)
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
