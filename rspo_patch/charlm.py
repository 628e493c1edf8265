"""Helpers shared by the tiny-model pre-training (rspo_patch.pretrain) and the reference trainer (rspo_patch.train_local).

- ``build_char_tokenizer(chars)``: a character-level tokenizer built with the ``tokenizers`` library and wrapped as a
  real ``PreTrainedTokenizerFast`` (``<pad>``, ``<bos>``, ``<eos>``, ``<unk>``); ``save_pretrained`` + ``AutoTokenizer``
  round-trip it. One character = one token; a ``<bos>`` is prepended to every encoded text; decoding fuses the
  characters back without separators.
- ``build_tiny_llama(vocab_size, ...)``: the ~1M-parameter ``LlamaForCausalLM`` of research/tiny-rl.md.
- ``sample_responses(model, tokenizer, prompts, n, ...)``: n sampled continuations per prompt with HF ``generate``,
  returning token ids, masks, decoded texts, finish reasons and the mean token entropy of the sampling distribution.
- ``sequence_logprobs(model, input_ids, attention_mask, response_mask)``: per-token log-probs of the response tokens.
- ``evaluate_passk(model, tokenizer, rows, n, ks, ...)``: held-out unbiased pass@k with the project's one grader.
"""

from __future__ import annotations

import os
import shutil
import string
from dataclasses import dataclass

import numpy as np
import torch


# Special tokens of the char-level tokenizer (ids 0..3, in this order).
PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK)
# Base character set: arithmetic (digits, operators, '='), space, lowercase letters and light punctuation so that
# simple word problems tokenize too. Characters found in the data are added on top (sorted) by ``charset_for``.
BASE_CHARS = string.digits + "+-*/=()" + " " + string.ascii_lowercase + ".,?!:'$"


def charset_for(texts) -> str:
    """BASE_CHARS followed by every other character occurring in ``texts`` (sorted, deterministic)."""
    extra = sorted({ch for t in texts for ch in t} - set(BASE_CHARS))
    return BASE_CHARS + "".join(extra)


def build_char_tokenizer(chars: str = BASE_CHARS):
    """Return a ``PreTrainedTokenizerFast`` with one token per character of ``chars`` plus the 4 special tokens.

    Vocabulary: ``<pad>``=0, ``<bos>``=1, ``<eos>``=2, ``<unk>``=3, then ``chars`` in order. Encoding prepends ``<bos>``;
    unknown characters map to ``<unk>``; ``padding_side`` is "left" (decoder-only generation).
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    if len(set(chars)) != len(chars):
        raise ValueError(f"duplicate characters in charset {chars!r}")
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for ch in chars:
        vocab[ch] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")  # every character is its own word
    tok.decoder = decoders.Fuse()  # join characters without the WordLevel default space
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, vocab[BOS])]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD, unk_token=UNK, padding_side="left"
    )
    return fast


def build_tiny_llama(vocab_size: int, *, hidden: int = 128, layers: int = 4, heads: int = 4,
                     intermediate: int = 512, max_positions: int = 256, tokenizer=None, seed: int = 0):
    """A randomly initialised ``LlamaForCausalLM`` (defaults: 4 layers, d=128, 4 heads, MLP 512: ~1.06M parameters).

    ``tokenizer`` (optional) supplies the pad/bos/eos ids for the config and generation config.
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    ids = {}
    if tokenizer is not None:
        ids = dict(pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                   eos_token_id=tokenizer.eos_token_id)
    cfg = LlamaConfig(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=intermediate,
                      num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                      max_position_embeddings=max_positions, tie_word_embeddings=False, **ids)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg)
    if tokenizer is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        model.generation_config.bos_token_id = tokenizer.bos_token_id
        model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


# ---------------------------------------------------------------------------------------------------------------------
# Sampling


class _EntropyRecorder:
    """Logits processor that records the entropy of the sampling distribution softmax(scores / T) at each step.

    Custom processors run before HF's temperature warper, so the recorder divides by T itself; with top_k=0 and
    top_p=1 (what ``sample_responses`` passes) softmax(scores / T) is exactly the distribution sampled from.
    """

    def __init__(self, temperature: float):
        self.temperature = temperature
        self.per_step: list[torch.Tensor] = []

    def __call__(self, input_ids, scores):
        logp = torch.log_softmax(scores.float() / self.temperature, dim=-1)
        self.per_step.append(-(logp.exp() * logp).nan_to_num().sum(-1))  # (B,)
        return scores


@dataclass
class Samples:
    """n responses for each of P prompts, flattened prompt-major: row p*n + i is sample i of prompt p.

    sequences      (P*n, Lp+Lr) prompt (left-padded) + response (right-padded) token ids
    attention_mask (P*n, Lp+Lr) 1 on real prompt tokens and on response tokens up to and including the first EOS
    response_mask  (P*n, Lp+Lr) 1 on response tokens only (the tokens whose log-probs form log pi(y|x))
    texts          decoded responses (special tokens removed)
    num_tokens     response lengths in tokens (EOS included)
    finish_reasons "stop" (EOS emitted) or "length" (hit max_new_tokens)
    entropy        (P*n,) mean token entropy of the sampling distribution over each response's tokens
    """

    sequences: torch.Tensor
    attention_mask: torch.Tensor
    response_mask: torch.Tensor
    texts: list[str]
    num_tokens: list[int]
    finish_reasons: list[str]
    entropy: torch.Tensor


@torch.no_grad()
def sample_responses(model, tokenizer, prompts: list[str], n: int, *, max_new_tokens: int, temperature: float = 1.0,
                     seed: int = 0, batch_size: int = 512, add_special_tokens: bool = True) -> Samples:
    """Sample ``n`` responses per prompt at ``temperature`` (full distribution: top_k=0, top_p=1).

    Randomness: ``torch.manual_seed(seed)`` right before sampling, so a call is a pure function of (weights, prompts,
    seed). Sequences are generated in chunks of ``batch_size`` rows; all chunks are padded to a common length.
    ``add_special_tokens=False`` for prompts that already carry them (chat-template strings).
    """
    if n < 1 or max_new_tokens < 1 or temperature <= 0:
        raise ValueError(f"need n >= 1, max_new_tokens >= 1, temperature > 0; got {n}, {max_new_tokens}, {temperature}")
    device = next(model.parameters()).device
    eos_id = tokenizer.eos_token_id
    if tokenizer.pad_token_id is None:  # e.g. SmolLM2: pad with EOS (masked out everywhere it matters)
        tokenizer.pad_token = tokenizer.eos_token
    pad_id = tokenizer.pad_token_id
    tokenizer.padding_side = "left"
    flat_prompts = [p for p in prompts for _ in range(n)]
    torch.manual_seed(seed)
    chunks = []
    was_training = model.training
    model.eval()
    for start in range(0, len(flat_prompts), batch_size):
        part = flat_prompts[start:start + batch_size]
        enc = tokenizer(part, return_tensors="pt", padding=True, add_special_tokens=add_special_tokens).to(device)
        rec = _EntropyRecorder(temperature)
        out = model.generate(**enc, do_sample=True, temperature=temperature, top_k=0, top_p=1.0,
                             max_new_tokens=max_new_tokens, pad_token_id=pad_id, eos_token_id=eos_id,
                             logits_processor=[rec], return_dict_in_generate=False)
        lp = enc["input_ids"].shape[1]
        resp = out[:, lp:]  # (B, Lr)
        ent = torch.stack(rec.per_step, dim=1) if rec.per_step else torch.zeros(len(part), 0, device=device)
        chunks.append((enc["input_ids"], enc["attention_mask"], resp, ent[:, : resp.shape[1]]))
    if was_training:
        model.train()
    lp = max(c[0].shape[1] for c in chunks)
    lr = max(c[2].shape[1] for c in chunks)
    seqs, amask, rmask, ents = [], [], [], []
    for ids, am, resp, ent in chunks:
        b = ids.shape[0]
        ids = torch.cat([ids.new_full((b, lp - ids.shape[1]), pad_id), ids], 1)
        am = torch.cat([am.new_zeros((b, lp - am.shape[1])), am], 1)
        resp = torch.cat([resp, resp.new_full((b, lr - resp.shape[1]), pad_id)], 1)
        ent = torch.cat([ent, ent.new_zeros((b, lr - ent.shape[1]))], 1)
        # response tokens up to and including the first EOS
        is_eos = resp == eos_id
        after_eos = (is_eos.cumsum(1) - is_eos.long()) > 0
        valid = ~after_eos
        valid[:, resp.shape[1]:] = False
        seqs.append(torch.cat([ids, resp], 1))
        amask.append(torch.cat([am, valid.long()], 1))
        rmask.append(torch.cat([torch.zeros_like(am), valid.long()], 1))
        ents.append((ent * valid).sum(1) / valid.sum(1).clamp(min=1))
    sequences, attention_mask, response_mask = torch.cat(seqs), torch.cat(amask), torch.cat(rmask)
    resp_ids = sequences[:, lp:]
    resp_valid = response_mask[:, lp:].bool()
    num_tokens = resp_valid.sum(1).tolist()
    finished = ((resp_ids == eos_id) & resp_valid).any(1).tolist()
    texts = tokenizer.batch_decode([r[v].tolist() for r, v in zip(resp_ids, resp_valid)], skip_special_tokens=True)
    return Samples(sequences, attention_mask, response_mask, texts, num_tokens,
                   ["stop" if f else "length" for f in finished], torch.cat(ents))


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions counted over real tokens only (left padding gets 0), as HF ``generate`` computes them."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def sequence_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                      response_mask: torch.Tensor) -> torch.Tensor:
    """Per-token log pi(token | prefix) at response positions, zero elsewhere: shape (B, L-1), aligned with
    ``input_ids[:, 1:]``. Sum over dim 1 = log pi(y|x) of each sequence."""
    out = model(input_ids=input_ids, attention_mask=attention_mask,
                position_ids=position_ids_from_mask(attention_mask), use_cache=False)
    logits = out.logits[:, :-1].float()  # (B, L-1, V)
    targets = input_ids[:, 1:]
    logp = torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (B, L-1)
    return logp * response_mask[:, 1:].to(logp.dtype)


# ---------------------------------------------------------------------------------------------------------------------
# Evaluation


def grade_texts(texts, golds, finish_reasons, *, fallback: str | None = "last_number") -> list[bool]:
    """Grade responses with the project's one grader, ``analysis.verify.grade``."""
    from analysis.verify import grade

    return [bool(grade(t, g, fallback=fallback, finish_reason=f)) for t, g, f in zip(texts, golds, finish_reasons)]


def evaluate_passk(model, tokenizer, rows: list[dict], *, n: int, ks=(1,), max_new_tokens: int = 8,
                   temperature: float = 1.0, template: str = "plain", seed: int = 0,
                   fallback: str | None = "last_number", batch_size: int = 1024) -> dict:
    """Mean unbiased pass@k over ``rows`` ({question, answer}) from ``n`` samples each.

    Returns {"pass@K": float for K in ks, "n": n, "problems": len(rows), "mean_tokens": float, "entropy": float}.
    """
    from analysis.metrics import pass_at_k
    from rspo_core.prompts import format_prompt

    ks = sorted(set(int(k) for k in ks))
    if not rows or ks[0] < 1 or ks[-1] > n:
        raise ValueError(f"need rows and 1 <= k <= n for every k; got {len(rows)} rows, ks={ks}, n={n}")
    prompts = [format_prompt(r["question"], template, tokenizer) for r in rows]
    s = sample_responses(model, tokenizer, prompts, n, max_new_tokens=max_new_tokens, temperature=temperature,
                         seed=seed, batch_size=batch_size)
    golds = [str(r["answer"]) for r in rows for _ in range(n)]
    correct = np.array(grade_texts(s.texts, golds, s.finish_reasons, fallback=fallback)).reshape(len(rows), n)
    counts = correct.sum(1)
    res = {f"pass@{k}": float(np.mean([pass_at_k(n, int(c), k) for c in counts])) for k in ks}
    res.update(n=n, problems=len(rows), mean_tokens=float(np.mean(s.num_tokens)),
               entropy=float(s.entropy.mean()))
    return res


def count_parameters(model) -> int:
    """Number of parameters (tied weights counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def replace_dir(tmp: str, out: str) -> None:
    """Move the finished folder ``tmp`` to ``out``, replacing an existing ``out`` with two renames (never half-written)."""
    if os.path.exists(out):
        old = tmp + ".old"
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old)
    else:
        os.replace(tmp, out)
