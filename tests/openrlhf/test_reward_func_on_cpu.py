"""reward_func.py loaded and called the way OpenRLHF 0.11.2 does it (SingleTurnAgentExecutor, CPU)."""

from __future__ import annotations

import asyncio
import math

import pytest
import torch

pytest.importorskip("openrlhf", reason="openrlhf is not installed: `pip install --no-deps openrlhf==0.11.2` to run "
                    "the OpenRLHF plugin tier")

from rspo_patch.openrlhf import launch

REWARD_FILE = str(launch.REWARD_FUNC_FILE)
PROMPT = "<|im_start|>user\nWhat is 6*7? Put the answer in \\boxed{}.<|im_end|>\n<|im_start|>assistant\n"
RIGHT = "6*7 = 42, so the answer is \\boxed{42}."
WRONG = "I think it is \\boxed{41}."


def _executor(monkeypatch, **env):
    from openrlhf.utils.agent import SingleTurnAgentExecutor

    for key in ("RSPO_REWARD", "RSPO_MAX_NEW_TOKENS", "RSPO_TOKENIZER", "RSPO_GRADE_FALLBACK", "RSPO_GRADE_TIMEOUT"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return SingleTurnAgentExecutor(remote_rm_url=[REWARD_FILE])  # loads the file with spec_from_file_location


def _call(executor, response, label, prompt=PROMPT):
    query = prompt + response + "<|im_end|>"
    (info,) = asyncio.run(executor._fetch_rewards_via_func([query], [prompt], [label]))
    # what SamplesGenerator does with the values: torch.tensor([value])
    return {"reward": torch.tensor([info["rewards"]]).item(), "score": torch.tensor([info["scores"]]).item(),
            **{key: torch.tensor([value]).item() for key, value in info["extra_logs"].items()}}


def test_pass_reward(monkeypatch):
    executor = _executor(monkeypatch)
    right = _call(executor, RIGHT, "42")
    assert (right["reward"], right["score"], right["rspo_correct"], right["rspo_grade_error"]) == (1.0, 1.0, 1.0, 0.0)
    wrong = _call(executor, WRONG, "42")
    assert (wrong["reward"], wrong["rspo_correct"], wrong["rspo_grade_error"]) == (0.0, 0.0, 0.0)
    # the prompt's own "\boxed{}" is not mistaken for the answer
    assert _call(executor, "no idea", "42")["reward"] == 0.0


def test_grading_failure_is_zero_and_counted(monkeypatch):
    executor = _executor(monkeypatch)
    result = _call(executor, RIGHT, None)  # no gold answer
    assert result["reward"] == 0.0 and result["rspo_grade_error"] == 1.0


def test_max_reward_with_character_proxy(monkeypatch):
    executor = _executor(monkeypatch, RSPO_REWARD="max", RSPO_MAX_NEW_TOKENS="100")
    right = _call(executor, RIGHT, "42")
    tokens = math.ceil(len(RIGHT) / 4)
    assert right["rspo_num_tokens"] == tokens and right["rspo_token_proxy"] == 1.0
    assert right["reward"] == pytest.approx(1 - 0.5 * tokens / 100)
    assert right["score"] == 1.0
    assert _call(executor, WRONG, "42")["reward"] == 0.0


def test_grader_block_reaches_the_reward_through_the_environment(monkeypatch):
    """The train rule exports the config's grader block as RSPO_GRADE_FALLBACK / RSPO_GRADE_TIMEOUT: the fallback
    decides a bare-number answer, as the verify rule does with --fallback (the launcher forwards both to Ray:
    test_launch_on_cpu.test_ray_init_kwargs)."""
    bare = "6*7 is 42"
    assert _call(_executor(monkeypatch), bare, "42")["reward"] == 0.0
    assert _call(_executor(monkeypatch, RSPO_GRADE_FALLBACK="none"), bare, "42")["reward"] == 0.0
    fb = _executor(monkeypatch, RSPO_GRADE_FALLBACK="last_number", RSPO_GRADE_TIMEOUT="2.5")
    assert _call(fb, bare, "42")["reward"] == 1.0
    with pytest.raises(ValueError, match="RSPO_GRADE_FALLBACK"):
        _executor(monkeypatch, RSPO_GRADE_FALLBACK="first_number")
    with pytest.raises(ValueError, match="RSPO_GRADE_TIMEOUT"):
        _executor(monkeypatch, RSPO_GRADE_TIMEOUT="0")


def test_max_reward_needs_max_new_tokens(monkeypatch):
    with pytest.raises(ValueError, match="RSPO_MAX_NEW_TOKENS"):
        _executor(monkeypatch, RSPO_REWARD="max")


def test_bad_reward_kind(monkeypatch):
    with pytest.raises(ValueError, match="RSPO_REWARD"):
        _executor(monkeypatch, RSPO_REWARD="maximum")


def test_extract_response():
    from rspo_patch.openrlhf.reward_func import extract_response

    assert extract_response(PROMPT + RIGHT + "<|im_end|><|endoftext|>", PROMPT) == RIGHT
    # decoded prompt differs from the prompt string at the start: fall back to the prompt's tail
    assert extract_response("X" + PROMPT[1:] + RIGHT, PROMPT) == RIGHT
    assert extract_response(RIGHT + "</s>", None) == RIGHT


def test_symbolic_answer_graded_from_reward_thread(monkeypatch):
    """A pair that needs math-verify, from OpenRLHF's worker thread (rspo_core.grading's isolated grading path)."""
    executor = _executor(monkeypatch)
    result = _call(executor, "So $x = \\boxed{\\frac{1}{2}}$.", "0.5")
    assert result["reward"] == 1.0 and result["rspo_grade_error"] == 0.0 and result["rspo_grade_timeout"] == 0.0


def test_max_reward_with_tokenizer(monkeypatch, tmp_path):
    from rspo_patch.charlm import build_char_tokenizer

    build_char_tokenizer().save_pretrained(tmp_path / "tok")
    executor = _executor(monkeypatch, RSPO_REWARD="max", RSPO_MAX_NEW_TOKENS="64", RSPO_TOKENIZER=str(tmp_path / "tok"))
    short = "\\boxed{42}"
    right = _call(executor, short, "42")
    assert right["rspo_token_proxy"] == 0.0
    tokens = right["rspo_num_tokens"]
    assert 0 < tokens <= len(short)
    assert right["reward"] == pytest.approx(1 - 0.5 * tokens / 64)
    # truncation is not guessed from a re-encoded count: the text's verdict stands here, and the engine's
    # finish_reason is applied by RSPOExperienceMaker.apply_engine_verdicts (test_experience_on_cpu.py)
    long = "x" * 80 + "\\boxed{42}"
    assert _call(executor, long, "42")["rspo_correct"] == 1.0


def test_concurrent_calls_from_reward_threads(monkeypatch, tmp_path):
    """OpenRLHF grades every response in its own thread (asyncio.to_thread): results must not mix up."""
    from concurrent.futures import ThreadPoolExecutor

    from rspo_patch.charlm import BASE_CHARS, build_char_tokenizer

    build_char_tokenizer(BASE_CHARS + "\\{}").save_pretrained(tmp_path / "tok")
    executor = _executor(monkeypatch, RSPO_REWARD="max", RSPO_MAX_NEW_TOKENS="64", RSPO_TOKENIZER=str(tmp_path / "tok"))
    jobs = [(f"\\boxed{{{i}}}" + " " * i, str(i if i % 3 else i + 1)) for i in range(24)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda job: executor.reward_func([PROMPT + job[0]], [PROMPT], [job[1]]), jobs))
    for (text, gold), result in zip(jobs, results):
        assert result["extra_logs"]["rspo_grade_error"].item() == 0.0
        assert result["extra_logs"]["rspo_num_tokens"].item() == len(text)  # one token per character
        expected = 1 - 0.5 * len(text) / 64 if text.startswith(f"\\boxed{{{gold}}}") else 0.0
        assert result["rewards"].item() == pytest.approx(expected)
