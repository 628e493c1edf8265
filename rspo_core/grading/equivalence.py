"""Is an extracted answer equal to the gold answer? math-verify 0.9.0 with a fast path and a soft timeout.

1. Fast path (no sympy): when gold and answer are both plain numbers (``-12``, ``27.0``, ``4.5e-4``) equal decimal
   values are correct and unequal *integers* are wrong; everything else goes to math-verify. The fast path never
   disagrees with math-verify (tested), it only skips it: integer-answer rewards cost microseconds.
2. math-verify: ``parse`` the gold (wrapped as ``$gold$`` unless it already holds an unescaped ``$`` or a
   ``\\boxed``; an escaped ``\\$``, as in MATH500's ``\\$32,\\!348``, is a dollar sign, not math mode) and the answer
   (wrapped as ``\\boxed{answer}``) with ``[LatexExtractionConfig(), ExprExtractionConfig()]``, then
   ``verify(gold, pred, float_rounding=6, strict=True)`` (gold first: verify is not symmetric). Plain e-notation
   (``4.5e-4``) is rewritten to ``4.5\\times 10^{-4}`` first, because math-verify reads the ``e`` as Euler's number.
3. Soft timeout: math-verify's own ``signal.alarm`` timeouts are switched off; one ``setitimer`` alarm covers
   parse + verify (status "timeout"; armed only in the main thread, as signals demand; a caller's pending alarm is
   re-armed afterwards). Work that ignores signals needs the hard deadline of :mod:`rspo_core.grading.pool`.

``compare(answer, gold, timeout)`` returns (correct, status) with status in "ok", "timeout", "error"; it never
raises (but MemoryError, which the pool's workers handle).
"""

from __future__ import annotations

import logging
import re
import signal
import threading
import time
from decimal import Decimal, InvalidOperation
from functools import lru_cache

log = logging.getLogger(__name__)

_PLAIN_NUM = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_PLAIN_INT = re.compile(r"[+-]?\d+")
_SCI = re.compile(r"([+-]?(?:\d+(?:\.\d*)?|\.\d+))[eE]([+-]?\d+)")
_UNESCAPED_DOLLAR = re.compile(r"(?<!\\)(?:\\\\)*\$")  # a $ after 0, 2, 4, ... backslashes


def fast_compare(pred: str, gold: str) -> bool | None:
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


def sci_to_latex(s: str) -> str:
    """'4.5e-4' -> '4.5\\times 10^{-4}' for a plain e-notation number (math-verify reads 'e' as Euler's e)."""
    m = _SCI.fullmatch(s.strip())
    return f"{m.group(1)}\\times 10^{{{int(m.group(2))}}}" if m else s


@lru_cache(maxsize=1)
def math_verify_api():
    """(parse, verify, extraction_config) of math-verify, imported lazily (the fast path needs no sympy)."""
    try:
        from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify
        import math_verify.grader
        import math_verify.parser
    except ImportError as e:
        raise ImportError("rspo_core.grading needs math-verify 0.9.0: pip install 'math-verify[antlr4_13_2]==0.9.0' "
                          "(part of the cpu and gpu extras)") from e

    # we arm our own alarm around parse + verify; silence the "timeout disabled" warning that says so
    math_verify.parser.TIMEOUT_WARNING_SHOWN = True
    math_verify.grader.TIMEOUT_WARNING_SHOWN = True
    return parse, verify, [LatexExtractionConfig(), ExprExtractionConfig()]


def gold_latex(gold: str) -> str:
    """The text math-verify parses for a gold answer: ``$gold$`` unless it already has math mode or a box.

    Only an unescaped ``$`` opens math mode: ``\\$36`` (a dollar amount) -> ``$\\$36$``; ``4.5e-4`` is rewritten by
    :func:`sci_to_latex` first.
    """
    g = sci_to_latex(gold.strip())
    return g if (_UNESCAPED_DOLLAR.search(g) or "\\boxed" in g) else f"${g}$"


@lru_cache(maxsize=4096)
def _parse_gold(gold: str):
    parse, _, cfg = math_verify_api()
    return parse(gold_latex(gold), extraction_config=cfg, parsing_timeout=None)


@lru_cache(maxsize=4096)
def _parse_pred(answer: str):
    parse, _, cfg = math_verify_api()
    return parse(f"\\boxed{{{sci_to_latex(answer)}}}", extraction_config=cfg, parsing_timeout=None)


def compare_exact(answer: str, gold: str) -> tuple[bool, str]:
    """(correct, status) for an extracted answer and a gold answer; no timeout, exceptions propagate.

    status "error" when the gold cannot be parsed (logged); an unparsable answer is simply incorrect ("ok").
    """
    fast = fast_compare(answer, gold)
    if fast is not None:
        return fast, "ok"
    gp = _parse_gold(gold)
    if not gp:
        log.warning("math-verify could not parse gold answer %r", gold[:200])
        return False, "error"
    pp = _parse_pred(answer)
    if not pp:
        return False, "ok"
    _, verify, _ = math_verify_api()
    return bool(verify(gp, pp, float_rounding=6, timeout_seconds=None, strict=True)), "ok"


class _SoftTimeout(BaseException):
    """Raised by our SIGALRM handler; a BaseException so math-verify's `except Exception` cannot swallow it."""


def _raise_soft_timeout(signum, frame):
    raise _SoftTimeout()


def _compare_guarded(answer: str, gold: str) -> tuple[bool, str]:
    """compare_exact with every ordinary exception turned into (False, "error"); _SoftTimeout passes through."""
    try:
        return compare_exact(answer, gold)
    except Exception as e:  # noqa: BLE001 - any grading failure (incl. RecursionError) is an "error"
        log.debug("grading error for %r vs %r: %s", answer[:100], gold[:100], e)
        return False, "error"


def compare(answer: str, gold: str, timeout: float | None) -> tuple[bool, str]:
    """compare_exact under a ``timeout``-second setitimer alarm (main thread only; elsewhere, or with None, no
    timeout). Errors -> (False, "error"); the alarm -> (False, "timeout").

    math-verify is imported before the alarm is armed, so the first call's import never counts as a timeout.
    """
    fast = fast_compare(answer, gold)
    if fast is not None:
        return fast, "ok"
    math_verify_api()
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
