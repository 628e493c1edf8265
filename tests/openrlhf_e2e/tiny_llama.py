"""A tiny random Llama built locally for the OpenRLHF CPU tier (no download): byte-level BPE tokenizer trained on
arithmetic strings ("12+7=19"), a chat template (the xVerify judge renders its prompt with one), and a 2-layer
Llama with random weights in bfloat16 (the dtype OpenRLHF's DeepSpeed actor and vLLM share for the weight sync).

A short supervised warm-up on one-digit sums ("3+4=7</s>", ``warmup_steps`` Adam steps, a few seconds) makes some of
its answers right and most of them end with EOS, so RL rewards differ within a group, the estimators give non-zero
weights and the policy really moves between steps (with all-zero rewards every weight is 0, nothing is updated, and
a weight sync would be checked against unchanged weights). The tier checks plumbing, not accuracy.
"""

from __future__ import annotations

import random
from pathlib import Path

CHAT_TEMPLATE = (
    "{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant: {% endif %}"
)


def build_tiny_llama(out: Path, *, seed: int = 0, hidden: int = 128, layers: int = 2, warmup_steps: int = 120) -> Path:
    """Write tokenizer + config + weights to ``out`` (an HF folder); returns ``out``.

    Shape: vocab 384 (BPE), hidden ``hidden``, 2 heads of 64, MLP 2*hidden, ``layers`` layers, untied embeddings,
    max_position_embeddings 4096 (room for the xVerify judge prompt, ~1 token per character with this
    vocabulary): ~0.4M parameters at the defaults. Random init, then ``warmup_steps`` steps of
    next-token training on "a+b=c</s>" (a, b in 0..9; loss on the whole line, batch 32, lr 6e-3).
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    rng = random.Random(seed)
    texts = []
    for _ in range(3000):
        a, b = rng.randint(0, 99), rng.randint(0, 99)
        op = rng.choice("+-*")
        texts.append(f"{a}{op}{b}={eval(f'{a}{op}{b}')} user: assistant: Correct Incorrect")
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=384, special_tokens=["<pad>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    hf_tok.chat_template = CHAT_TEMPLATE
    out = Path(out)
    hf_tok.save_pretrained(out)
    cfg = LlamaConfig(vocab_size=len(hf_tok), hidden_size=hidden, intermediate_size=2 * hidden,
                      num_hidden_layers=layers, num_attention_heads=2, num_key_value_heads=2, head_dim=64,
                      max_position_embeddings=4096, bos_token_id=hf_tok.bos_token_id,
                      eos_token_id=hf_tok.eos_token_id, pad_token_id=hf_tok.pad_token_id, tie_word_embeddings=False,
                      torch_dtype="bfloat16")
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg)
    _warm_up(model, hf_tok, steps=warmup_steps, seed=seed)
    model.to(torch.bfloat16).save_pretrained(out)
    return out


def _warm_up(model, tok, *, steps: int, seed: int) -> None:
    """``steps`` Adam steps of causal-LM loss on random one-digit sums "a+b=c" + EOS (no BOS: prompts are encoded without one), in float32."""
    import torch

    if steps <= 0:
        return
    rng = random.Random(seed + 1)
    opt = torch.optim.Adam(model.parameters(), lr=6e-3)
    model.train()
    for _ in range(steps):
        lines = []
        for _ in range(32):
            a, b = rng.randint(0, 9), rng.randint(0, 9)
            lines.append(f"{a}+{b}={a + b}{tok.eos_token}")
        batch = tok(lines, return_tensors="pt", padding=True, add_special_tokens=False)
        labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        loss = model(**batch, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
