"""Exact (rational-friendly) quantities for discrete reward distributions: the paper's analytic examples.

All functions accept Python ``fractions.Fraction`` (exact) or floats.
"""

from __future__ import annotations

from typing import Sequence


def prob_is_max(p_less, p_item, p_le, k: int):
    """Theorem 4.1: probability that a given response y is drawn among k iid samples AND attains their maximum.

    P = sum_{i=1}^k P_<(y)^(i-1) * pi(y) * P_<=(y)^(k-i)
    p_less = P(R < R(y)), p_item = pi(y), p_le = P(R <= R(y)).
    Figure 3: three dice, y = "4": prob_is_max(3/6, 1/6, 4/6, 3) = 37/216.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return sum(p_less ** (i - 1) * p_item * p_le ** (k - i) for i in range(1, k + 1))


def expected_max(values: Sequence, probs: Sequence, k: int):
    """E[max(R_1, ..., R_k)] for k iid draws from the discrete distribution P(R = values[j]) = probs[j].

    Order statistics: sum over distinct values v ascending of v * (F(v)^k - F(v^-)^k), F the CDF.
    Figure 1: pi_A = {6: 1} gives 6 at k = 2; pi_B = {0: 1/2, 10: 1/2} gives 7.5.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if len(values) != len(probs) or not values:
        raise ValueError(f"values and probs must be non-empty and of equal length, got {len(values)} and {len(probs)}")
    if any(p < 0 for p in probs) or abs(float(sum(probs)) - 1.0) > 1e-12:
        raise ValueError(f"probs must be a probability vector, got {list(probs)}")
    total = {}
    for v, p in zip(values, probs):
        total[v] = total.get(v, 0) + p
    out, cdf_prev = 0, 0
    for v in sorted(total):
        cdf = cdf_prev + total[v]
        out += v * (cdf ** k - cdf_prev ** k)
        cdf_prev = cdf
    return out
