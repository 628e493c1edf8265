"""Training rollouts stop where evaluation stops, and one sampled text gets the same verdict from both (CPU).

The sampled token ids are what a base model writes after the Qwen-style CoT prompt: an answer, the chat turn-end
token, then an invented next turn with another boxed answer (nothing stops it when no stop token is set).
Training: OpenRLHF's real ``SamplesGenerator._dispatch_prompts_to_vllm`` builds the sampling params our trainer
installs and hands them to an engine handle that records them (vLLM is not installed on CPU; ``SamplingParams`` is
a keyword-recording stand-in); the engine's stop rule (vLLM: generation ends at the first id of ``stop_token_ids``,
which is kept in ``token_ids``) cuts the ids; the query is decoded as OpenRLHF's ``SingleTurnAgentExecutor`` decodes
it and graded by reward_func.py through that executor. Evaluation: ``rspo_core.sampler.split_at_stop`` with
``rspo_core.sampler.stop_token_ids`` and ``rspo_core.grading.grade`` with the same fallback.
"""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest

pytest.importorskip("openrlhf", reason="openrlhf is not installed: `pip install --no-deps openrlhf==0.11.2` to run "
                    "the OpenRLHF plugin tier")

import openrlhf.trainer.ppo_utils.samples_generator as samples_generator  # noqa: E402

from rspo_core import grading as verify  # noqa: E402
from rspo_core.sampler import split_at_stop, stop_token_ids  # noqa: E402
from rspo_core.prompts import format_prompt  # noqa: E402
from rspo_patch.openrlhf import launch  # noqa: E402

QUESTION = "What is 2+2?"
GOLD = "4"
# what the model writes: its answer, the turn end, then an invented next turn (a wrong answer in it)
CONTINUATIONS = {
    "boxed": ("2+2 = 4, so the answer is \\boxed{4}.", "<|im_end|>",
              "\n<|im_start|>user\nAnd 2+3?<|im_end|>\n<|im_start|>assistant\nThat is \\boxed{5}."),
    "unboxed": ("2+2 is 4", "<|im_end|>", "\n<|im_start|>user\nAnd 3+3?<|im_end|>\n<|im_start|>assistant\n6"),
}


class RecordingSamplingParams:
    """Stand-in for vllm.SamplingParams (not installed on CPU): keeps the keywords it was built with."""

    def __init__(self, **kwargs):
        self.kwargs = kwargs


class RecordingEngine:
    """An engine handle as ``_dispatch_prompts_to_vllm`` uses it (``.remote`` calls), recording the request."""

    def __init__(self):
        self.requests = []
        self.get_num_unfinished_requests = SimpleNamespace(remote=lambda: 0)
        self.generate_responses = SimpleNamespace(remote=lambda **kw: self.requests.append(kw))


@pytest.fixture
def qwen_like(tmp_path):
    """A real HF tokenizer folder with Qwen's special tokens and a generation_config.json whose EOS is
    <|endoftext|> (as Qwen2.5-Math's base model): neither its EOS nor vLLM's default stops at <|im_end|>."""
    from transformers import GenerationConfig

    from rspo_patch.charlm import build_char_tokenizer

    text = format_prompt(QUESTION, "qwen_math_cot") + "".join("".join(parts) for parts in CONTINUATIONS.values())
    for special in ("<|im_start|>", "<|im_end|>", "<|endoftext|>"):
        text = text.replace(special, "")
    tok = build_char_tokenizer("".join(sorted(set(text))))  # one token per character of this test's texts
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>", "<|endoftext|>"]})
    tok.save_pretrained(tmp_path)
    GenerationConfig(eos_token_id=tok.convert_tokens_to_ids("<|endoftext|>")).save_pretrained(tmp_path)
    return tmp_path, tok


def _training_params(parse_flags, model_dir, tok, monkeypatch, install=True):
    """The SamplingParams OpenRLHF's own dispatch code builds in the trainer actor's process."""
    from rspo_patch.openrlhf import trainer

    monkeypatch.setattr(samples_generator, "SamplingParams", RecordingSamplingParams)
    monkeypatch.setattr(samples_generator.ray, "get", lambda refs: refs)  # the engine handle answers in-process
    if install:  # what RSPOPPOTrainerActor.__init__ does
        trainer.install_stop_tokens(trainer.training_stop_token_ids(str(model_dir), tok))
    args = parse_flags("--algo.advantage.estimator", "rspo_pass", "--rspo.k", "2", "--rollout.n_samples_per_prompt",
                       "4", "--actor.model_name_or_path", str(model_dir))
    generator = object.__new__(samples_generator.SamplesGenerator)
    generator.args, generator.vllm_engines, generator.tokenizer = args, [RecordingEngine()], tok
    generator._dispatch_prompts_to_vllm([format_prompt(QUESTION, "qwen_math_cot")], [GOLD], temperature=1.0,
                                        top_p=1.0, max_new_tokens=64, max_len=512)
    (request,) = generator.vllm_engines[0].requests
    return request["sampling_params"].kwargs


def _engine_output(ids, stop_ids):
    """vLLM's stop rule: the output ends at (and keeps) the first id in stop_token_ids."""
    for j, t in enumerate(ids):
        if t in stop_ids:
            return ids[:j + 1]
    return ids


def _training_verdict(tok, response_ids, fallback, monkeypatch):
    from openrlhf.utils.agent import SingleTurnAgentExecutor

    for key in ("RSPO_REWARD", "RSPO_MAX_NEW_TOKENS", "RSPO_TOKENIZER"):
        monkeypatch.delenv(key, raising=False)
    if fallback:
        monkeypatch.setenv("RSPO_GRADE_FALLBACK", fallback)
    else:
        monkeypatch.delenv("RSPO_GRADE_FALLBACK", raising=False)
    prompt = format_prompt(QUESTION, "qwen_math_cot")
    prompt_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    query = tok.decode(prompt_ids + response_ids, skip_special_tokens=False)  # as SingleTurnAgentExecutor
    executor = SingleTurnAgentExecutor(remote_rm_url=[str(launch.REWARD_FUNC_FILE)])
    (info,) = asyncio.run(executor._fetch_rewards_via_func([query], [prompt], [GOLD]))
    return bool(info["extra_logs"]["rspo_correct"].item())


@pytest.mark.parametrize("sample, fallback", [("boxed", None), ("unboxed", "last_number")])
def test_one_sampled_text_same_verdict_in_training_and_evaluation(parse_flags, qwen_like, monkeypatch, sample,
                                                                  fallback):
    model_dir, tok = qwen_like
    sampled = tok("".join(CONTINUATIONS[sample]), add_special_tokens=False)["input_ids"]

    # evaluation (analysis.generate + analysis.verify)
    from transformers import GenerationConfig

    eval_stop = stop_token_ids(tok, GenerationConfig.from_pretrained(model_dir).eos_token_id)
    kept, reason, _ = split_at_stop(sampled, set(eval_stop))
    eval_verdict = verify.grade(tok.decode(kept, skip_special_tokens=True), GOLD, fallback=fallback,
                                finish_reason=reason)
    assert eval_verdict is True

    # training: OpenRLHF's dispatch with our sampling params, the engine's stop rule, reward_func
    params = _training_params(parse_flags, model_dir, tok, monkeypatch)
    assert params["stop_token_ids"] == eval_stop and tok.convert_tokens_to_ids("<|im_end|>") in eval_stop
    assert params["max_tokens"] == 64 and params["temperature"] == 1.0  # OpenRLHF's own settings kept
    response = _engine_output(sampled, set(params["stop_token_ids"]))
    assert _training_verdict(tok, response, fallback, monkeypatch) == eval_verdict

    # control: OpenRLHF's params as shipped set no stop token; the invented turn's answer is graded instead
    stock = _training_params(parse_flags, model_dir, tok, monkeypatch, install=False)
    assert "stop_token_ids" not in stock
    assert _training_verdict(tok, _engine_output(sampled, set()), fallback, monkeypatch) != eval_verdict


def test_install_is_idempotent_and_keeps_callers_stop_ids(monkeypatch):
    from rspo_patch.openrlhf import trainer

    monkeypatch.setattr(samples_generator, "SamplingParams", RecordingSamplingParams)
    trainer.install_stop_tokens([5, 3])
    trainer.install_stop_tokens([3, 7])
    params = samples_generator.SamplingParams(temperature=0.5, stop_token_ids=[9])
    assert params.kwargs == {"temperature": 0.5, "stop_token_ids": [3, 7, 9]}
    assert json.dumps(params.kwargs)  # plain ints


def test_async_path_installs_stop_tokens_when_a_generator_is_built(parse_flags, qwen_like, monkeypatch):
    """--train.async_enable builds SamplesGenerator inside OpenRLHF's rollout actor: the worker hook wraps its
    __init__ (sampling.patch_samples_generator_class), so the real constructor installs the same stop ids."""
    from transformers import GenerationConfig

    from rspo_patch.openrlhf.sampling import patch_samples_generator_class

    model_dir, tok = qwen_like
    monkeypatch.setattr(samples_generator, "SamplingParams", RecordingSamplingParams)
    monkeypatch.setattr(samples_generator.SamplesGenerator, "__init__", samples_generator.SamplesGenerator.__init__)
    patch_samples_generator_class(samples_generator.SamplesGenerator)
    patch_samples_generator_class(samples_generator.SamplesGenerator)  # idempotent
    args = parse_flags("--algo.advantage.estimator", "rspo_pass", "--rspo.k", "2", "--rollout.n_samples_per_prompt",
                       "4", "--actor.model_name_or_path", str(model_dir))
    samples_generator.SamplesGenerator(SimpleNamespace(args=args), None, None, tok, [])
    params = samples_generator.SamplingParams(temperature=1.0)
    assert params.kwargs["stop_token_ids"] == stop_token_ids(tok, GenerationConfig.from_pretrained(model_dir)
                                                             .eos_token_id)
