"""rspo_core.grading: the grading table through the public API, the fast path against math-verify, the in-process
soft timeout, and golds with an escaped dollar (MATH500)."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from cases import CASES  # noqa: E402

import rspo_core.grading as G  # noqa: E402
from rspo_core.grading import equivalence as E  # noqa: E402


# ---------------------------------------------------------------------------------------------------------------------
# the table


def test_table_is_big_enough():
    assert len(CASES) >= 40
    assert sum(c[4] for c in CASES) >= 10 and sum(not c[4] for c in CASES) >= 10  # both verdicts well represented


@pytest.mark.parametrize("output,gold,fallback,finish_reason,expected,note", CASES, ids=[c[5] for c in CASES])
def test_grade_table(output, gold, fallback, finish_reason, expected, note):
    res = G.grade_result(output, gold, fallback=fallback, finish_reason=finish_reason)
    assert res.correct is expected, f"{note}: {output!r} vs {gold!r} -> {res}"
    assert G.grade(output, gold, fallback=fallback, finish_reason=finish_reason) is expected
    if finish_reason == "length":
        assert res.status == "truncated"
    elif res.extracted is None:
        assert res.status == "no_answer"
    else:
        assert res.status == "ok"


def test_fast_path_never_disagrees_with_math_verify():
    """Random plain-number pairs: wherever the fast path decides, math-verify (called directly) agrees."""
    parse, verify, cfg = E.math_verify_api()
    rng = random.Random(0)
    pool = ["0", "-0", "7", "007", "-7", "27", "27.0", "27.00", "0.5", ".5", "0.50", "1e3", "1000", "1000.0", "999",
            "123456789012345678", "123456789012345679", "4.5e-4", "0.00045", "-3", "3", "+3", "10", "10.000001"]
    pairs = [(a, b) for a in pool for b in pool]
    decided = 0
    for a, b in rng.sample(pairs, 120):
        fast = E.fast_compare(a, b)
        if fast is None:
            continue
        decided += 1
        ref = verify(parse(f"${E.sci_to_latex(b)}$", extraction_config=cfg),
                     parse(f"\\boxed{{{E.sci_to_latex(a)}}}", extraction_config=cfg), float_rounding=6, strict=True)
        assert fast == ref, (a, b)
    assert decided >= 30



def test_in_process_soft_timeout():
    import signal

    def outer(signum, frame):  # a caller's own alarm (pytest-timeout uses one too)
        raise AssertionError("the caller's alarm fired too early")

    before = signal.signal(signal.SIGALRM, outer)
    signal.setitimer(signal.ITIMER_REAL, 60.0)
    try:
        r = G.grade_result("\\boxed{" + "1+" * 200_000 + "1}", "5", timeout=0.5, isolate=False)
        assert r.status == "timeout" and not r.correct
        assert signal.getsignal(signal.SIGALRM) is outer  # handler restored
        assert 30.0 < signal.getitimer(signal.ITIMER_REAL)[0] < 60.0  # re-armed for the time it had left
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, before)



# ---------------------------------------------------------------------------------------------------------------------
# escaped dollars in golds (MATH500): "\$" is a dollar sign, not math mode


MATH500_DOLLAR_GOLDS = ["\\$32,\\!348", "\\$18.90", "\\$36"]  # the three MATH500 golds that used to parse to nothing


@pytest.mark.parametrize("gold,right,wrong", [
    ("\\$32,\\!348", ["\\boxed{\\$32,\\!348}", "\\boxed{32348}", "\\boxed{32,348}", "\\boxed{\\$32348}"],
     ["\\boxed{32347}", "\\boxed{\\$32,\\!349}"]),
    ("\\$18.90", ["\\boxed{\\$18.90}", "\\boxed{18.90}", "\\boxed{18.9}"], ["\\boxed{18.91}", "\\boxed{\\$19}"]),
    ("\\$36", ["\\boxed{\\$36}", "\\boxed{36}", "so the total is \\boxed{\\$36}."], ["\\boxed{37}", "\\boxed{\\$35}"]),
])
def test_escaped_dollar_golds_are_gradable(gold, right, wrong):
    """Golds with an escaped dollar were never parsed (status "error", incorrect whatever the answer): now the dollar
    amount and the bare number both grade correct, and a wrong amount grades incorrect."""
    assert gold in MATH500_DOLLAR_GOLDS
    for out in right:
        r = G.grade_result(out, gold, timeout=None)
        assert (r.correct, r.status) == (True, "ok"), (out, gold, r)
    for out in wrong:
        r = G.grade_result(out, gold, timeout=None)
        assert (r.correct, r.status) == (False, "ok"), (out, gold, r)


def test_gold_self_check_on_the_escaped_dollar_golds():
    """Every such gold, boxed as a model would write it, grades correct against itself (also through the pool)."""
    outs = [f"The answer is \\boxed{{{g}}}" for g in MATH500_DOLLAR_GOLDS]
    assert all(G.grade(o, g) for o, g in zip(outs, MATH500_DOLLAR_GOLDS))
    assert [r.correct for r in G.grade_many(outs, MATH500_DOLLAR_GOLDS, workers=1)] == [True] * 3


@pytest.mark.parametrize("gold,text", [
    ("\\$36", "$\\$36$"),            # escaped dollar only: wrapped
    ("$36$", "$36$"),                # already in math mode: kept
    ("\\boxed{36}", "\\boxed{36}"),  # boxed: kept
    ("36\\$", "$36\\$$"),
    ("4.5e-4", "$4.5\\times 10^{-4}$"),
])
def test_gold_latex_wraps_unless_math_mode(gold, text):
    assert E.gold_latex(gold) == text
