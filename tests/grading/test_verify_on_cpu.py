"""analysis.verify: grading table, extraction, robustness (timeouts, pathological inputs), files, xVerify helpers."""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from cases import CASES  # noqa: E402

from analysis import verify as V  # noqa: E402
from rspo_core.rewards import max_reward  # noqa: E402


# ---------------------------------------------------------------------------------------------------------------------
# the table


def test_table_is_big_enough():
    assert len(CASES) >= 40
    assert sum(c[4] for c in CASES) >= 10 and sum(not c[4] for c in CASES) >= 10  # both verdicts well represented


@pytest.mark.parametrize("output,gold,fallback,finish_reason,expected,note", CASES, ids=[c[5] for c in CASES])
def test_grade_table(output, gold, fallback, finish_reason, expected, note):
    res = V.grade_result(output, gold, fallback=fallback, finish_reason=finish_reason)
    assert res.correct is expected, f"{note}: {output!r} vs {gold!r} -> {res}"
    assert V.grade(output, gold, fallback=fallback, finish_reason=finish_reason) is expected
    if finish_reason == "length":
        assert res.status == "truncated"
    elif res.extracted is None:
        assert res.status == "no_answer"
    else:
        assert res.status == "ok"


def test_grade_many_pool_agrees_with_in_process():
    """The process pool and the in-process path give the same verdicts on the table (rows without a fallback)."""
    rows = [c for c in CASES if c[2] is None]
    outs, golds, frs = [c[0] for c in rows], [c[1] for c in rows], [c[3] for c in rows]
    pool = V.grade_many(outs, golds, finish_reasons=frs, workers=2)
    local = V.grade_many(outs, golds, finish_reasons=frs, workers=0)
    assert pool == local
    assert [r.correct for r in pool] == [c[4] for c in rows]


def test_fast_path_never_disagrees_with_math_verify():
    """Random plain-number pairs: wherever the fast path decides, math-verify (called directly) agrees."""
    parse, verify, cfg = V._mv()
    rng = random.Random(0)
    pool = ["0", "-0", "7", "007", "-7", "27", "27.0", "27.00", "0.5", ".5", "0.50", "1e3", "1000", "1000.0", "999",
            "123456789012345678", "123456789012345679", "4.5e-4", "0.00045", "-3", "3", "+3", "10", "10.000001"]
    pairs = [(a, b) for a in pool for b in pool]
    decided = 0
    for a, b in rng.sample(pairs, 120):
        fast = V._fast_compare(a, b)
        if fast is None:
            continue
        decided += 1
        ref = verify(parse(f"${V._sci_to_latex(b)}$", extraction_config=cfg),
                     parse(f"\\boxed{{{V._sci_to_latex(a)}}}", extraction_config=cfg), float_rounding=6, strict=True)
        assert fast == ref, (a, b)
    assert decided >= 30


# ---------------------------------------------------------------------------------------------------------------------
# extraction


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
    assert V.extract_answer(text) == expected


@pytest.mark.parametrize("text,expected", [
    ("x = -3.", "-3"), ("5-3=2", "2"), ("1,234 apples", "1234"), ("3/4", "3/4"), ("pi is 3.14", "3.14"),
    ("\\frac{1}{2} it is", "\\frac{1}{2}"), ("none", None), ("(2)-1", "1"),
])
def test_extract_last_number(text, expected):
    assert V.extract_answer(text, "last_number") == expected


def test_boxed_beats_fallback_and_bad_arguments():
    assert V.extract_answer("\\boxed{3} and 7", "last_number") == "3"
    with pytest.raises(ValueError, match="fallback"):
        V.extract_answer("1", "first_number")
    with pytest.raises(ValueError, match="str"):
        V.extract_answer(None)
    with pytest.raises(ValueError, match="gold"):
        V.grade("\\boxed{1}", 1)
    with pytest.raises(ValueError, match="differ in length"):
        V.grade_many(["a"], ["1", "2"])
    with pytest.raises(ValueError, match="timeout"):
        V.grade_many(["a"], ["1"], timeout=0)
    with pytest.raises(ValueError, match="workers"):
        V.grade_many(["a"], ["1"], workers=-1)


def test_extraction_is_linear_on_huge_inputs():
    t = time.perf_counter()
    assert V.extract_answer("x" * 2_000_000 + "\\boxed{1}") == "1"
    assert V.extract_answer("\\boxed{" * 50_000 + "1") is None  # no box ever closes
    assert V.extract_answer("{" * 50_000, "last_number") is None
    assert time.perf_counter() - t < 5


# ---------------------------------------------------------------------------------------------------------------------
# robustness: pathological inputs never hang the run


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
    res = V.grade_many(outs, golds, fallback="last_number", timeout=1.0, workers=2)
    elapsed = time.perf_counter() - t
    assert [r.correct for r in res[:-1]] == [False] * (len(outs) - 1)
    assert res[-1] == V.GradeResult("5", True, "ok")  # the pool survived the bad items
    assert {r.status for r in res} <= set(V.STATUSES)
    assert sum(r.status == "timeout" for r in res) >= 3
    # each item: at most timeout + grace (2 s) on one of 2 workers, plus pool start-up
    assert elapsed < 30, elapsed


def test_hard_kill_when_the_alarm_cannot_fire():
    """With the in-worker alarm off (as for code that ignores signals) the parent kills and replaces the worker."""
    jobs = [("\\frac{" * 3000 + "}" * 3000, "5"), ("\\frac12", "0.5")]
    t = time.perf_counter()
    res = V._run_pool(jobs, timeout=0.5, workers=1, mem_limit_mb=4096, progress=False, soft_timeout=False)
    assert res == [(False, "timeout"), (True, "ok")]
    assert time.perf_counter() - t < 15


def test_memory_cap_fails_fast_instead_of_exhausting_memory():
    """2^400000000 needs a 50 MB integer: with 10 MB of headroom sympy's allocation fails at once (math-verify turns
    the MemoryError into a plain "not equal"), instead of computing for seconds; the worker keeps serving."""
    res = V.grade_many(["\\boxed{2^{400000000}}", "\\boxed{\\frac{2}{8}}"], ["5", "0.25"], workers=1,
                       mem_limit_mb=10, timeout=3.0)
    assert res[0].correct is False and res[0].status in ("ok", "error")
    assert res[1] == V.GradeResult("\\frac{2}{8}", True, "ok")


def test_in_process_soft_timeout():
    import signal

    def outer(signum, frame):  # a caller's own alarm (pytest-timeout uses one too)
        raise AssertionError("the caller's alarm fired too early")

    before = signal.signal(signal.SIGALRM, outer)
    signal.setitimer(signal.ITIMER_REAL, 60.0)
    try:
        r = V.grade_result("\\boxed{" + "1+" * 200_000 + "1}", "5", timeout=0.5, isolate=False)
        assert r.status == "timeout" and not r.correct
        assert signal.getsignal(signal.SIGALRM) is outer  # handler restored
        assert 30.0 < signal.getitimer(signal.ITIMER_REAL)[0] < 60.0  # re-armed for the time it had left
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, before)


def test_threads_grade_in_isolated_workers():
    """Signals cannot be used outside the main thread: there pairs go to the shared worker processes, which still
    enforce the timeout (OpenRLHF calls the reward function from worker threads)."""
    bad = "\\boxed{" + "\\frac{1}{" * 3000 + "2" + "}" * 3000 + "}"
    items = [("\\boxed{\\frac{2}{4}}", "0.5"), (bad, "5"), ("\\boxed{x=3}", "3"), ("\\boxed{7}", "7")]
    out = [None] * len(items)

    def run(i):
        out[i] = V.grade_result(*items[i], timeout=1.0)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(items))]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert [(r.correct, r.status) for r in out] == [(True, "ok"), (False, "timeout"), (True, "ok"), (True, "ok")]
    assert time.perf_counter() - t < 30


# ---------------------------------------------------------------------------------------------------------------------
# files


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
    assert all(r["grader_version"] == V.GRADER_VERSION and r["verifier"] == "math-verify" for r in rows)
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


# ---------------------------------------------------------------------------------------------------------------------
# xVerify helpers (the vLLM call itself needs a GPU and the weights)


def test_judge_prompt():
    p = V.build_judge_prompt("What is 1+1?", "reasoning... so \\boxed{2}", "2")
    assert p.startswith(V.JUDGE_INSTRUCTION)
    assert "Question: What is 1+1?" in p and "Output sentence: reasoning... so \\boxed{2}" in p
    assert "Correct answer: 2" in p and p.endswith("Judgement:")
    long = V.build_judge_prompt("q", "x" * 100 + "FINAL", "a", max_output_chars=10)
    assert "[...] xxxxxFINAL" in long and "x" * 11 not in long
    with pytest.raises(ValueError):
        V.build_judge_prompt("q", None, "a")


@pytest.mark.parametrize("reply,label", [
    ("Correct", "Correct"), ("Incorrect", "Incorrect"), (" correct.\n", "Correct"), ("**Incorrect**", "Incorrect"),
    ("'Correct'", "Correct"), ("The answer is correct", "invalid"), ("Correct Incorrect", "invalid"), ("", "invalid"),
    ("Yes", "invalid"), ("incorrect!", "Incorrect"),
])
def test_judge_label(reply, label):
    assert V.parse_judge_label(reply) == label


def test_render_and_fit_with_a_real_tokenizer():
    """A real transformers tokenizer with a chat template (built in memory: no hub access here)."""
    tokenizers = pytest.importorskip("tokenizers")
    transformers = pytest.importorskip("transformers")
    vocab = {"[UNK]": 0, "<|im_start|>": 1, "<|im_end|>": 2, "x": 3}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", chat_template=template)
    text = V.render_chat(fast, V.build_judge_prompt("q?", "out", "ans"))
    assert text.startswith("<|im_start|>user\n" + V.JUDGE_INSTRUCTION) and text.endswith("<|im_start|>assistant\n")
    # a long output is cut from the front until the prompt fits; the final answer at the end survives
    long_out = " ".join(["x"] * 5000) + " so the answer is \\boxed{7}"
    short = V.fit_judge_prompt(fast, "q?", long_out, "7", max_prompt_tokens=1000)
    assert len(fast.encode(short, add_special_tokens=False)) <= 1000 and "\\boxed{7}" in short
    assert V.fit_judge_prompt(fast, "q?", "tiny", "7", max_prompt_tokens=1000) == V.render_chat(
        fast, V.build_judge_prompt("q?", "tiny", "7"))
    fast.chat_template = None
    with pytest.raises(ValueError, match="chat_template"):
        V.render_chat(fast, "x")


def test_xverify_judge_needs_a_local_folder_and_vllm(tmp_path):
    with pytest.raises(ValueError, match="local model folder"):
        V.XVerifyJudge(tmp_path / "missing")
    (tmp_path / "config.json").write_text("{}")
    try:
        import vllm  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="vLLM"):
            V.XVerifyJudge(tmp_path)
    else:
        pytest.skip("vLLM is installed: loading a model needs real xVerify weights")


def test_grader_version_is_documented():
    assert isinstance(V.GRADER_VERSION, str) and f"\n{V.GRADER_VERSION}  " in V.__doc__
