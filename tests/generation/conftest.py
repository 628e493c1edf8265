"""Fixtures for the generation tests: a tiny random Llama with a real char-level HF tokenizer, built offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

CHARS = list("0123456789+-*/=(). abcdefghijklmnopqrstuvwxyz?,\\{}")
SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]


def build_tiny_model(out_dir: Path, *, seed: int = 0, chat_template: str | None = None) -> Path:
    """Save a 2-layer LlamaForCausalLM (d=128, head_dim 64 as vLLM's kernels need; random weights) and a char-level
    PreTrainedTokenizerFast to ``out_dir``."""
    import torch
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(SPECIALS + CHARS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")  # one token per character
    tok.decoder = decoders.Fuse()  # decode without spaces between characters
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>")
    if chat_template:
        fast.chat_template = chat_template
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
                         bos_token_id=1, eos_token_id=2, pad_token_id=0, tie_word_embeddings=False)
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # larger logits than the 0.02-std init, so samples differ visibly between seeds
        model.lm_head.weight.mul_(5.0)
    model.save_pretrained(out_dir)
    fast.save_pretrained(out_dir)
    return out_dir


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny_model"))


@pytest.fixture()
def problems(tmp_path) -> Path:
    rows = [{"id": f"p{i}", "question": f"{i}+{i + 1}", "answer": str(2 * i + 1), "meta": {"tier": 1}}
            for i in range(5)]
    return write_rows(tmp_path / "data.jsonl", rows)
