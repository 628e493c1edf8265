"""analysis.generate on a tiny random Llama with a real char-level HF tokenizer (CPU, no downloads)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import pytest
import torch

from analysis import generate as G
from rspo_core import sampler as S
from rspo_core.prompts import format_prompt

KEYS = {"benchmark", "problem_id", "sample_idx", "prompt", "output", "finish_reason", "num_tokens", "model",
        "gen_config"}
QUESTIONS = ["1+2", "30+4", "5+600", "7000+8", "90+100000"]
SMALL = dict(benchmark="toy", temperature=0.8, top_p=0.95, max_new_tokens=10, template="plain", seed=3)


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def by_key(rows: list[dict]) -> dict[tuple[str, int], dict]:
    return {(r["problem_id"], r["sample_idx"]): r for r in rows}


# ------------------------------------------------------------------------------------------------- pure helpers


def test_problem_seed_is_sha256_of_base_seed_and_id():
    expected = int.from_bytes(hashlib.sha256(b"7:aime24-3").digest()[:8], "big") >> 1
    assert S.problem_seed(7, "aime24-3") == expected
    seeds = {S.problem_seed(s, f"p{i}") for s in range(3) for i in range(50)}
    assert len(seeds) == 150 and all(0 <= s < 2**63 for s in seeds)
    assert S.sample_seed(2**63 - 1, 1) == 0  # wraps like an unsigned 63-bit counter


def test_split_at_stop():
    assert S.split_at_stop([5, 6, 2, 7, 2], {2}) == ([5, 6], "stop", 3)
    assert S.split_at_stop([5, 6, 7], {2, 9}) == ([5, 6, 7], "length", 3)
    assert S.split_at_stop([9], {2, 9}) == ([], "stop", 1)


def test_inverse_cdf_choice_matches_softmax_of_processed_scores():
    """Empirical token frequencies over 40k independent rows match softmax(scores), and -inf tokens never occur."""
    torch.manual_seed(0)
    scores = torch.tensor([[1.0, 0.0, -1.0, 2.0, float("-inf")]]).repeat(40_000, 1)
    uniforms = torch.rand(40_000, dtype=torch.float64)
    chosen = S.inverse_cdf_choice(scores, uniforms)
    assert chosen.shape == (40_000,) and chosen.dtype == torch.long
    freq = torch.bincount(chosen, minlength=5).double() / 40_000
    expected = torch.softmax(scores[0].double(), 0)
    assert freq[4] == 0
    assert torch.allclose(freq, expected, atol=0.01), (freq, expected)


def test_resolve_template_and_stop_ids(tiny_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    assert G.resolve_template("auto", tok) == "qwen_math_cot"
    tok.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    assert G.resolve_template("auto", tok) == "chat"
    assert G.resolve_template("plain", tok) == "plain"
    assert S.stop_token_ids(tok, [2, 3]) == [2, 3]


@pytest.mark.parametrize("kwargs, bad", [
    (dict(n=0), "n=0"),
    (dict(top_p=0.0), "top_p=0.0"),
    (dict(top_p=1.5), "top_p=1.5"),
    (dict(temperature=-0.1), "temperature=-0.1"),
    (dict(max_new_tokens=0), "max_new_tokens=0"),
    (dict(template="alpaca"), "template='alpaca'"),
    (dict(backend="tgi"), "backend='tgi'"),
    (dict(batch_size=0), "batch_size=0"),
])
def test_bad_arguments_raise_before_loading(tmp_path, problems, kwargs, bad):
    args = {**SMALL, "n": 2, **kwargs}
    with pytest.raises(ValueError, match=bad.replace("(", r"\(")):
        G.generate(tmp_path / "no_model_here", problems, tmp_path / "out.jsonl", **args)


def test_bad_paths_and_data_raise(tmp_path, tiny_model, problems):
    with pytest.raises(ValueError, match="model="):
        G.generate(tmp_path / "missing", problems, tmp_path / "o.jsonl", n=1, **SMALL)
    with pytest.raises(ValueError, match="data="):
        G.generate(tiny_model, tmp_path / "missing.jsonl", tmp_path / "o.jsonl", n=1, **SMALL)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(ValueError, match="no rows"):
        G.generate(tiny_model, empty, tmp_path / "o.jsonl", n=1, **SMALL)
    dup = tmp_path / "dup.jsonl"
    dup.write_text('{"id": "a", "question": "1+1", "answer": "2"}\n' * 2)
    with pytest.raises(ValueError, match="'a' occurs more than once"):
        G.generate(tiny_model, dup, tmp_path / "o.jsonl", n=1, **SMALL)
    assert not (tmp_path / "o.jsonl").exists()


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed here")
def test_vllm_backend_missing_gives_install_hint(tmp_path, tiny_model, problems):
    with pytest.raises(ImportError, match="pip install vllm"):
        G.generate(tiny_model, problems, tmp_path / "o.jsonl", n=1, **{**SMALL, "backend": "vllm"})


# ------------------------------------------------------------------------------------------------- hf backend


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_model):
    """5 problems x n=4, batch_size 3 (batches straddle problems; prompts of 4-8 characters, so rows are
    left-padded differently in different batches): the run the other tests compare against."""
    d = tmp_path_factory.mktemp("ref")
    data = d / "data.jsonl"
    data.write_text("".join(json.dumps({"id": f"p{i}", "question": QUESTIONS[i], "answer": str(sum(map(int, QUESTIONS[i].split("+")))),
                                        "meta": {}}) + "\n" for i in range(5)))
    out = d / "samples.jsonl"
    count = G.generate(tiny_model, data, out, n=4, batch_size=3, **SMALL)
    return data, out, count


def test_rows_schema_and_counts(reference, tiny_model):
    data, out, count = reference
    rows = read(out)
    assert count == len(rows) == 20
    for r in rows:
        assert set(r) == KEYS
        assert r["benchmark"] == "toy" and r["model"] == str(tiny_model)
        assert r["prompt"] == format_prompt(QUESTIONS[int(r["problem_id"][1:])], "plain")
        assert r["finish_reason"] in ("stop", "length")
        assert 1 <= r["num_tokens"] <= 10
        if r["finish_reason"] == "length":
            assert r["num_tokens"] == 10
        assert r["gen_config"] == {"backend": "hf", "n": 4, "temperature": 0.8, "top_p": 0.95, "max_new_tokens": 10,
                                   "template": "plain", "seed": 3}
    per_problem = {}
    for r in rows:
        per_problem.setdefault(r["problem_id"], []).append(r["sample_idx"])
    assert per_problem == {f"p{i}": [0, 1, 2, 3] for i in range(5)}
    assert {r["finish_reason"] for r in rows} == {"stop", "length"}  # this seed exercises both
    assert len({r["output"] for r in rows}) > 10  # samples differ


def test_same_seed_same_samples_independent_of_batching(reference, tiny_model, tmp_path):
    data, out, _ = reference
    ref = by_key(read(out))
    # a different batch size, and a subset of problems (different batch composition), give identical samples
    G.generate(tiny_model, data, tmp_path / "b64.jsonl", n=4, batch_size=64, **SMALL)
    G.generate(tiny_model, data, tmp_path / "sub.jsonl", n=4, batch_size=1, limit=2, **SMALL)
    for path in (tmp_path / "b64.jsonl", tmp_path / "sub.jsonl"):
        got = by_key(read(path))
        assert {k: (r["output"], r["num_tokens"], r["finish_reason"]) for k, r in got.items()} == {
            k: (ref[k]["output"], ref[k]["num_tokens"], ref[k]["finish_reason"]) for k in got}
    # another base seed gives other samples
    G.generate(tiny_model, data, tmp_path / "s4.jsonl", n=4, batch_size=64, **{**SMALL, "seed": 4})
    other = by_key(read(tmp_path / "s4.jsonl"))
    assert sum(other[k]["output"] != ref[k]["output"] for k in ref) > 10


def test_greedy_samples_are_identical(reference, tiny_model, tmp_path):
    data, _, _ = reference
    G.generate(tiny_model, data, tmp_path / "g.jsonl", n=3, limit=2, **{**SMALL, "temperature": 0.0})
    rows = read(tmp_path / "g.jsonl")
    for pid in ("p0", "p1"):
        assert len({r["output"] for r in rows if r["problem_id"] == pid}) == 1


def test_partial_file_is_repaired_after_a_kill(reference, tmp_path, caplog):
    """A kill can leave half a line and an incomplete problem in the partial file: both are dropped, complete problems
    are kept; a row with another gen_config is refused instead of mixing two configurations."""
    _, out, _ = reference
    lines = out.read_text(encoding="utf-8").splitlines(keepends=True)
    gen_config = json.loads(lines[0])["gen_config"]
    # problems p0, p1 complete; p2 has 2 of its 4 lines; the kill cut the 3rd line in half
    killed = tmp_path / "samples.jsonl.partial"
    killed.write_text("".join(lines[:10]) + lines[10][: len(lines[10]) // 2], encoding="utf-8")
    assert G.load_done(killed, 4, gen_config) == {"p0": 4, "p1": 4}
    assert killed.read_text(encoding="utf-8") == "".join(lines[:8])
    assert "dropping" in caplog.text
    with pytest.raises(ValueError, match="gen_config"):
        G.load_done(killed, 4, {**gen_config, "temperature": 1.0})


def test_out_appears_only_complete_and_a_rerun_regenerates_it(reference, tiny_model, tmp_path):
    data, out, _ = reference
    again = tmp_path / "again.jsonl"
    assert G.generate(tiny_model, data, again, n=4, batch_size=64, **SMALL) == 20
    assert again.read_bytes() == out.read_bytes()  # any batch size: byte-identical
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again.jsonl"]  # no partial file or inputs record left
    assert G.generate(tiny_model, data, again, n=4, batch_size=64, **SMALL) == 20
    assert again.read_bytes() == out.read_bytes()


def test_cli_auto_template(tiny_model, problems, tmp_path):
    out = tmp_path / "cli.jsonl"
    rc = G.main(["--model", str(tiny_model), "--data", str(problems), "--out", str(out), "--benchmark", "toy",
                 "--n", "2", "--max-new-tokens", "4", "--template", "auto", "--limit", "2", "--seed", "1"])
    rows = read(out)
    assert rc == 0 and len(rows) == 4
    assert rows[0]["gen_config"]["template"] == "qwen_math_cot"  # the char tokenizer has no chat template
    assert rows[0]["prompt"] == format_prompt("0+1", "qwen_math_cot")


def test_check_argv_names_the_bad_flag_without_reading_paths():
    base = ["--model", "M", "--data", "D", "--out", "O", "--benchmark", "b"]
    G.check_argv(base + ["--n", "4", "--partial", "P"])
    with pytest.raises(ValueError, match="temperature=-1.0"):
        G.check_argv(base + ["--temperature", "-1"])
    with pytest.raises(ValueError, match="unrecognized arguments: --nn"):
        G.check_argv(base + ["--nn", "4"])
