"""analysis.verify, the file stage: samples.jsonl + benchmark -> verified.jsonl, its CLI, its input checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analysis import verify as V
from rspo_core.grading import GRADER_VERSION
from rspo_core.rewards import max_reward


def _write_jsonl(path: Path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture
def files(tmp_path):
    data = [{"id": "p0", "question": "1+1?", "answer": "2", "meta": {}},
            {"id": "p1", "question": "half?", "answer": "\\frac{1}{2}", "meta": {}}]
    outs = [("p0", "so \\boxed{2}", "stop", 10), ("p0", "\\boxed{3}", "stop", 20), ("p0", "\\boxed{2}", "length", 64),
            ("p1", "0.5 hence \\boxed{0.5}", "stop", 32), ("p1", "I think 1/2", "stop", 8)]
    samples = [{"benchmark": "toy", "problem_id": pid, "sample_idx": i, "prompt": "q", "output": o,
                "finish_reason": fr, "num_tokens": nt, "model": "m", "gen_config": {"n": 3}}
               for i, (pid, o, fr, nt) in enumerate(outs)]
    _write_jsonl(tmp_path / "data.jsonl", data)
    _write_jsonl(tmp_path / "samples.jsonl", samples)
    return tmp_path


def test_verify_file(files):
    out = files / "sub" / "verified.jsonl"
    summary = V.verify_file(files / "samples.jsonl", files / "data.jsonl", out, max_new_tokens=64, workers=0,
                            progress=False)
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["correct"] for r in rows] == [True, False, False, True, False]
    assert [r["grade_status"] for r in rows] == ["ok", "ok", "truncated", "ok", "no_answer"]
    assert rows[0]["reward_max"] == pytest.approx(max_reward(True, 10, 64)) == pytest.approx(1 - 0.5 * 10 / 64)
    assert [r["reward_pass"] for r in rows] == [1.0, 0.0, 0.0, 1.0, 0.0]
    assert all(r["grader_version"] == GRADER_VERSION and r["verifier"] == "math-verify" for r in rows)
    assert rows[3]["extracted"] == "0.5" and rows[3]["gen_config"] == {"n": 3}  # sample fields kept
    assert summary["samples"] == 5 and summary["correct"] == 2
    assert (summary["ok"], summary["truncated"], summary["no_answer"], summary["timeout"]) == (3, 1, 1, 0)
    assert list(out.parent.iterdir()) == [out]  # atomic: no temp files left

    # the fallback changes only the no-box sample; the CLI writes the same file format
    out2 = files / "verified2.jsonl"
    assert V.main(["--samples", str(files / "samples.jsonl"), "--data", str(files / "data.jsonl"), "--out",
                   str(out2), "--max-new-tokens", "64", "--fallback", "last_number", "--workers", "0"]) == 0
    rows2 = [json.loads(x) for x in out2.read_text().splitlines()]
    assert [r["correct"] for r in rows2] == [True, False, False, True, True]


def test_verify_file_errors(files):
    s = files / "samples.jsonl"
    rows = [json.loads(x) for x in s.read_text().splitlines()]
    rows[1]["problem_id"] = "nope"
    bad = files / "bad.jsonl"
    _write_jsonl(bad, rows)
    with pytest.raises(ValueError, match="nope"):
        V.verify_file(bad, files / "data.jsonl", files / "o.jsonl", max_new_tokens=64, workers=0)
    rows[1]["problem_id"], rows[1]["output"] = "p0", None
    _write_jsonl(bad, rows)
    with pytest.raises(ValueError, match="row 1 output"):
        V.verify_file(bad, files / "data.jsonl", files / "o.jsonl", max_new_tokens=64, workers=0)
    with pytest.raises(ValueError, match="max_new_tokens"):
        V.verify_file(s, files / "data.jsonl", files / "o.jsonl", max_new_tokens=0)
    with pytest.raises(ValueError, match="verifier"):
        V.verify_file(s, files / "data.jsonl", files / "o.jsonl", max_new_tokens=8, verifier="llm")
    with pytest.raises(ValueError, match="xverify_model"):
        V.verify_file(s, files / "data.jsonl", files / "o.jsonl", max_new_tokens=8, verifier="xverify")
    with pytest.raises(ValueError, match="config.json"):
        V.verify_file(s, files / "data.jsonl", files / "o.jsonl", max_new_tokens=8, verifier="xverify",
                      xverify_model=files)
    (files / "nodata.jsonl").write_text(json.dumps({"id": "p0", "question": "q"}) + "\n")
    with pytest.raises(ValueError, match="answer"):
        V.verify_file(s, files / "nodata.jsonl", files / "o.jsonl", max_new_tokens=8)
    assert not (files / "o.jsonl").exists()




def test_check_argv_says_what_is_wrong_in_one_line():
    base = ["--samples", "S", "--data", "D", "--out", "O", "--max-new-tokens", "8"]
    V.check_argv(base + ["--fallback", "last_number", "--timeout", "5.0", "--workers", "0"])
    V.check_argv(base + ["--verifier", "xverify", "--xverify-model", "J"])  # the folder is checked when it runs
    for extra, what in [(["--fallback", "first_number"], "first_number"), (["--timeout", "0"], "timeout"),
                        (["--workers", "-1"], "workers"), (["--verifier", "xverify"], "xverify_model"),
                        (["--timeot", "5"], "--timeot")]:
        with pytest.raises(ValueError, match=what) as err:
            V.check_argv(base + extra)
        assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="max_new_tokens"):
        V.check_argv(["--samples", "S", "--data", "D", "--out", "O", "--max-new-tokens", "0"])
