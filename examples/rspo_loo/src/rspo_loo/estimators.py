"""RSPO's Pass@k weight minus an RLOO-style leave-one-out baseline: ``rspo_pass_loo``.

RLOO (Kool, van Hoof & Welling 2019, "Buy 4 REINFORCE samples, get a baseline for free!"; Ahmadian et al. 2024,
arXiv 2402.14740) subtracts from each sample's reward the mean reward of the *other* samples of its group. The
baseline does not depend on the sample it is subtracted from, so the gradient stays unbiased, and it removes most of
the reward's common level. Here the same idea is applied to RSPO's Pass@k weight (the paper's Theorem 4.3, the
registry's ``rspo_pass``), whose mean is k p (1 - p)^(k-1) for a success rate p:

    w_i = k C(n - c, k - 1) / C(n - 1, k - 1) R_i  -  k p_i (1 - p_i)^(k - 1),    p_i = (c - R_i) / (n - 1)

with c the number of correct responses of the group and p_i the success rate of the other n - 1 responses. The
baseline is a function of the other responses only, so E[(1/n) sum_i w_i grad log pi(y_i)] = grad Pass@k exactly
(``python -m rspo_patch.estimators check rspo_pass_loo`` proves it by enumeration). Binary rewards only; n >= 2.
"""

from __future__ import annotations

import torch

from rspo_patch.estimators import get_estimator, register_estimator


@register_estimator(
    "rspo_pass_loo",
    unbiased=True,
    binary_only=True,
    min_n=2,
    description="RSPO Pass@k weight minus the leave-one-out plug-in k p (1-p)^(k-1) of the other responses (RLOO-style)",
)
def rspo_pass_loo(rewards: torch.Tensor, *, k: int) -> torch.Tensor:
    """Weights (P, n) for 0/1 rewards (P, n), float64 in and out (the registry casts)."""
    n = rewards.shape[1]
    rspo = get_estimator("rspo_pass").raw_fn(rewards, k=k)  # the registry's own Theorem 4.3 weight, no second copy
    p_others = (rewards.sum(dim=1, keepdim=True) - rewards) / (n - 1)  # (P, n)
    return rspo - k * p_others * (1.0 - p_others).pow(k - 1)
