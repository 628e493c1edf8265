"""Reward file for OpenRLHF: ``--reward.remote_url /path/to/rspo_patch/openrlhf/reward_func.py``.

OpenRLHF 0.11.2 loads this file with ``importlib.util.spec_from_file_location`` inside every vLLM engine actor and calls
``reward_func(queries, prompts, labels)`` once per generated response (lists of length 1, from a worker thread).
``queries`` are ``tokenizer.decode(prompt_ids + response_ids, skip_special_tokens=False)``, ``prompts`` the prompt
strings, ``labels`` the dataset's ``--data.label_key`` values (the gold answers). The response is recovered by removing
the prompt prefix and trailing special tokens, then graded by the project's one grader, ``rspo_core.grading``.

Environment (the launcher puts these in Ray's runtime_env, so every worker sees them):

  RSPO_REWARD          pass (default): 1 if correct else 0.
                       max: ``rspo_core.rewards.max_reward`` = 1 - 0.5 * num_tokens / max_new_tokens if correct else 0
                       (the paper's §5.5 length-penalised reward).
  RSPO_MAX_NEW_TOKENS  max_new_tokens of the length penalty (the launcher copies --rollout.max_new_tokens); required
                       for max.
  RSPO_TOKENIZER       tokenizer (local folder or hub id already in the cache; the launcher uses the actor model) used
                       to count response tokens by re-encoding the response text, for the PROVISIONAL max reward.
                       Without one, or if it fails to load, the count is the character proxy ceil(len(response) / 4)
                       and ``rspo_token_proxy`` is logged 1.
  RSPO_GRADE_FALLBACK  answer-extraction fallback of the grader (config ``grader.fallback``: last_number, or empty /
                       none for boxed answers only); the train rule sets it.
  RSPO_GRADE_TIMEOUT   seconds per answer comparison (config ``grader.timeout_s``; default 5); the train rule sets it.

Truncation and the token count of the max reward: OpenRLHF 0.11.2 passes the reward function only
``(queries, prompts, labels)``; vLLM's ``finish_reason`` reaches ``Experience.truncated`` and the generated token count
``Experience.response_length``. ``RSPOExperienceMaker.apply_engine_verdicts`` (experience.py) recomputes every reward
from ``rspo_correct`` (this file's verdict on the text) and those engine values: a truncated response is incorrect,
as in evaluation, and the max reward uses the engine's count. Nothing here guesses truncation from the text.

Never returns None and never raises: OpenRLHF swallows a reward-function exception and the reward becomes None,
which crashes training later. Any failure while grading one response gives reward 0 and ``rspo_grade_error`` = 1.
Returned: ``{"rewards": (B,), "scores": (B,), "extra_logs": {...}}`` float tensors; ``scores`` is the 0/1 correctness
(what ``--algo.dynamic_filtering_enable`` filters on). extra_logs (logged by OpenRLHF as train/<name>):
``rspo_correct``, ``rspo_grade_error``, ``rspo_grade_timeout``, ``rspo_num_tokens``, ``rspo_token_proxy``.
Called from OpenRLHF's reward threads, rspo_core.grading compares answers that need math-verify in a persistent grading
worker process with a hard deadline (RSPO_GRADE_TIMEOUT); a timeout gives reward 0 and ``rspo_grade_timeout`` = 1.
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading

import torch

from rspo_core.grading import DEFAULT_TIMEOUT_S, check_fallback, grade_result
from rspo_core.rewards import REWARD_KINDS, max_reward, pass_reward

logger = logging.getLogger("rspo_patch.openrlhf.reward_func")

_TRAILING_SPECIAL = re.compile(r"(?:\s*(?:<\|[^<>|\s]{1,64}\|>|</s>|<eos>|<pad>))+\s*$")
_tokenizer_lock = threading.Lock()
_encode_lock = threading.Lock()
_tokenizer_cache: dict[str, object] = {}


def reward_kind(environ=None) -> str:
    """RSPO_REWARD (default pass); ValueError for anything but pass / max."""
    environ = os.environ if environ is None else environ
    kind = environ.get("RSPO_REWARD", "pass").strip().lower()
    if kind not in REWARD_KINDS:
        raise ValueError(f"RSPO_REWARD={kind!r}; expected one of {', '.join(REWARD_KINDS)}")
    return kind


def max_new_tokens_from_env(environ=None) -> int | None:
    """RSPO_MAX_NEW_TOKENS as a positive int, None if unset; ValueError if malformed."""
    environ = os.environ if environ is None else environ
    raw = environ.get("RSPO_MAX_NEW_TOKENS", "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"RSPO_MAX_NEW_TOKENS must be a positive int, got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"RSPO_MAX_NEW_TOKENS must be a positive int, got {value}")
    return value


def extract_response(query: str, prompt: str | None) -> str:
    """The generated text of ``query`` (= decoded prompt + response): prompt prefix and trailing special tokens removed.

    If the decoded prompt differs from ``prompt`` (tokenizer round trip), the text after the last occurrence of the
    prompt's final 64 characters is used; failing that, the whole query.
    """
    text = query
    if prompt:
        if query.startswith(prompt):
            text = query[len(prompt):]
        else:
            tail = prompt[-64:]
            pos = query.rfind(tail)
            if pos >= 0:
                text = query[pos + len(tail):]
    return _TRAILING_SPECIAL.sub("", text)


def _load_tokenizer(name: str):
    with _tokenizer_lock:
        if name not in _tokenizer_cache:
            try:
                from transformers import AutoTokenizer

                _tokenizer_cache[name] = AutoTokenizer.from_pretrained(name)
            except Exception as err:  # noqa: BLE001 - fall back to the character proxy, logged once
                logger.warning("RSPO_TOKENIZER=%s could not be loaded (%s); counting tokens as ceil(chars/4)",
                               name, err)
                _tokenizer_cache[name] = None
        return _tokenizer_cache[name]


def count_tokens(response: str, environ=None) -> tuple[int, bool]:
    """(number of response tokens, exact?) via RSPO_TOKENIZER, else (ceil(len(response) / 4), False)."""
    environ = os.environ if environ is None else environ
    name = environ.get("RSPO_TOKENIZER", "").strip()
    tokenizer = _load_tokenizer(name) if name else None
    if tokenizer is not None:
        with _encode_lock:  # OpenRLHF calls reward_func from several threads; a fast tokenizer is not re-entrant
            return len(tokenizer(response, add_special_tokens=False)["input_ids"]), True
    return math.ceil(len(response) / 4), False


def score_one(query: str, prompt: str | None, label, *, kind: str, max_new_tokens: int | None,
              fallback: str | None = None, timeout: float = DEFAULT_TIMEOUT_S, environ=None) -> dict[str, float]:
    """Reward of one response; raises on any grading failure (``reward_func`` turns that into reward 0)."""
    if label is None:
        raise ValueError("label (gold answer) is None: set --data.label_key to the answer column")
    response = extract_response(query, prompt)
    num_tokens, exact = count_tokens(response, environ)
    finish_reason = None  # the engine's finish reason is applied by RSPOExperienceMaker.apply_engine_verdicts
    result = grade_result(response, str(label), fallback=fallback, finish_reason=finish_reason, timeout=timeout)
    correct = bool(result.correct)
    if result.status == "error":
        raise RuntimeError(f"the grader could not compare the answer {result.extracted!r} with {label!r}")
    timed_out = result.status == "timeout"
    if kind == "pass":
        value = pass_reward(correct)
    else:
        if max_new_tokens is None:
            raise ValueError("RSPO_REWARD=max needs RSPO_MAX_NEW_TOKENS")
        value = max_reward(correct, num_tokens, max_new_tokens)
    return {"reward": value, "correct": float(correct), "num_tokens": float(num_tokens), "proxy": float(not exact),
            "timeout": float(timed_out)}


def grade_fallback_from_env(environ=None) -> str | None:
    """RSPO_GRADE_FALLBACK as the grader's fallback (unset, empty or "none" -> None); ValueError if unknown."""
    environ = os.environ if environ is None else environ
    raw = environ.get("RSPO_GRADE_FALLBACK", "").strip()
    try:
        return check_fallback(raw or None)
    except ValueError as e:
        raise ValueError(f"RSPO_GRADE_FALLBACK={raw!r}: {e}") from None


def grade_timeout_from_env(environ=None) -> float:
    """RSPO_GRADE_TIMEOUT as seconds > 0 (unset or empty -> DEFAULT_TIMEOUT_S); ValueError if malformed."""
    environ = os.environ if environ is None else environ
    raw = environ.get("RSPO_GRADE_TIMEOUT", "").strip()
    if not raw:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"RSPO_GRADE_TIMEOUT must be a positive number of seconds, got {raw!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"RSPO_GRADE_TIMEOUT must be a positive number of seconds, got {raw!r}")
    return value


def reward_func(queries, prompts, labels, **kwargs) -> dict:
    """OpenRLHF's remote reward function: one reward per query, never None (errors -> 0, counted)."""
    environ = os.environ
    kind = reward_kind(environ)
    max_new = max_new_tokens_from_env(environ)
    fallback = grade_fallback_from_env(environ)
    timeout = grade_timeout_from_env(environ)
    queries = list(queries)
    prompts = list(prompts) if prompts is not None else [None] * len(queries)
    labels = list(labels) if labels is not None else [None] * len(queries)
    rows = []
    for query, prompt, label in zip(queries, prompts + [None] * (len(queries) - len(prompts)),
                                    labels + [None] * (len(queries) - len(labels))):
        try:
            row = score_one(str(query), prompt, label, kind=kind, max_new_tokens=max_new, fallback=fallback,
                            timeout=timeout, environ=environ)
            row["error"] = 0.0
        except Exception as err:  # noqa: BLE001 - a reward of None would crash OpenRLHF later
            logger.warning("reward_func: grading failed (%s: %s); reward 0", type(err).__name__, err)
            row = {"reward": 0.0, "correct": 0.0, "num_tokens": 0.0, "proxy": 0.0, "timeout": 0.0, "error": 1.0}
        rows.append(row)

    def column(key):
        return torch.tensor([row[key] for row in rows], dtype=torch.float32)

    return {
        "rewards": column("reward"),
        "scores": column("correct"),
        "extra_logs": {
            "rspo_correct": column("correct"),
            "rspo_grade_error": column("error"),
            "rspo_grade_timeout": column("timeout"),
            "rspo_num_tokens": column("num_tokens"),
            "rspo_token_proxy": column("proxy"),
        },
    }


# fail at load time (loudly, when the vLLM engine starts) rather than return 0 for every response
_KIND_AT_LOAD = reward_kind()
grade_fallback_from_env()
grade_timeout_from_env()
if _KIND_AT_LOAD == "max" and max_new_tokens_from_env() is None:
    raise ValueError("RSPO_REWARD=max needs RSPO_MAX_NEW_TOKENS (the launcher sets it from --rollout.max_new_tokens)")
