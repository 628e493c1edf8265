"""rspo_core.grading.xverify: the official xVerify prompt (pinned), the official reply rule, chat rendering and
fitting with a real tokenizer, the judge's input checks (the vLLM call itself needs the weights and a GPU)."""

from __future__ import annotations

import pytest

import rspo_core.grading as G
from rspo_core.grading import xverify as X

# The official judge prompt of github.com/IAAR-Shanghai/xVerify (src/xVerify/prompts/judge_prompt.py, commit 5e3606a)
# filled by hand for question "What is 1+1?", output "reasoning... so \boxed{2}", correct answer "2": what the
# official Evaluator's PROMPT.format(question=, output=, answer=) produces.
EXPECTED_PROMPT = r'''You are a diligent and precise assistant tasked with evaluating the correctness of responses. You will receive a question, an output sentence, and the correct answer. Your task is to determine if the output sentence accurately answers the question based on the provided correct answer. Respond with either [Correct] or [Incorrect].
-
Special considerations:

1. **Multiple Answers**: If the output contains multiple answers, evaluate whether later answers modify or correct earlier ones. In such cases, compare the final answer with the correct answer. If the final answer is unclear or incorrect, respond with [Incorrect].

2. **Mathematical Problems**: If the formats differ but the answers are mathematically equivalent, respond with [Correct].

3. **Explicit Options**: If the question provides explicit candidate answers, the output will be considered correct if it clearly indicates the correct option's code or the correct option's content.

4. **No Explicit Options**: If the question does not provide explicit options, the output must align with the correct answer in content and meaning to be considered [Correct].
-

Question: """What is 1+1?"""

Output sentence: """reasoning... so \boxed{2}"""

Correct answer: 2

Judgement:
'''  # noqa: E501


INSTRUCTION = EXPECTED_PROMPT.split('Question: """')[0]  # everything before the fields


def test_judge_prompt_is_the_official_one():
    assert X.build_judge_prompt("What is 1+1?", "reasoning... so \\boxed{2}", "2") == EXPECTED_PROMPT


def test_judge_prompt():
    p = X.build_judge_prompt("What is 1+1?", "reasoning... so \\boxed{2}", "2")
    assert p.startswith(INSTRUCTION)
    assert 'Question: """What is 1+1?"""' in p and 'Output sentence: """reasoning... so \\boxed{2}"""' in p
    assert "Correct answer: 2" in p and p.endswith("Judgement:\n")
    # fields are inserted unchanged (the official str.format), braces and surrounding spaces included
    assert 'Question: """ {a} """' in X.build_judge_prompt(" {a} ", "o", "g")
    long = X.build_judge_prompt("q", "x" * 100 + "FINAL", "a", max_output_chars=10)
    assert "[...] xxxxxFINAL" in long and "x" * 11 not in long
    with pytest.raises(ValueError):
        X.build_judge_prompt("q", None, "a")


# The official rule (Evaluator.stat_results): reply.strip().lower() must be exactly "correct" / "incorrect". Grader 1.0
# also accepted a final period, quotes and markdown (" correct.", "**Incorrect**", "'Correct'", "incorrect!"); the
# official code counts those as not valid, and so do we now (expected labels changed with GRADER_VERSION 1.1).
@pytest.mark.parametrize("reply,label", [
    ("Correct", "Correct"), ("Incorrect", "Incorrect"), (" correct.\n", "invalid"), ("**Incorrect**", "invalid"),
    ("'Correct'", "invalid"), ("The answer is correct", "invalid"), ("Correct Incorrect", "invalid"), ("", "invalid"),
    ("Yes", "invalid"), ("incorrect!", "invalid"), (" correct\n", "Correct"), ("INCORRECT", "Incorrect"),
    ("[Correct]", "invalid"), (None, "invalid"),
])
def test_judge_label(reply, label):
    assert X.parse_judge_label(reply) == label


def test_render_and_fit_with_a_real_tokenizer():
    """A real transformers tokenizer with a chat template (built in memory: no hub access here)."""
    tokenizers = pytest.importorskip("tokenizers")
    transformers = pytest.importorskip("transformers")
    vocab = {"[UNK]": 0, "<|im_start|>": 1, "<|im_end|>": 2, "x": 3}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", chat_template=template)
    text = X.render_chat(fast, X.build_judge_prompt("q?", "out", "ans"))
    assert text.startswith("<|im_start|>user\n" + INSTRUCTION) and text.endswith("<|im_start|>assistant\n")
    # a long output is cut from the front until the prompt fits; the final answer at the end survives
    long_out = " ".join(["x"] * 5000) + " so the answer is \\boxed{7}"
    short = X.fit_judge_prompt(fast, "q?", long_out, "7", max_prompt_tokens=1000)
    assert len(fast.encode(short, add_special_tokens=False)) <= 1000 and "\\boxed{7}" in short
    assert X.fit_judge_prompt(fast, "q?", "tiny", "7", max_prompt_tokens=1000) == X.render_chat(
        fast, X.build_judge_prompt("q?", "tiny", "7"))
    fast.chat_template = None
    with pytest.raises(ValueError, match="chat_template"):
        X.render_chat(fast, "x")


def test_xverify_judge_needs_a_local_folder_and_vllm(tmp_path):
    with pytest.raises(ValueError, match="local model folder"):
        X.XVerifyJudge(tmp_path / "missing")
    (tmp_path / "config.json").write_text("{}")
    try:
        import vllm  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="vLLM"):
            X.XVerifyJudge(tmp_path)
    else:
        pytest.skip("vLLM is installed: loading a model needs real xVerify weights")


def test_grader_version_is_documented():
    assert isinstance(G.GRADER_VERSION, str) and f"\n{G.GRADER_VERSION}  " in G.__doc__
