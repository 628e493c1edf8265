"""rspo_core.prompts: every template renders the question, chat templates carry their own system message."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from rspo_core.prompts import CHAT_TEMPLATES, SYSTEM_ANSWER, SYSTEM_COT, TEMPLATES, format_prompt

CHATML = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
          "{% if add_generation_prompt %}<|assistant|>{% endif %}")


@pytest.fixture
def chat_tokenizer(tiny_model):
    tok = AutoTokenizer.from_pretrained(tiny_model)
    tok.chat_template = CHATML
    return tok


def test_every_template_is_dispatched(chat_tokenizer):
    for name in TEMPLATES:
        prompt = format_prompt("3+4", name, chat_tokenizer)
        assert "3+4" in prompt, name


def test_plain_and_qwen_math_cot_need_no_tokenizer():
    assert format_prompt("3+4", "plain") == "3+4="
    cot = format_prompt("3+4", "qwen_math_cot")
    assert cot.startswith("<|im_start|>system\n" + SYSTEM_COT) and cot.endswith("<|im_start|>assistant\n")
    assert "<|im_start|>user\n3+4<|im_end|>" in cot


@pytest.mark.parametrize("name, system", [("chat", SYSTEM_COT), ("chat_answer", SYSTEM_ANSWER)])
def test_chat_templates_use_the_tokenizer_template_with_their_system_message(chat_tokenizer, name, system):
    assert CHAT_TEMPLATES[name] == system
    assert format_prompt("3+4", name, chat_tokenizer) == f"<|system|>{system}\n<|user|>3+4\n<|assistant|>"


@pytest.mark.parametrize("name", sorted(CHAT_TEMPLATES))
def test_chat_templates_without_a_chat_tokenizer_fail_clearly(tiny_model, name):
    with pytest.raises(ValueError, match=f"template '{name}' needs a tokenizer with a chat_template"):
        format_prompt("3+4", name)
    tok = AutoTokenizer.from_pretrained(tiny_model)  # the char-level tokenizer has no chat template
    with pytest.raises(ValueError, match="chat_template"):
        format_prompt("3+4", name, tok)


def test_unknown_template_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown prompt template 'alpaca'; expected one of .*chat_answer"):
        format_prompt("3+4", "alpaca")
