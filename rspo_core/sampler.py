"""The one HF sampler of training and evaluation: ``sample(model, tokenizer, prompts, row_seeds, sampling, ...)``.

Used by the reference trainer (rspo_patch.train_local), by pre-training's held-out pass@1 (rspo_patch.pretrain) and by
evaluation's ``hf`` backend (analysis.generate), so "a response", "where it stops" and "truncated" mean one thing:

- Stop tokens (``stop_token_ids``): the tokenizer's EOS, the model's generation-config EOS (int or list) and every
  chat turn-end token of ``TURN_END_TOKENS`` in the vocabulary. A response ends at its first stop token
  (``split_at_stop``): ``num_tokens`` counts it, the decoded ``text`` leaves it out, ``finish_reason`` is "stop";
  a response that reaches ``max_new_tokens`` without one has ``finish_reason`` "length" (truncated).
- Per-row random streams: row b owns the uniforms ``u_t`` of ``torch.Generator().manual_seed(row_seeds[b])`` and step
  t picks ``argmin_v {cdf_v > u_t * cdf_V}`` over the temperature- and top-p-processed distribution (transformers'
  ``TemperatureLogitsWarper`` and ``TopPLogitsWarper``; ``inverse_cdf_choice``). A row's tokens are a function of its
  own seed and its own logits, never of which rows share its batch. (transformers' own sampler draws
  ``torch.multinomial`` on the global RNG, whose draws depend on the batch.)
  Caveat: logits can differ at float-rounding level between batch shapes (padding, SDPA and matmul kernels, the
  prompts that share a chunk's prefill), so a token can change only if a uniform lands within ~1e-7 of a CDF boundary.
- Seeds: a problem's seed is ``problem_seed(base_seed, problem_id)`` (sha256: stable across runs and machines, never
  Python's salted ``hash()``); sample i of a problem uses ``sample_seed(problem_seed, i)`` = problem seed + i, vLLM's
  rule for the n samples of one seeded request (so the vllm backend of analysis.generate uses the same seeds).
- Decoding (``decode``): our own KV-cached loop (a ``DynamicCache``), not ``generate``: for the tiny models of the
  default pipeline (8-token responses) ``generate``'s per-call set-up is a large part of the time, and rows that share
  a prompt (the n samples of a problem) need its prefill only once (its cache is copied to the rows). It keeps
  ``generate``'s bookkeeping (positions from the attention mask, last-position logits in float32, finished rows padded
  with the pad id, stop when every row stopped or at ``max_new_tokens``), so it returns the tokens ``generate`` would
  with the same processing (tests/generation/test_sampler_on_cpu.py checks that against ``generate``). Greedy decoding
  when ``temperature == 0``.
- ``record_entropy=True`` (the trainer) also returns each response's mean token entropy of the distribution sampled
  from (``token_entropy`` of the processed scores at each step).
"""

from __future__ import annotations

import hashlib
import inspect
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
    """A ``GenerationConfig`` with nothing but greedy steps, the stop ids and the pad/bos ids, for code that drives
    ``generate`` itself (``sample`` does not): a model's own defaults (repetition_penalty, top_k, ...) must not leak
    into our sampling; the only logits processing is ours."""
    from transformers import GenerationConfig

    return GenerationConfig(do_sample=False, eos_token_id=list(stop_ids), pad_token_id=tokenizer.pad_token_id,
                            bos_token_id=tokenizer.bos_token_id)


# ---------------------------------------------------------------------------------------------------------------------
# Token choice


def inverse_cdf_choice(scores: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Row b's token from its own uniform ``u[b]``: scores (B, V) processed logits (-inf = filtered), u (B,) float64.

    With p = softmax(scores) in float64 and cdf = cumsum(p), returns the (B,) long ids argmin_v {cdf_v > u * cdf_V}.
    """
    cdf = torch.softmax(scores.to(torch.float64), dim=-1).cumsum(dim=-1)  # (B, V)
    target = (u.to(cdf.device, torch.float64) * cdf[:, -1]).unsqueeze(1)  # (B, 1)
    return torch.searchsorted(cdf, target, right=True).clamp_(max=scores.shape[1] - 1).squeeze(1)


def token_entropy(scores: torch.Tensor) -> torch.Tensor:
    """(B,) float32 entropy H = -sum_v p_v log p_v of p = softmax(scores), scores (B, V) (-inf terms count 0)."""
    logp = torch.log_softmax(scores.float(), dim=-1)
    return -(logp.exp() * logp).nan_to_num().sum(-1)


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

    Rows are decoded ``batch_size`` at a time (left-padded; memory only: the result does not depend on it); the chunks
    are padded to a common length. ``add_special_tokens=False`` for prompts that already carry them (chat-template
    strings). The tokenizer is set to left padding (pad = EOS where it has no pad token).
    """
    if len(prompts) != len(seeds):
        raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds; expected one seed per row")
    if not sampling.temperature >= 0 or sampling.max_new_tokens < 1 or not 0 < sampling.top_p <= 1:
        raise ValueError(f"sampling={sampling}: expected temperature >= 0, 0 < top_p <= 1, max_new_tokens >= 1")
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:  # e.g. SmolLM2: pad with EOS (masked out everywhere it matters)
        tokenizer.pad_token = tokenizer.eos_token
    was_training = model.training
    model.eval()
    try:
        chunks = [_sample_chunk(model, tokenizer, prompts[i:i + batch_size], seeds[i:i + batch_size], sampling,
                                stop_ids, add_special_tokens, record_entropy)
                  for i in range(0, len(prompts), batch_size)]
    finally:
        model.train(was_training)
    return _concat(chunks, tokenizer.pad_token_id, record_entropy)


def row_uniforms(seeds: list[int], steps: int, device) -> torch.Tensor:
    """(B, steps) float64 uniforms: row b's are ``torch.rand(steps)`` of ``torch.Generator().manual_seed(seeds[b])``."""
    return torch.stack([torch.rand(steps, generator=torch.Generator().manual_seed(s), dtype=torch.float64)
                        for s in seeds]).to(device)


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, L) positions counted over real tokens only (left padding gets 0), as HF ``generate`` computes them."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def _warpers(sampling: SamplingConfig) -> list:
    """transformers' temperature and top-p warpers that apply (none when greedy, T == 1 or top_p == 1)."""
    from transformers import TemperatureLogitsWarper, TopPLogitsWarper

    if sampling.temperature == 0:
        return []
    return ([TemperatureLogitsWarper(sampling.temperature)] if sampling.temperature != 1.0 else []) + (
        [TopPLogitsWarper(sampling.top_p)] if sampling.top_p < 1.0 else [])


def decode(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, rows: torch.Tensor, sampling: SamplingConfig,
           uniforms: torch.Tensor | None, stop_ids: list[int], pad_id: int,
           record_entropy: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """KV-cached decoding of B rows over U distinct left-padded prompts input_ids/attention_mask (U, Lp); row b
    continues prompt ``rows[b]`` (rows: (B,) long). Returns (response ids (B, Lr), per-step entropy (B, Lr) float32 or
    None), Lr <= max_new_tokens.

    Prefill runs once per distinct prompt (positions from the mask, ``position_ids_from_mask``); its cache and
    last-position logits are then copied to the B rows. Step t: last-position logits (float32) -> temperature/top-p
    warpers -> entropy (``token_entropy``) -> token ``inverse_cdf_choice(scores, uniforms[:, t])``, or the argmax when
    ``uniforms`` is None (greedy). A row that produced a stop token gets ``pad_id`` from then on; the loop ends when
    every row stopped or after max_new_tokens steps; each new token takes the previous position + 1 and a mask entry 1.
    That is ``generate``'s bookkeeping, so the tokens are those of ``generate`` with the same processing on the B
    padded rows (up to float rounding between batch shapes, see the module docstring).
    """
    from transformers import DynamicCache

    batch, device = rows.shape[0], input_ids.device
    warpers = _warpers(sampling)
    stop = torch.tensor(stop_ids, device=device)
    extra = {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}
    cache = DynamicCache(config=model.config.get_text_config(decoder=True))
    pos = position_ids_from_mask(attention_mask)
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=pos, past_key_values=cache,
                use_cache=True, **extra)
    logits, cache, mask = out.logits[:, -1], out.past_key_values, attention_mask
    if input_ids.shape[0] != batch:  # shared prompts: one prefill each, copied to their rows
        cache.reorder_cache(rows)
        logits, mask, pos = logits[rows], mask[rows], pos[rows]
    running = torch.ones(batch, dtype=torch.bool, device=device)
    tokens, ents = [], []
    for t in range(sampling.max_new_tokens):
        scores = logits.to(dtype=torch.float32)  # (B, V)
        for w in warpers:
            scores = w(None, scores)
        if record_entropy:
            ents.append(token_entropy(scores))
        nxt = scores.argmax(-1) if uniforms is None else inverse_cdf_choice(scores, uniforms[:, t])  # (B,)
        nxt = torch.where(running, nxt, pad_id)
        tokens.append(nxt)
        running &= ~torch.isin(nxt, stop)
        if t + 1 == sampling.max_new_tokens or not bool(running.any()):
            break
        mask, pos = torch.cat([mask, mask.new_ones((batch, 1))], 1), pos[:, -1:] + 1
        out = model(input_ids=nxt.unsqueeze(1), attention_mask=mask, position_ids=pos, past_key_values=cache,
                    use_cache=True, **extra)
        logits, cache = out.logits[:, -1], out.past_key_values
    return torch.stack(tokens, 1), (torch.stack(ents, 1) if record_entropy else None)


def _sample_chunk(model, tokenizer, prompts, seeds, sampling, stop_ids, add_special_tokens, record_entropy):
    """One chunk through ``decode``, each distinct prompt tokenized and prefilled once: (prompt ids (B, Lp) left-padded,
    prompt mask (B, Lp), response ids (B, Lr), response lengths, texts, finish reasons, per-token entropy (B, Lr) or
    None)."""
    device = next(model.parameters()).device
    distinct = list(dict.fromkeys(prompts))  # first-occurrence order
    index = {p: i for i, p in enumerate(distinct)}
    rows = torch.tensor([index[p] for p in prompts], device=device)  # (B,) row -> its prompt
    enc = tokenizer(distinct, return_tensors="pt", padding=True, add_special_tokens=add_special_tokens)
    ids, mask = enc["input_ids"].to(device), enc["attention_mask"].to(device)
    uniforms = row_uniforms(seeds, sampling.max_new_tokens, device) if sampling.temperature > 0 else None
    resp, ent = decode(model, ids, mask, rows, sampling, uniforms, stop_ids, tokenizer.pad_token_id, record_entropy)
    stop = set(stop_ids)
    cut = [split_at_stop(row, stop) for row in resp.tolist()]
    texts = tokenizer.batch_decode([c[0] for c in cut], skip_special_tokens=True)
    return ids[rows], mask[rows], resp, [c[2] for c in cut], texts, [c[1] for c in cut], ent


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
