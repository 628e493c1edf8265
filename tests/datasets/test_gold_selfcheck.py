"""Gold self-check: every gold, boxed as a model writes it, and the reference solution grade correct against it.

The rows are real (tests/datasets/fixtures/real/SOURCES.md says where each was copied from); the verdicts come from
analysis.verify.grade, the function that also computes the training rewards.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analysis import verify as V

REAL = Path(__file__).parent / "fixtures" / "real"


def real_rows(name):
    return json.loads((REAL / f"{name}.json").read_text())


ESCAPED_DOLLAR_IDS = ["test/algebra/2626.json", "test/algebra/2780.json", "test/prealgebra/1203.json"]


@pytest.mark.parametrize("unique_id", ESCAPED_DOLLAR_IDS)
def test_math500_escaped_dollar_golds_grade_correct_against_themselves(unique_id):
    """Grader 1.0 parsed '\\$18.90' to nothing (it skipped the $...$ wrapping because the gold 'contains $')."""
    row = next(r for r in real_rows("math500") if r["unique_id"] == unique_id)
    gold = row["answer"]
    assert gold.startswith("\\$")
    assert V.grade_result(f"\\boxed{{{gold}}}", gold) == (gold, True, "ok")
    assert V.grade(row["solution"], gold)  # MATH500's own reference solution boxes the same text


def test_escaped_dollar_gold_still_rejects_a_wrong_answer_and_accepts_the_bare_number():
    rows = {r["unique_id"]: r["answer"] for r in real_rows("math500")}
    g18, g36, g32 = rows["test/algebra/2780.json"], rows["test/prealgebra/1203.json"], rows["test/algebra/2626.json"]
    assert not V.grade(f"\\boxed{{{g36}}}", g18)
    assert not V.grade("\\boxed{18.91}", g18)
    assert V.grade("\\boxed{18.90}", g18) and V.grade("\\boxed{36}", g36) and V.grade("\\boxed{32348}", g32)


def test_unescaped_dollar_detection():
    assert V._UNESCAPED_DOLLAR.search("$221,$8$") and V._UNESCAPED_DOLLAR.search("a\\\\$b")  # "\\" then a real $
    assert not V._UNESCAPED_DOLLAR.search("\\$32,\\!348") and not V._UNESCAPED_DOLLAR.search("27")
