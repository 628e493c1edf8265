"""The one HF sampler of training and evaluation: ``sample(model, tokenizer, prompts, row_seeds, sampling, ...)``.

Used by the reference trainer (rspo_patch.train_local), by pre-training's held-out pass@1 (rspo_patch.pretrain) and by
evaluation's ``hf`` backend (analysis.generate), so "a response", "where it stops" and "truncated" mean one thing:

- Stop tokens (``stop_token_ids``): the tokenizer's EOS, the model's generation-config EOS (int or list) and every
  chat turn-end token of ``TURN_END_TOKENS`` in the vocabulary. A response ends at its first stop token
  (``split_at_stop``): ``num_tokens`` counts it, the decoded ``text`` leaves it out, ``finish_reason`` is "stop";
  a response that reaches ``max_new_tokens`` without one has ``finish_reason`` "length" (truncated).
- Per-row random streams: row b owns the uniforms ``u_t`` of ``torch.Generator().manual_seed(row_seeds[b])`` and step
  t picks ``argmin_v {cdf_v > u_t * cdf_V}`` over the temperature- and top-p-processed distribution (transformers'
  ``TemperatureLogitsWarper`` and ``TopPLogitsWarper``); the chosen token goes to ``generate`` as a one-hot score that
  its greedy step takes. A row's tokens are a function of its own seed and its own logits, never of which rows share
  its batch. (transformers' own sampler draws ``torch.multinomial`` on the global RNG, whose draws depend on the batch.)
  Caveat: logits can differ at float-rounding level between padded shapes (SDPA kernels), so a token can change only
  if a uniform lands within ~1e-7 of a CDF boundary.
- Seeds: a problem's seed is ``problem_seed(base_seed, problem_id)`` (sha256: stable across runs and machines, never
  Python's salted ``hash()``); sample i of a problem uses ``sample_seed(problem_seed, i)`` = problem seed + i, vLLM's
  rule for the n samples of one seeded request (so the vllm backend of analysis.generate uses the same seeds).
- KV cache: ``generate``'s default dynamic cache. Greedy decoding when ``temperature == 0``.
- ``record_entropy=True`` (the trainer) also returns each response's mean token entropy of the distribution sampled
  from (``EntropyRecorder``).
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass

import torch

# Special tokens that end a turn in common chat formats; added to the stop set when the tokenizer has them, so a base
# model prompted with the Qwen chat format stops at <|im_end|> even where its EOS is <|endoftext|>.
TURN_END_TOKENS = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end_of_text|>", "<end_of_turn>")
FINISH_REASONS = ("stop", "length")
SEED_BITS = 63


@dataclass(frozen=True)
class SamplingConfig:
    """Sampling settings shared by every row of a call. temperature 0 means greedy decoding."""

    temperature: float = 0.6
    top_p: float = 0.95
    max_new_tokens: int = 3000


# ---------------------------------------------------------------------------------------------------------------------
# Seeds, stop tokens


def problem_seed(base_seed: int, problem_id: str) -> int:
    """Stable per-problem seed in [0, 2**63): first 8 bytes of sha256(f"{base_seed}:{problem_id}"), top bit dropped."""
    digest = hashlib.sha256(f"{int(base_seed)}:{problem_id}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> (64 - SEED_BITS)


def sample_seed(p_seed: int, sample_idx: int) -> int:
    """Seed of sample ``sample_idx`` of a problem: ``(p_seed + sample_idx) mod 2**63`` (vLLM's seed + index rule)."""
    return (int(p_seed) + int(sample_idx)) % (1 << SEED_BITS)


def row_seeds(problem_seeds: list[int], n: int) -> list[int]:
    """Seeds of the P*n rows of n samples per problem, prompt-major: row p*n + i gets ``sample_seed(seeds[p], i)``."""
    return [sample_seed(s, i) for s in problem_seeds for i in range(n)]


def stop_token_ids(tokenizer, model_eos: int | list[int] | None = None) -> list[int]:
    """Sorted token ids that end a response: tokenizer EOS, the model's generation-config EOS (int or list), and any
    of ``TURN_END_TOKENS`` present in the vocabulary. Raises ValueError if none is found."""
    ids: set[int] = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    if model_eos is not None:
        ids.update(int(i) for i in ([model_eos] if isinstance(model_eos, int) else model_eos))
    vocab = tokenizer.get_vocab()
    ids.update(int(vocab[t]) for t in TURN_END_TOKENS if t in vocab)
    if not ids:
        raise ValueError("tokenizer has no eos_token and no known end-of-turn token; cannot tell when a response stops")
    return sorted(ids)


def model_stop_token_ids(model_dir: str, tokenizer) -> list[int]:
    """:func:`stop_token_ids` for the model in ``model_dir``, with the EOS of its ``generation_config.json`` (none if the
    folder has no such file): the stop rule of evaluation (analysis.generate) and of OpenRLHF's rollouts alike."""
    from transformers import GenerationConfig

    try:
        model_eos = GenerationConfig.from_pretrained(model_dir).eos_token_id
    except OSError:  # no generation_config.json
        model_eos = None
    return stop_token_ids(tokenizer, model_eos)


def split_at_stop(token_ids: list[int], stop_ids: set[int]) -> tuple[list[int], str, int]:
    """Cut generated ids at the first stop token.

    Returns (ids before the stop token, finish_reason, num_tokens): ("stop", index+1) if a stop token occurs,
    else ("length", len(token_ids)).
    """
    for j, t in enumerate(token_ids):
        if t in stop_ids:
            return token_ids[:j], "stop", j + 1
    return list(token_ids), "length", len(token_ids)


def clean_generation_config(tokenizer, stop_ids: list[int]):
    """A ``GenerationConfig`` with nothing but greedy steps, the stop ids and the pad/bos ids: a model's own defaults
    (repetition_penalty, top_k, ...) must not leak into our sampling; the only logits processing is ours."""
    from transformers import GenerationConfig

    return GenerationConfig(do_sample=False, eos_token_id=list(stop_ids), pad_token_id=tokenizer.pad_token_id,
                            bos_token_id=tokenizer.bos_token_id)


# ---------------------------------------------------------------------------------------------------------------------
# Logits processors


class InverseCDFSampler:
    """Logits processor that samples row b's next token from its own uniform ``uniforms[b, t]``.

    scores: (B, V) processed logits (-inf = filtered). t = current length - prompt_len. With p = softmax(scores) in
    float64 and cdf = cumsum(p), the token is the first v with cdf_v > u * cdf_V. Returns (B, V) scores that are 0 at
    the chosen token and -inf elsewhere, so ``generate``'s greedy argmax takes it.
    """

    def __init__(self, uniforms: torch.Tensor, prompt_len: int):
        self.uniforms = uniforms  # (B, T) float64
        self.prompt_len = prompt_len

    def __call__(self, input_ids, scores):
        t = input_ids.shape[1] - self.prompt_len
        cdf = torch.softmax(scores.to(torch.float64), dim=-1).cumsum(dim=-1)  # (B, V)
        target = (self.uniforms[:, t] * cdf[:, -1]).unsqueeze(1)  # (B, 1)
        idx = torch.searchsorted(cdf, target, right=True).clamp_(max=scores.shape[1] - 1)  # (B, 1)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(1, idx, 0.0)


class EntropyRecorder:
    """Logits processor that records, at each step, the entropy H = -sum_v p_v log p_v of p = softmax(scores): placed
    after the temperature/top-p warpers, that is the distribution the next token is sampled from. Scores pass
    through unchanged. ``per_step``: list of (B,) float32 tensors, one per generated token."""

    def __init__(self):
        self.per_step: list[torch.Tensor] = []

    def __call__(self, input_ids, scores):
        logp = torch.log_softmax(scores.float(), dim=-1)
        self.per_step.append(-(logp.exp() * logp).nan_to_num().sum(-1))  # (B,)
        return scores


# ---------------------------------------------------------------------------------------------------------------------
# Sampling


@dataclass
class Samples:
    """One response per row of ``sample``'s prompts (row b = prompts[b] with seed row_seeds[b]).

    sequences      (N, Lp+Lr) prompt (left-padded) + response (right-padded with pad) token ids
    attention_mask (N, Lp+Lr) 1 on real prompt tokens and on response tokens up to and including the first stop token
    response_mask  (N, Lp+Lr) 1 on those response tokens only (the tokens whose log-probs form log pi(y|x))
    texts          decoded responses without the stop token (special tokens removed)
    num_tokens     response lengths in tokens (stop token included)
    finish_reasons "stop" (a stop token was generated) or "length" (max_new_tokens reached without one)
    entropy        (N,) mean token entropy of the sampling distribution over each response's tokens (record_entropy),
                   else None
    """

    sequences: torch.Tensor
    attention_mask: torch.Tensor
    response_mask: torch.Tensor
    texts: list[str]
    num_tokens: list[int]
    finish_reasons: list[str]
    entropy: torch.Tensor | None


@torch.no_grad()
def sample(model, tokenizer, prompts: list[str], seeds: list[int], sampling: SamplingConfig, *,
           stop_ids: list[int], add_special_tokens: bool = True, batch_size: int = 32,
           record_entropy: bool = False) -> Samples:
    """One response per prompt; row b samples from its own stream ``seeds[b]`` (see module docstring).

    Rows go through ``generate`` ``batch_size`` at a time (left-padded; memory only: the result does not depend on
    it); the chunks are padded to a common length. ``add_special_tokens=False`` for prompts that already carry them
    (chat-template strings). The tokenizer is set to left padding (pad = EOS where it has no pad token).
    """
    if len(prompts) != len(seeds):
        raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds; expected one seed per row")
    if not sampling.temperature >= 0 or sampling.max_new_tokens < 1 or not 0 < sampling.top_p <= 1:
        raise ValueError(f"sampling={sampling}: expected temperature >= 0, 0 < top_p <= 1, max_new_tokens >= 1")
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:  # e.g. SmolLM2: pad with EOS (masked out everywhere it matters)
        tokenizer.pad_token = tokenizer.eos_token
    config = clean_generation_config(tokenizer, stop_ids)
    config.max_new_tokens = sampling.max_new_tokens
    saved_config, was_training = model.generation_config, model.training
    model.generation_config = config  # generate() fills unset fields from model.generation_config: keep it clean
    model.eval()
    try:
        chunks = [_sample_chunk(model, tokenizer, prompts[i:i + batch_size], seeds[i:i + batch_size], sampling,
                                config, stop_ids, add_special_tokens, record_entropy)
                  for i in range(0, len(prompts), batch_size)]
    finally:
        model.generation_config = saved_config
        model.train(was_training)
    return _concat(chunks, tokenizer.pad_token_id, record_entropy)


def _sample_chunk(model, tokenizer, prompts, seeds, sampling, config, stop_ids, add_special_tokens, record_entropy):
    """One left-padded ``generate`` call: (prompt ids (B, Lp), prompt mask (B, Lp), response ids (B, Lr),
    response lengths, texts, finish reasons, per-token entropy (B, Lr) or None)."""
    from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopPLogitsWarper

    device = next(model.parameters()).device
    enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=add_special_tokens)
    enc = {k: v.to(device) for k, v in enc.items()}
    prompt_len = enc["input_ids"].shape[1]
    processors = LogitsProcessorList()
    if sampling.temperature > 0:
        if sampling.temperature != 1.0:
            processors.append(TemperatureLogitsWarper(sampling.temperature))
        if sampling.top_p < 1.0:
            processors.append(TopPLogitsWarper(sampling.top_p))
    recorder = EntropyRecorder() if record_entropy else None
    if recorder is not None:
        processors.append(recorder)
    if sampling.temperature > 0:
        uniforms = torch.stack([  # (B, T) uniforms, one independent stream per row
            torch.rand(sampling.max_new_tokens, generator=torch.Generator().manual_seed(s), dtype=torch.float64)
            for s in seeds
        ]).to(device)
        processors.append(InverseCDFSampler(uniforms, prompt_len))
    seqs = model.generate(**enc, generation_config=copy.deepcopy(config), logits_processor=processors)
    resp = seqs[:, prompt_len:]  # (B, Lr)
    stop = set(stop_ids)
    texts, reasons, lengths = [], [], []
    for row in resp.tolist():
        ids, reason, num = split_at_stop(row, stop)
        texts.append(tokenizer.decode(ids, skip_special_tokens=True))
        reasons.append(reason)
        lengths.append(num)
    ent = None
    if recorder is not None:
        ent = torch.stack(recorder.per_step, 1)[:, : resp.shape[1]] if recorder.per_step else resp.new_zeros(
            (len(prompts), 0), dtype=torch.float32)
    return enc["input_ids"], enc["attention_mask"], resp, lengths, texts, reasons, ent


def _concat(chunks, pad_id: int, record_entropy: bool) -> Samples:
    """Pad the chunks to a common prompt length Lp (left) and response length Lr (right) and stack them."""
    lp = max(c[0].shape[1] for c in chunks)
    lr = max(c[2].shape[1] for c in chunks)
    seqs, amask, rmask, ents = [], [], [], []
    texts, lengths, reasons = [], [], []
    for ids, am, resp, num, txt, why, ent in chunks:
        b = ids.shape[0]
        ids = torch.cat([ids.new_full((b, lp - ids.shape[1]), pad_id), ids], 1)
        am = torch.cat([am.new_zeros((b, lp - am.shape[1])), am], 1)
        resp = torch.cat([resp, resp.new_full((b, lr - resp.shape[1]), pad_id)], 1)
        valid = (torch.arange(lr, device=resp.device).unsqueeze(0)
                 < torch.tensor(num, device=resp.device).unsqueeze(1)).long()  # (b, Lr): up to the first stop
        seqs.append(torch.cat([ids, resp], 1))
        amask.append(torch.cat([am, valid], 1))
        rmask.append(torch.cat([torch.zeros_like(am), valid], 1))
        if record_entropy:
            ent = torch.cat([ent, ent.new_zeros((b, lr - ent.shape[1]))], 1)
            ents.append((ent * valid).sum(1) / valid.sum(1).clamp(min=1))
        texts += txt
        lengths += num
        reasons += why
    return Samples(torch.cat(seqs), torch.cat(amask), torch.cat(rmask), texts, lengths, reasons,
                   torch.cat(ents) if record_entropy else None)
