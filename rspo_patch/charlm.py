"""Helpers shared by the tiny-model pre-training (rspo_patch.pretrain) and the reference trainer (rspo_patch.train_local).

- ``build_char_tokenizer(chars)``: a character-level tokenizer built with the ``tokenizers`` library and wrapped as a
  real ``PreTrainedTokenizerFast`` (``<pad>``, ``<bos>``, ``<eos>``, ``<unk>``); ``save_pretrained`` + ``AutoTokenizer``
  round-trip it. One character = one token; a ``<bos>`` is prepended to every encoded text; decoding fuses the
  characters back without separators.
- ``build_tiny_llama(vocab_size, ...)``: the ~1M-parameter ``LlamaForCausalLM`` of research/tiny-rl.md.
- ``sequence_logprobs(model, input_ids, attention_mask, response_mask)``: per-token log-probs of the response tokens.
- ``grade_texts(texts, golds, finish_reasons)``: verdicts of the project's one grader.
- ``save_hf_folder(model, tokenizer, out)``: an HF folder as ``save_pretrained`` writes it, without its deepspeed
  import; ``replace_dir(tmp, out)``: move a finished temp folder into place.

Sampling is not here: both use the one HF sampler of training and evaluation, ``rspo_core.sampler.sample``.
"""

from __future__ import annotations

import os
import shutil
import string

import torch

from rspo_core.sampler import position_ids_from_mask

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
# Scoring and grading


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


def grade_texts(texts, golds, finish_reasons, *, fallback: str | None = "last_number",
                timeout: float | None = 5.0) -> list[bool]:
    """Grade responses with the project's one grader, ``rspo_core.grading.grade`` (``timeout``: seconds per pair)."""
    from rspo_core.grading import grade

    return [bool(grade(t, g, fallback=fallback, finish_reason=f, timeout=timeout))
            for t, g, f in zip(texts, golds, finish_reasons)]


def count_parameters(model) -> int:
    """Number of parameters (tied weights counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def save_hf_folder(model, tokenizer, out: str) -> None:
    """Write ``model`` and ``tokenizer`` into the folder ``out`` (created if missing) as ``save_pretrained`` does for an
    unsharded model: config.json (with ``dtype`` and ``architectures`` set, as save_pretrained sets them),
    generation_config.json, model.safetensors (the state dict without tied duplicates, metadata format "pt") and the
    tokenizer files; ``AutoModelForCausalLM`` / ``AutoTokenizer.from_pretrained(out)`` load it.

    Why not ``model.save_pretrained``: its ``unwrap_model`` imports accelerate, which imports deepspeed when installed
    (~2.5 s, once per process) -- for the ~1M-parameter char models that is most of a short run's saving time.
    """
    from safetensors.torch import save_file
    from transformers.modeling_utils import remove_tied_weights_from_state_dict

    os.makedirs(out, exist_ok=True)
    model.config.dtype = str(model.dtype).split(".")[1]
    model.config.architectures = [type(model).__name__]
    model.config.save_pretrained(out)
    if model.can_generate():
        model.generation_config.save_pretrained(out)
    state = remove_tied_weights_from_state_dict(model.state_dict(), model)
    save_file({k: v.contiguous() for k, v in state.items()}, os.path.join(out, "model.safetensors"),
              metadata={"format": "pt"})
    tokenizer.save_pretrained(out)


def replace_dir(tmp: str, out: str) -> None:
    """Move the finished folder ``tmp`` to ``out``, replacing an existing ``out`` with two renames (never half-written)."""
    if os.path.exists(out):
        old = tmp + ".old"
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old)
    else:
        os.replace(tmp, out)
