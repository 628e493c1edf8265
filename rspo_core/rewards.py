"""Scalar rewards from a grading verdict, shared by both trainers and by analysis.verify.

pass reward: 1 if the answer is correct, else 0 (Pass@k training).
max reward:  1 - 0.5 * num_tokens / max_new_tokens if correct, else 0 (the paper's §5.5 length-penalised reward
             for Max@k: among correct answers, shorter is better; every correct answer still beats every wrong one).
"""

from __future__ import annotations

REWARD_KINDS = ("pass", "max")


def pass_reward(correct: bool) -> float:
    """1.0 for a correct response, 0.0 otherwise."""
    return 1.0 if correct else 0.0


def max_reward(correct: bool, num_tokens: int, max_new_tokens: int) -> float:
    """Length-penalised reward in [0.5, 1] for correct responses, 0 for wrong ones.

    r = 1 - 0.5 * num_tokens / max_new_tokens  if correct else 0; num_tokens is clipped to [0, max_new_tokens].
    """
    if max_new_tokens <= 0:
        raise ValueError(f"max_new_tokens must be positive, got {max_new_tokens}")
    if not correct:
        return 0.0
    frac = min(max(num_tokens, 0), max_new_tokens) / max_new_tokens
    return 1.0 - 0.5 * frac


def reward(kind: str, correct: bool, num_tokens: int = 0, max_new_tokens: int = 1) -> float:
    """Dispatch on the reward kind of a cell ('pass' or 'max')."""
    if kind == "pass":
        return pass_reward(correct)
    if kind == "max":
        return max_reward(correct, num_tokens, max_new_tokens)
    raise ValueError(f"unknown reward kind {kind!r}; expected one of {', '.join(REWARD_KINDS)}")
