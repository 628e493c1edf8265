"""rspo_core.sampler.sample, the one HF sampler of the trainer, pre-training's held-out evaluation and
analysis.generate's hf backend, on tiny random Llamas with real HF tokenizers (CPU, no downloads).

The decoding loop of ``sample`` is checked against an independent reference: transformers' own ``generate`` over the
same left-padded rows, driven by logits processors written here (inverse-CDF choice from each row's own uniforms,
entropy recording) after transformers' temperature / top-p warpers."""

from __future__ import annotations

import pytest
import torch

from analysis import generate as G
from rspo_core.sampler import SamplingConfig, row_seeds, sample, stop_token_ids
from rspo_patch.charlm import build_char_tokenizer, build_tiny_llama

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


# ---------------------------------------------------------------------------------------------------------------------
# The decoding loop against transformers' generate


class RefInverseCDF:
    """Reference logits processor: row b takes the first token v with cdf_v > u_b,t * cdf_V (counted as the number of
    cdf entries <= the target), returned as a one-hot score that generate's greedy step takes."""

    def __init__(self, uniforms: torch.Tensor, prompt_len: int):
        self.uniforms, self.prompt_len = uniforms, prompt_len

    def __call__(self, input_ids, scores):
        t = input_ids.shape[1] - self.prompt_len
        cdf = torch.softmax(scores.double(), -1).cumsum(-1)
        target = self.uniforms[:, t] * cdf[:, -1]
        k = (cdf <= target[:, None]).sum(1).clamp(max=scores.shape[1] - 1)
        out = torch.full_like(scores, float("-inf"))
        out[torch.arange(scores.shape[0]), k] = 0.0
        return out


class RefEntropy:
    """Reference logits processor recording sum_v entr(p_v) of p = softmax(scores) per step, scores unchanged."""

    def __init__(self):
        self.steps: list[torch.Tensor] = []

    def __call__(self, input_ids, scores):
        self.steps.append(torch.special.entr(torch.softmax(scores.double(), -1)).sum(-1))
        return scores


def reference_sample(model, tok, prompts, seeds, sampling, stop_ids, add_special_tokens=True) -> dict:
    """All rows in one left-padded ``model.generate`` call with the reference processors."""
    from transformers import GenerationConfig, LogitsProcessorList, TemperatureLogitsWarper, TopPLogitsWarper

    tok.padding_side = "left"
    if tok.pad_token_id is None:  # sample()'s documented rule: pad with EOS
        tok.pad_token = tok.eos_token
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=add_special_tokens)
    lp, recorder = enc["input_ids"].shape[1], RefEntropy()
    procs = []
    if sampling.temperature > 0:  # both warpers always (sample() skips the no-op ones)
        procs += [TemperatureLogitsWarper(sampling.temperature), TopPLogitsWarper(sampling.top_p)]
    procs.append(recorder)
    if sampling.temperature > 0:
        u = torch.stack([torch.rand(sampling.max_new_tokens, generator=torch.Generator().manual_seed(s),
                                    dtype=torch.float64) for s in seeds])
        procs.append(RefInverseCDF(u, lp))
    config = GenerationConfig(do_sample=False, max_new_tokens=sampling.max_new_tokens, eos_token_id=list(stop_ids),
                              pad_token_id=tok.pad_token_id)
    seqs = model.generate(**enc, generation_config=config, logits_processor=LogitsProcessorList(procs))
    texts, nums, reasons, ents = [], [], [], []
    for b, row in enumerate(seqs[:, lp:].tolist()):
        hits = [j for j, t in enumerate(row) if t in stop_ids]
        num = hits[0] + 1 if hits else len(row)
        texts.append(tok.decode(row[:hits[0]] if hits else row, skip_special_tokens=True))
        nums.append(num)
        reasons.append("stop" if hits else "length")
        ents.append(sum(recorder.steps[t][b].item() for t in range(num)) / num)
    return dict(sequences=seqs, prompt_mask=enc["attention_mask"], texts=texts, num_tokens=nums,
                finish_reasons=reasons, entropy=ents)


def char_llama():
    """The default config's char-level Llama (rspo_patch.charlm), random weights with a sharper head so that
    responses both stop and run to the length limit."""
    tok = build_char_tokenizer()
    model = build_tiny_llama(len(tok), tokenizer=tok, seed=1)
    with torch.no_grad():
        model.lm_head.weight.mul_(6.0)
    return model.eval(), tok, True


def smol_like_llama():
    """A SmolLM2-like Llama: grouped-query attention, tied embeddings, no pad token (pad = EOS, itself a stop token),
    a second stop token <|im_end|>, prompts that carry their own special tokens (add_special_tokens=False)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    vocab = {t: i for i, t in enumerate(specials + list("0123456789+-*/=() abcdefghij"))}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<|endoftext|>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    core.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|endoftext|>",
                                  additional_special_tokens=specials[1:])
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(vocab), hidden_size=64, intermediate_size=128,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                         tie_word_embeddings=True, bos_token_id=None, eos_token_id=0))
    with torch.no_grad():
        model.model.embed_tokens.weight.mul_(2.0)
    return model.eval(), tok, False


MODELS = {"char_llama": char_llama, "smol_like": smol_like_llama}
# distinct and repeated prompts of different lengths, in mixed order (padding, shared prefills)
BATCH = ["1+2=", "30+4=", "1+2=", "5+600=", "7000+8=", "1+2=", "30+4=", "123+45678=", "9=", "1+2="]


@pytest.fixture(scope="module", params=list(MODELS))
def any_model(request):
    return MODELS[request.param]()


@pytest.mark.parametrize("temperature, top_p, entropy, seed", [
    (1.0, 1.0, True, 0), (0.7, 0.9, True, 1), (1.3, 0.95, False, 2), (0.0, 1.0, True, 3), (1.0, 0.5, True, 2**62),
])
def test_decoding_loop_equals_generate_with_the_same_uniforms(any_model, temperature, top_p, entropy, seed):
    model, tok, special = any_model
    prompts = BATCH if special else ["<|im_start|>" + p for p in BATCH]
    seeds = [seed + 7919 * i for i in range(len(prompts))]
    sampling = SamplingConfig(temperature=temperature, top_p=top_p, max_new_tokens=9)
    stop = stop_token_ids(tok)
    ref = reference_sample(model, tok, prompts, seeds, sampling, stop, add_special_tokens=special)
    one = sample(model, tok, prompts, seeds, sampling, stop_ids=stop, add_special_tokens=special, batch_size=64,
                 record_entropy=entropy)
    # one chunk: the same padded shapes as generate's
    assert torch.equal(one.sequences, ref["sequences"])
    lp = ref["prompt_mask"].shape[1]
    valid = (torch.arange(one.sequences.shape[1] - lp)[None] < torch.tensor(ref["num_tokens"])[:, None]).long()
    assert torch.equal(one.attention_mask, torch.cat([ref["prompt_mask"], valid], 1))
    assert torch.equal(one.response_mask, torch.cat([torch.zeros_like(ref["prompt_mask"]), valid], 1))
    for batch_size in (64, 3):  # several chunks: the same rows
        got = one if batch_size == 64 else sample(model, tok, prompts, seeds, sampling, stop_ids=stop,
                                                  add_special_tokens=special, batch_size=batch_size,
                                                  record_entropy=entropy)
        assert got.texts == ref["texts"]
        assert got.num_tokens == ref["num_tokens"]
        assert got.finish_reasons == ref["finish_reasons"]
        if entropy:
            assert got.entropy.tolist() == pytest.approx(ref["entropy"], abs=1e-5)
        else:
            assert got.entropy is None
        glp = got.sequences.shape[1] - got.response_mask.sum(1).max().item()
        for b, num in enumerate(ref["num_tokens"]):
            assert got.sequences[b, glp:glp + num].tolist() == ref["sequences"][b, lp:lp + num].tolist()


def test_the_reference_cases_cover_stop_length_and_early_end(any_model):
    """The compared cases are not vacuous: rows stop and run to the limit, and a batch of stopped rows ends early."""
    model, tok, special = any_model
    prompts = BATCH if special else ["<|im_start|>" + p for p in BATCH]
    stop = stop_token_ids(tok)
    got = sample(model, tok, prompts, list(range(len(prompts))), SamplingConfig(1.0, 1.0, 9), stop_ids=stop,
                 add_special_tokens=special)
    assert {"stop", "length"} <= set(got.finish_reasons)
    early = [i for i, r in enumerate(got.finish_reasons) if r == "stop" and got.num_tokens[i] < 9]
    alone = sample(model, tok, [prompts[early[0]]], [early[0]], SamplingConfig(1.0, 1.0, 9), stop_ids=stop,
                   add_special_tokens=special)
    lp = len(tok(prompts[early[0]], add_special_tokens=special)["input_ids"])
    assert alone.sequences.shape[1] == lp + alone.num_tokens[0] < lp + 9  # the loop ended at the stop token
