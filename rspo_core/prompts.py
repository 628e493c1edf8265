"""Prompt templates shared by evaluation (analysis.generate), the reference trainer and the lm-eval tasks.

One place decides how a question becomes a prompt, so training and evaluation of a cell always agree.

Templates
---------
qwen_math_cot  Qwen2.5-Math chain-of-thought chat format (the field's convention for Qwen2.5-Math; the paper's setup):
               system "Please reason step by step, and put your final answer within \\boxed{}."
chat           the tokenizer's own chat template with the same system instruction (e.g. SmolLM2-Instruct)
chat_answer    the tokenizer's own chat template with system "Answer with the final number only." — for small instruct
               models on arithmetic: SmolLM2-135M-Instruct solves one-digit + and * with pass@1 0.038 / pass@8 0.238 this
               way (T=1, 12 new tokens), against none of 40 sums under the CoT instruction (docs/training.md), so RL
               has a signal to amplify
plain          "{question}=" for the char-level tiny model trained from scratch on arithmetic; the answer follows "="
"""

from __future__ import annotations

SYSTEM_COT = "Please reason step by step, and put your final answer within \\boxed{}."

QWEN_MATH_COT = (
    "<|im_start|>system\n" + SYSTEM_COT + "<|im_end|>\n"
    "<|im_start|>user\n{question}<|im_end|>\n"
    "<|im_start|>assistant\n"
)

SYSTEM_ANSWER = "Answer with the final number only."

TEMPLATES = ("qwen_math_cot", "chat", "chat_answer", "plain")
CHAT_TEMPLATES = {"chat": SYSTEM_COT, "chat_answer": SYSTEM_ANSWER}  # template -> its system message


def format_prompt(question: str, template: str = "qwen_math_cot", tokenizer=None) -> str:
    """Return the prompt string for one question.

    ``chat`` and ``chat_answer`` need a tokenizer with a chat template; the other templates need none.
    Raises ValueError for an unknown template or a chat request without a usable tokenizer.
    """
    if template == "qwen_math_cot":
        return QWEN_MATH_COT.replace("{question}", question)
    if template == "plain":
        return f"{question}="
    if template in CHAT_TEMPLATES:
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise ValueError(f"template {template!r} needs a tokenizer with a chat_template; use 'qwen_math_cot' or "
                             "'plain'")
        messages = [{"role": "system", "content": CHAT_TEMPLATES[template]}, {"role": "user", "content": question}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    raise ValueError(f"unknown prompt template {template!r}; expected one of {', '.join(TEMPLATES)}")


def adds_special_tokens(template: str) -> bool:
    """Whether the tokenizer should add its special tokens (BOS, ...) when encoding a prompt of ``template``: not for
    the chat templates, whose rendered text already carries them."""
    return template not in CHAT_TEMPLATES


_SLOT = "@@RSPO_QUESTION@@"


def str_format_template(template: str, tokenizer=None) -> str:
    """The prompt of ``template`` as a ``str.format`` pattern with one positional slot ``{}`` for the question.

    This is what OpenRLHF's ``--data.input_template`` expects (it calls ``input_template.format(question)``):
    ``str_format_template(t, tok).format(q) == format_prompt(q, t, tok)`` for every question q. Literal braces (the
    ``\\boxed{}`` of the CoT instruction) are doubled. Chat templates need the tokenizer, as in ``format_prompt``.
    """
    text = format_prompt(_SLOT, template, tokenizer)
    if text.count(_SLOT) != 1:
        raise ValueError(f"template {template!r} rendered the question {text.count(_SLOT)} times; expected once")
    return text.replace("{", "{{").replace("}", "}}").replace(_SLOT, "{}")
