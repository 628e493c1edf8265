'''The xVerify judge (IAAR-Shanghai, arXiv 2504.10481): an LLM fine-tuned to read (question, output, correct answer)
and reply "Correct" or "Incorrect", served with vLLM. Weights are loaded BY LOCAL PATH (CC-BY-NC-ND; never
downloaded or vendored here).

Fidelity to the official repository (github.com/IAAR-Shanghai/xVerify, commit 5e3606a; read, not vendored):
- prompt: xVerify models were fine-tuned on one exact user message, ``src/xVerify/prompts/judge_prompt.py``;
  :data:`JUDGE_TEMPLATE` is that text, and :func:`build_judge_prompt` fills its three fields unchanged, as the
  official ``Evaluator`` does with ``str.format(question=, output=, answer=)``;
- chat: the official API path sends it as the single user message of a chat request (the server applies the model's
  chat template with the generation prompt): :func:`render_chat` does the same with the model's own tokenizer;
- reply: the official ``Evaluator.stat_results`` takes ``reply.strip().lower()`` and counts it only when it is exactly
  "correct" or "incorrect"; anything else is not valid (and not correct): :func:`parse_judge_label`.
Ours differs in one place only: an output too long for the judge's context keeps its end (where the final answer is),
prefixed by "[...] " (the official code sends it whole and fails).
'''

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

XVERIFY_LABELS = ("Correct", "Incorrect", "invalid")

# The official judge prompt (src/xVerify/prompts/judge_prompt.py, PROMPT), byte for byte; fields {question},
# {output}, {answer}. Do not edit: the models were trained on this text.
JUDGE_TEMPLATE = (
    "You are a diligent and precise assistant tasked with evaluating the correctness of responses. You will receive "
    "a question, an output sentence, and the correct answer. Your task is to determine if the output sentence "
    "accurately answers the question based on the provided correct answer. Respond with either [Correct] or "
    "[Incorrect].\n"
    "-\n"
    "Special considerations:\n"
    "\n"
    "1. **Multiple Answers**: If the output contains multiple answers, evaluate whether later answers modify or "
    "correct earlier ones. In such cases, compare the final answer with the correct answer. If the final answer is "
    "unclear or incorrect, respond with [Incorrect].\n"
    "\n"
    "2. **Mathematical Problems**: If the formats differ but the answers are mathematically equivalent, respond with "
    "[Correct].\n"
    "\n"
    "3. **Explicit Options**: If the question provides explicit candidate answers, the output will be considered "
    "correct if it clearly indicates the correct option's code or the correct option's content.\n"
    "\n"
    "4. **No Explicit Options**: If the question does not provide explicit options, the output must align with the "
    "correct answer in content and meaning to be considered [Correct].\n"
    "-\n"
    "\n"
    'Question: """{question}"""\n'
    "\n"
    'Output sentence: """{output}"""\n'
    "\n"
    "Correct answer: {answer}\n"
    "\n"
    "Judgement:\n"
)


def build_judge_prompt(question: str, output: str, gold: str, *, max_output_chars: int = 12_000) -> str:
    """The official xVerify user message for one (question, output, correct answer); fields inserted unchanged.

    Outputs longer than ``max_output_chars`` keep their last ``max_output_chars`` characters, prefixed by "[...] ".
    """
    if max_output_chars < 1:
        raise ValueError(f"max_output_chars must be >= 1, got {max_output_chars}")
    for name, v in (("question", question), ("output", output), ("gold", gold)):
        if not isinstance(v, str):
            raise ValueError(f"{name} must be a str, got {type(v).__name__}")
    if len(output) > max_output_chars:
        output = "[...] " + output[-max_output_chars:]
    return JUDGE_TEMPLATE.format(question=question, output=output, answer=gold)


def parse_judge_label(text: str | None) -> str:
    """'Correct' / 'Incorrect' when the reply, stripped and lower-cased, is exactly 'correct' / 'incorrect' (the
    official rule); anything else 'invalid' (counted as incorrect by the file stage)."""
    t = (text or "").strip().lower()
    if t == "correct":
        return "Correct"
    if t == "incorrect":
        return "Incorrect"
    return "invalid"


def render_chat(tokenizer, user_message: str) -> str:
    """The judge prompt through the model's own chat template (one user turn, generation prompt appended)."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("the xVerify model's tokenizer has no chat_template; xVerify models ship one")
    return tokenizer.apply_chat_template([{"role": "user", "content": user_message}], tokenize=False,
                                         add_generation_prompt=True)


def fit_judge_prompt(tokenizer, question: str, output: str, gold: str, *, max_prompt_tokens: int,
                     max_output_chars: int = 12_000) -> str:
    """Chat-formatted judge prompt of at most ``max_prompt_tokens`` tokens: the output's kept tail is halved until
    it fits (down to 256 characters; a question too long even then is returned as is and vLLM reports it)."""
    if max_prompt_tokens < 1:
        raise ValueError(f"max_prompt_tokens must be >= 1, got {max_prompt_tokens}")
    chars = max_output_chars
    while True:
        text = render_chat(tokenizer, build_judge_prompt(question, output, gold, max_output_chars=chars))
        if chars <= 256 or len(tokenizer.encode(text, add_special_tokens=False)) <= max_prompt_tokens:
            return text
        chars //= 2


class XVerifyJudge:
    """xVerify as a grader: greedy decoding of ``max_tokens`` new tokens per prompt with vLLM.

    >>> judge = XVerifyJudge("/models/xVerify-0.5B-I")          # doctest: +SKIP
    >>> judge.judge(["1+1?"], ["... so \\\\boxed{2}"], ["2"])      # doctest: +SKIP
    ['Correct']
    """

    def __init__(self, model_path: str | os.PathLike, *, tensor_parallel_size: int = 1,
                 gpu_memory_utilization: float = 0.85, max_model_len: int = 8192, max_tokens: int = 16,
                 temperature: float = 0.0, seed: int = 0, max_output_chars: int = 12_000, dtype: str = "auto",
                 **llm_kwargs):
        path = Path(model_path)
        if not path.is_dir() or not (path / "config.json").is_file():
            raise ValueError(f"xVerify model_path {str(model_path)!r} is not a local model folder with config.json; "
                             "download the weights yourself and pass their directory")
        try:
            from vllm import LLM, SamplingParams
        except ImportError as e:
            raise ImportError("the xVerify verifier needs vLLM (`pip install -e '.[gpu]'` on a GPU machine); "
                              "use --verifier math-verify otherwise") from e
        self.model_path = str(path)
        self.max_output_chars = max_output_chars
        self.max_prompt_tokens = max_model_len - max_tokens
        self.llm = LLM(model=self.model_path, tensor_parallel_size=tensor_parallel_size,
                       gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len, seed=seed,
                       dtype=dtype, **llm_kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        # skip_special_tokens: the official local path decodes the reply with skip_special_tokens=True
        self.sampling = SamplingParams(temperature=temperature, max_tokens=max_tokens, n=1, seed=seed,
                                       skip_special_tokens=True)

    def prompts(self, questions: Sequence[str], outputs: Sequence[str], golds: Sequence[str]) -> list[str]:
        """Chat-formatted judge prompts, one per (question, output, gold)."""
        if not (len(questions) == len(outputs) == len(golds)):
            raise ValueError(f"questions/outputs/golds lengths differ: {len(questions)}, {len(outputs)}, {len(golds)}")
        return [fit_judge_prompt(self.tokenizer, q, o, g, max_prompt_tokens=self.max_prompt_tokens,
                                 max_output_chars=self.max_output_chars)
                for q, o, g in zip(questions, outputs, golds)]

    def judge(self, questions: Sequence[str], outputs: Sequence[str], golds: Sequence[str]) -> list[str]:
        """Labels in XVERIFY_LABELS, one per pair (vLLM batches internally)."""
        prompts = self.prompts(questions, outputs, golds)
        if not prompts:
            return []
        gens = self.llm.generate(prompts, self.sampling, use_tqdm=True)
        return [parse_judge_label(g.outputs[0].text if g.outputs else "") for g in gens]
