"""rspo_core.grading.extract: last \boxed / \fbox, the last_number fallback, bad arguments, linear time."""

from __future__ import annotations

import time

import pytest

import rspo_core.grading as G


@pytest.mark.parametrize("text,expected", [
    ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
    ("a \\boxed{1} b \\fbox{2}", "2"),
    ("\\boxed{\\boxed{5}}", "5"),                 # inner box starts last
    ("\\boxed{\\{1,2\\}}", "\\{1,2\\}"),          # escaped braces are not grouping braces
    ("\\boxed{4} then \\boxed{5", "4"),           # unclosed last box (cut off) is skipped
    ("\\boxed {  x+1 }", "x+1"),
    ("\\boxed 7.", "7"),
    ("\\boxedfoo{3}", None),                      # not a \boxed command
    ("\\boxed{}", None),
    ("no answer here", None),
])
def test_extract_boxed(text, expected):
    assert G.extract_answer(text) == expected


@pytest.mark.parametrize("text,expected", [
    ("x = -3.", "-3"), ("5-3=2", "2"), ("1,234 apples", "1234"), ("3/4", "3/4"), ("pi is 3.14", "3.14"),
    ("\\frac{1}{2} it is", "\\frac{1}{2}"), ("none", None), ("(2)-1", "1"),
])
def test_extract_last_number(text, expected):
    assert G.extract_answer(text, "last_number") == expected


def test_boxed_beats_fallback_and_bad_arguments():
    assert G.extract_answer("\\boxed{3} and 7", "last_number") == "3"
    with pytest.raises(ValueError, match="fallback"):
        G.extract_answer("1", "first_number")
    with pytest.raises(ValueError, match="str"):
        G.extract_answer(None)
    with pytest.raises(ValueError, match="gold"):
        G.grade("\\boxed{1}", 1)
    with pytest.raises(ValueError, match="differ in length"):
        G.grade_many(["a"], ["1", "2"])
    with pytest.raises(ValueError, match="timeout"):
        G.grade_many(["a"], ["1"], timeout=0)
    with pytest.raises(ValueError, match="workers"):
        G.grade_many(["a"], ["1"], workers=-1)


def test_extraction_is_linear_on_huge_inputs():
    t = time.perf_counter()
    assert G.extract_answer("x" * 2_000_000 + "\\boxed{1}") == "1"
    assert G.extract_answer("\\boxed{" * 50_000 + "1") is None  # no box ever closes
    assert G.extract_answer("{" * 50_000, "last_number") is None
    assert time.perf_counter() - t < 5

