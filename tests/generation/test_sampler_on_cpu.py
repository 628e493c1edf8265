"""rspo_core.sampler.sample, the one HF sampler of the trainer, pre-training's held-out evaluation and
analysis.generate's hf backend, on a tiny random Llama with a real char-level HF tokenizer (CPU, no downloads)."""

from __future__ import annotations

import pytest
import torch

from analysis import generate as G
from rspo_core.sampler import SamplingConfig, row_seeds, sample, stop_token_ids

PROMPTS = ["1+2=", "30+4=", "5+600=", "7000+8="]
SAMPLING = SamplingConfig(temperature=0.8, top_p=0.95, max_new_tokens=10)


@pytest.fixture(scope="module")
def model_and_tok(tiny_model):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    return AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval(), tok


def test_rows_are_independent_of_batching_and_finish_reasons_are_consistent(model_and_tok):
    model, tok = model_and_tok
    stop = stop_token_ids(tok)
    prompts = [p for p in PROMPTS for _ in range(3)]
    seeds = row_seeds([11, 22, 33, 44], 3)
    together = sample(model, tok, prompts, seeds, SAMPLING, stop_ids=stop, batch_size=64, record_entropy=True)
    alone = [sample(model, tok, [p], [s], SAMPLING, stop_ids=stop, batch_size=1, record_entropy=True)
             for p, s in zip(prompts, seeds)]
    assert together.texts == [a.texts[0] for a in alone]
    assert together.num_tokens == [a.num_tokens[0] for a in alone]
    assert together.entropy.tolist() == pytest.approx([a.entropy.item() for a in alone], abs=1e-5)
    assert {"stop", "length"} == set(together.finish_reasons)  # this seed exercises both
    lp = together.sequences.shape[1] - together.response_mask.sum(1).max().item()
    for i, (why, num) in enumerate(zip(together.finish_reasons, together.num_tokens)):
        resp = together.sequences[i, lp:lp + num].tolist()
        # "length": max_new_tokens reached without a stop token; "stop": the last counted token is the first stop
        if why == "length":
            assert num == SAMPLING.max_new_tokens and not set(resp) & set(stop)
        else:
            assert resp[-1] in stop and not set(resp[:-1]) & set(stop)
        assert together.response_mask[i].sum() == num == together.attention_mask[i, lp:].sum()


def test_the_hf_backend_of_evaluation_is_this_sampler(model_and_tok, tiny_model):
    """analysis.generate's hf backend returns exactly what sample() returns for the same rows and seeds."""
    _, tok = model_and_tok
    backend = G.HFBackend(str(tiny_model), tokenizer=tok, stop_ids=stop_token_ids(tok), batch_size=5)
    got = backend.generate(PROMPTS, 3, SAMPLING, [11, 22, 33, 44])
    ref = sample(backend.model, tok, [p for p in PROMPTS for _ in range(3)], row_seeds([11, 22, 33, 44], 3),
                 SAMPLING, stop_ids=stop_token_ids(tok), batch_size=7)
    flat = [s for per_problem in got for s in per_problem]
    assert [(s.output, s.finish_reason, s.num_tokens) for s in flat] == list(
        zip(ref.texts, ref.finish_reasons, ref.num_tokens))


def test_bad_sampling_settings_and_seed_counts_raise(model_and_tok):
    model, tok = model_and_tok
    with pytest.raises(ValueError, match="one seed per row"):
        sample(model, tok, PROMPTS, [1], SAMPLING, stop_ids=[2])
    with pytest.raises(ValueError, match="temperature >= 0"):
        sample(model, tok, PROMPTS[:1], [1], SamplingConfig(temperature=-1.0), stop_ids=[2])
