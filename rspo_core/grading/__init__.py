"""The ONE grader: answer extraction + equivalence checking, for evaluation AND for both trainers' rewards.

Pipeline for one (output, gold) pair (:mod:`.pipeline`)
---------------------------------------------------------
1. ``finish_reason == "length"``  -> incorrect, status "truncated" (a truncated sample never counts, even if it
   happened to box something before the cut).
2. :func:`extract_answer` (:mod:`.extract`): content of the last ``\\boxed{...}`` / ``\\fbox{...}``; without one,
   the fallback ("last_number") or nothing -> status "no_answer".
3. :mod:`.equivalence`: plain-number fast path, else math-verify 0.9.0 (``float_rounding=6``, ``strict``) under a
   soft timeout (status "timeout"); an unparsable gold -> status "error".
4. :mod:`.pool`: pairs that need math-verify run in sandboxed worker processes (hard deadline, address-space cap)
   for :func:`grade_many` with workers, and for :func:`grade_result` outside the main thread (OpenRLHF's reward
   threads; RSPO_VERIFY_WORKERS workers, default 2). The run never hangs or crashes.
:mod:`.xverify` is the optional LLM judge of the evaluation (its verdict kept next to math-verify's).

Known behaviour of math-verify 0.9.0 (asserted in tests/grading): lenient on ``10\\%`` vs ``10`` and on ``x=3`` vs
``3``; units in ``\\text{}`` / ``\\mathrm{}`` are dropped; ``90^\\circ`` equals ``90`` but ``30^\\circ`` is not
``\\pi/6``; no relative tolerance (``1.3`` vs ``1.31`` is wrong: matters on Minerva), but numbers that agree after
rounding to 6 decimals are equal.

Config: the workflow's ``grader:`` block (verifier, xverify_model, fallback, timeout_s) reaches the train rule
(both trainers) and the verify rule alike.

Changelog (GRADER_VERSION, written into every verified.jsonl row and every metrics file)
-----------------------------------------------------------------------------------------
1.0  first version: last \\boxed/\\fbox, fallback last_number, integer/decimal fast path, e-notation rewrite,
     math-verify 0.9.0 (float_rounding=6, strict), truncated = incorrect, process pool with hard timeouts,
     optional xVerify judge (verdict kept next to math-verify's).
1.1  golds with an escaped dollar (MATH500 ``\\$32,\\!348``, ``\\$18.90``, ``\\$36``) are parsed (they were
     "error", never correct); the xVerify judge gets the official prompt and its reply is parsed by the official
     rule (exactly "correct"/"incorrect" after strip + lower-case). Every other verdict is unchanged.
"""

from rspo_core.grading.equivalence import compare
from rspo_core.grading.extract import FALLBACKS, check_fallback, extract_answer, last_boxed, last_number
from rspo_core.grading.pipeline import STATUSES, GradeResult, grade, grade_many, grade_result, pre_grade
from rspo_core.grading.pool import WorkerPool, default_workers, shared_pool
from rspo_core.grading.xverify import XVERIFY_LABELS, XVerifyJudge

GRADER_VERSION = "1.1"
VERIFIERS = ("math-verify", "xverify")
DEFAULT_TIMEOUT_S = 5.0

__all__ = [
    "DEFAULT_TIMEOUT_S", "FALLBACKS", "GRADER_VERSION", "STATUSES", "VERIFIERS", "XVERIFY_LABELS", "GradeResult",
    "WorkerPool", "XVerifyJudge", "check_fallback", "compare", "default_workers", "extract_answer", "grade",
    "grade_many", "grade_result", "last_boxed", "last_number", "pre_grade", "shared_pool",
]
