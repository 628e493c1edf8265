"""k schedules ("k annealing"): the training k as a function of the step.

One definition, read by the estimator registry (``rspo_patch.estimators``), the cell grammar (``rspo_core.cells``),
both trainers and the config schema (a test checks the schema's enum against :data:`K_SCHEDULES`).
"""

from __future__ import annotations

import math

K_SCHEDULES = ("constant", "linear", "cosine")


def k_schedule(kind: str, k0: int, step: int, total_steps: int) -> int:
    """The training k at ``step`` (0-indexed) of ``total_steps``.

    constant: k0.  linear: k0 -> 1 linearly over training.  cosine: 1 + (k0 - 1) * (1 + cos(pi t)) / 2.
    t = step / (total_steps - 1) in [0, 1]; the result is rounded to the nearest int in [1, k0].
    """
    if kind not in K_SCHEDULES:
        raise ValueError(f"unknown k schedule {kind!r}; expected one of {', '.join(K_SCHEDULES)}")
    if isinstance(k0, bool) or not isinstance(k0, int) or k0 < 1:
        raise ValueError(f"k0 must be an int >= 1, got {k0!r}")
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    if not 0 <= step < total_steps:
        raise ValueError(f"step must be in [0, {total_steps}), got {step}")
    if kind == "constant" or total_steps == 1:
        return k0
    t = step / (total_steps - 1)
    if kind == "linear":
        k = k0 + (1 - k0) * t
    else:
        k = 1 + (k0 - 1) * 0.5 * (1 + math.cos(math.pi * t))
    return int(min(max(round(k), 1), k0))
