"""analysis.contamination: planted duplicates are found, clean problems are not; outputs written atomically."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from analysis import contamination as C
from rspo_core.atomic import write_jsonl_atomic

REPO = Path(__file__).resolve().parents[2]

TRAIN = [
    {"id": "t0", "question": "Let $f(x) = 3x^2 + 5x - 7$. What is the value of $f(2)$ when we evaluate the polynomial "
     "carefully at the point two?", "answer": "15", "meta": {"solution": "Plug in: $f(2) = 12 + 10 - 7 = \\boxed{15}$."}},
    {"id": "t1", "question": "A bag holds 4 red marbles and 6 blue marbles. Two marbles are drawn without replacement. "
     "What is the probability both are red?", "answer": "\\frac{2}{15}",
     "meta": {"solution": "The number of ways to choose two red marbles out of the four red marbles in the bag is "
              "six, so the answer is $\\boxed{\\frac{2}{15}}$."}},
    {"id": "t2", "question": "How many positive divisors does 360 have?", "answer": "24", "meta": {}},
]
BENCH = [
    # planted duplicate of t0: different case, LaTeX spacing, \dfrac-free, extra spaces
    {"id": "b-dup", "question": "LET $f(x)=3x^2+5x-7$.  What is the value of $f(2)$ when we\\, evaluate the polynomial "
     "carefully at the point two?", "answer": "15", "meta": {}},
    # shares one 13-word run with t1's *solution* only
    {"id": "b-part", "question": "Explain why the number of ways to choose two red marbles out of the four red "
     "marbles in the urn matters for a fair game between friends who play often.", "answer": "x", "meta": {}},
    {"id": "b-clean", "question": "A train leaves the station at noon travelling at sixty miles per hour toward a "
     "city that is one hundred and twenty miles away; when does it arrive?", "answer": "2", "meta": {}},
    {"id": "b-short", "question": "Compute $1+1$.", "answer": "2", "meta": {}},
    # short (< 13 words) but an exact duplicate of t2 after normalisation
    {"id": "b-short-dup", "question": "HOW many positive divisors does 360 have?", "answer": "24", "meta": {}},
]


def test_normalise_and_tokenize():
    assert C.normalise_text("A\\,B \\quad  $x$\\left(y\\right) \\dfrac12") == "a b x (y ) \\frac12"
    assert C.tokenize("Find $\\frac{1}{2}$ of 10, \\leftarrow ok") == ["find", "\\frac", "1", "2", "of", "10",
                                                                     "\\leftarrow", "ok"]
    assert C.tokenize("What IS 3x^2?") == C.tokenize("what is 3x ^ 2")


def test_ngram_hashes_counts():
    words = "a b c d e".split()
    assert len(list(C.ngram_hashes(words, 3))) == 3
    assert list(C.ngram_hashes(words, 6)) == []


def test_audit_finds_planted_duplicates(tmp_path):
    index = C.build_index(TRAIN, 13)
    res = C.audit_rows("bench", BENCH, index, 13)
    assert res["n_problems"] == 5 and res["n_too_short"] == 2 and res["n_exact"] == 2
    ids = [f["id"] for f in res["flagged"]]
    assert ids == ["b-dup", "b-short-dup", "b-part"]  # highest overlap first; short exact duplicates count as 1.0
    dup, short_dup, part = res["flagged"]
    assert dup["overlap"] == 1.0 and dup["exact"] and res["max_overlap"] == 1.0
    assert short_dup["overlap"] is None and short_dup["exact"] and short_dup["total"] == 0
    assert 0 < part["overlap"] < 0.5 and not part["exact"]
    assert res["frac_flagged"] == 3 / 5
    # without solutions the partial overlap (which lives in a solution) disappears
    res_q = C.audit_rows("bench", BENCH, C.build_index(TRAIN, 13, include_solutions=False), 13)
    assert [f["id"] for f in res_q["flagged"]] == ["b-dup", "b-short-dup"]


def test_exact_duplicates_of_short_arithmetic_problems():
    train = [{"id": "a0", "question": "12+7"}, {"id": "a1", "question": "3*4"}]
    bench = [{"id": "x0", "question": "12+7"}, {"id": "x1", "question": "12*7"}, {"id": "x2", "question": "3 * 4"}]
    res = C.audit_rows("arith", bench, C.build_index(train, 13), 13)
    assert [f["id"] for f in res["flagged"]] == ["x0", "x2"] and res["n_too_short"] == 3


def test_audit_files_and_train_ids(tmp_path):
    tr, be = tmp_path / "train.jsonl", tmp_path / "bench.jsonl"
    write_jsonl_atomic(tr, TRAIN)
    write_jsonl_atomic(be, BENCH)
    doc = C.audit(tr, {"toy": be, "toy_clean": be}, tmp_path / "o" / "c.json", tmp_path / "o" / "c.csv", n=13)
    saved = json.loads((tmp_path / "o" / "c.json").read_text())
    assert saved == json.loads(json.dumps(doc))
    flagged = {f["id"]: f for f in saved["benchmarks"]["toy"]["flagged"]}
    assert flagged["b-dup"]["train_ids"] == ["t0"] and flagged["b-part"]["train_ids"] == ["t1"]
    assert flagged["b-short-dup"]["train_ids"] == ["t2"]
    with open(tmp_path / "o" / "c.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["benchmark"] for r in rows] == ["toy", "toy_clean"] and list(rows[0]) == C.CSV_COLUMNS
    assert rows[0]["n_flagged"] == "3" and float(rows[0]["frac_flagged"]) == 0.6 and rows[0]["train_rows"] == "3"
    assert rows[0]["n_exact"] == "2"
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["c.csv", "c.json"]  # no temp files left


def test_smaller_n_flags_more():
    assert C.audit_rows("b", BENCH, C.build_index(TRAIN, 3), 3)["n_flagged"] >= 2
    assert C.audit_rows("b", BENCH, C.build_index(TRAIN, 3), 3)["n_too_short"] == 0


@pytest.mark.parametrize("n", [0, -1, 1.5, True])
def test_bad_n(n):
    with pytest.raises(ValueError, match="n-gram size"):
        C.build_index(TRAIN, n)


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        C.audit(tmp_path / "nope.jsonl", {"x": tmp_path / "x.jsonl"}, tmp_path / "j", tmp_path / "c")
    with pytest.raises(ValueError, match="no benchmarks"):
        C.audit(tmp_path / "nope.jsonl", {}, tmp_path / "j", tmp_path / "c")
    with pytest.raises(ValueError, match="expected NAME=PATH"):
        C.parse_bench_args(["math500"])
    with pytest.raises(ValueError, match="given twice"):
        C.parse_bench_args(["a=1", "a=2"])


def test_cli(tmp_path):
    tr, be = tmp_path / "train.jsonl", tmp_path / "bench.jsonl"
    write_jsonl_atomic(tr, TRAIN)
    write_jsonl_atomic(be, BENCH)
    r = subprocess.run([sys.executable, "-m", "analysis.contamination", "--train", str(tr), "--bench", f"toy={be}",
                        "--out-json", str(tmp_path / "c.json"), "--out-csv", str(tmp_path / "c.csv"), "--n", "13"],
                       cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "toy: 3/5 flagged, max overlap 1.000" in r.stdout
