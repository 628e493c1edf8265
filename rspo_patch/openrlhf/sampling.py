"""Training rollouts stop where evaluation stops: stop tokens for OpenRLHF 0.11.2's vLLM sampling params.

OpenRLHF's ``SamplesGenerator._dispatch_prompts_to_vllm`` builds ``SamplingParams(temperature, top_p, top_k,
max_tokens, min_tokens, skip_special_tokens, logprobs)``: no stop tokens and no flag to add any. vLLM then stops only at
the generation config's EOS; a base model that writes the chat turn-end token (``<|im_end|>`` after the Qwen2.5-Math
CoT prompt) runs on into invented turns, and the reward grades text evaluation never sees (evaluation stops at
``rspo_core.sampler.stop_token_ids``). ``install_stop_tokens`` replaces the module global ``SamplingParams`` that the
dispatch code reads at call time by ``StopTokenSamplingParams``, which adds those ids. The sync trainer actor
(trainer.py) installs it in its ``__init__``; the async path (hooks.py) wraps ``SamplesGenerator.__init__``.
"""

from __future__ import annotations

import openrlhf.trainer.ppo_utils.samples_generator as _samples_generator_module


def training_stop_token_ids(model_path: str, tokenizer) -> list[int]:
    """The token ids evaluation stops at, for the actor model: ``rspo_core.sampler.model_stop_token_ids`` (tokenizer
    EOS, the generation-config EOS, the chat turn-end tokens in the vocabulary), the rule ``analysis.generate`` uses."""
    from rspo_core.sampler import model_stop_token_ids

    return model_stop_token_ids(model_path, tokenizer)


class StopTokenSamplingParams:
    """Stands where OpenRLHF's ``SamplesGenerator._dispatch_prompts_to_vllm`` looks up ``SamplingParams`` (a module
    global of ``openrlhf.trainer.ppo_utils.samples_generator``, read at call time): builds vLLM's SamplingParams with
    the given keywords plus ``stop_token_ids`` (OpenRLHF 0.11.2 sets none, so a base model writing a chat turn-end
    token ran on into invented turns that evaluation never sees)."""

    def __init__(self, factory, stop_ids):
        self.factory = factory
        self.stop_ids = sorted(int(i) for i in stop_ids)

    def __call__(self, **kwargs):
        ids = sorted(set(kwargs.pop("stop_token_ids", None) or []) | set(self.stop_ids))
        return self.factory(**kwargs, stop_token_ids=ids)


def install_stop_tokens(stop_ids) -> None:
    """Make every rollout (and OpenRLHF's built-in eval) of this process stop at ``stop_ids`` (idempotent)."""
    current = _samples_generator_module.SamplingParams
    factory = current.factory if isinstance(current, StopTokenSamplingParams) else current
    _samples_generator_module.SamplingParams = StopTokenSamplingParams(factory, stop_ids)


def patch_samples_generator_class(cls) -> None:
    """Wrap ``SamplesGenerator.__init__`` so every generator built in this process installs the stop tokens of its
    actor model (``strategy.args.actor.model_name_or_path``) and tokenizer (idempotent)."""
    if getattr(cls.__init__, "_rspo_wrapped", False):
        return
    original = cls.__init__

    def __init__(self, strategy, prompts_dataloader, eval_dataloader, tokenizer, vllm_engines):
        original(self, strategy, prompts_dataloader, eval_dataloader, tokenizer, vllm_engines)
        install_stop_tokens(training_stop_token_ids(strategy.args.actor.model_name_or_path, tokenizer))

    __init__._rspo_wrapped = True
    __init__.__wrapped__ = original
    cls.__init__ = __init__
