"""Slow, readable reference implementations, next to the fast registry functions (tests and benchmarks use them).

``algorithm2_weights`` is the paper's Algorithm 2 (Appendix C, an unbiased Max@k estimator with ties) written as plain
nested loops, O(n^2 k) per group, in exact arithmetic when given Fractions. ``pkpo_*`` transcribe PKPO's Listing 1
(s, b, s^loo, s^(loo-1)) in exact arithmetic; ``maxpo_l2o_weights`` is MaxPO's leave-two-out baseline as plain loops;
``subset_contrast_weights`` enumerates k-subsets. Each is written from its paper's formula, never from the fast code.
"""

import math
from fractions import Fraction


def C(a: int, b: int) -> int:
    """Binomial coefficient, 0 outside 0 <= b <= a."""
    return math.comb(a, b) if 0 <= b <= a else 0


def algorithm2_weights(r, k: int) -> list:
    """Appendix C, Algorithm 2 for one group: the weight on grad log pi(y_i) for each i (g_hat = (1/n) sum_i w_i ...).

    r: sequence of n rewards (Fractions give exact results; floats work too). Returns a list of n weights.

    Two corrections to the printed algorithm, both needed for it to be a sample-based estimator:
    the factor pi(y'|x) on lines 17/19 is dropped (the loop over sampled y' = y_j already averages over pi), and
    line 16's branch condition "if r' = r" (second term) is restored. Lemma C.1's count of ordered (A, B) pairs is used
    as the algorithm prints it (with the C(k-1, t-1) factor).
    """
    n = len(r)
    w = []
    for i in range(n):
        ri = r[i]
        others = [r[j] for j in range(n) if j != i]
        c_lt = sum(1 for x in others if x < ri)
        c_eq = sum(1 for x in others if x == ri)
        g = Fraction(0)
        for t in range(1, k + 1):
            e1 = Fraction(C(c_lt, t - 1) * C(c_lt + c_eq - (t - 1), k - t), C(n - 1, k - 1) * C(k - 1, t - 1))
            g += ri * e1
        for j in range(n):
            if j == i:
                continue
            rj = r[j]
            rest = [r[l] for l in range(n) if l not in (i, j)]
            c2_lt = sum(1 for x in rest if x < rj)
            c2_eq = sum(1 for x in rest if x == rj)
            for t in range(1, k):
                e23 = Fraction(C(c2_lt, t - 1) * C(c2_lt + c2_eq - (t - 1), k - t - 1), C(n - 2, k - 2) * C(k - 2, t - 1))
                if rj == ri:
                    g -= rj * Fraction(t, n - 1) * e23
                elif rj < ri:
                    g -= rj * Fraction(k, n - 1) * e23
        w.append(g)
    return w


# ---------------------------------------------------------------------------------------------------------------------
# PKPO (Walder & Karkhanis 2025, arXiv 2505.15201): Listing 1 in exact arithmetic
#
# Written from the paper's definitions, not from rspo_patch.estimators. Rewards g_1..g_n; the listing sorts them
# ascending, applies the transform and returns the values in the input order. All functions return Fractions when given
# Fractions or ints.


def _argsort(g) -> list[int]:
    return sorted(range(len(g)), key=lambda i: g[i])


def pkpo_rho(g, k: int):
    """PKPO's unbiased max@k estimate from n samples (the continuous rho^(g)): the mean of max(S) over the C(n, k)
    k-subsets S, = (1/C(n, k)) sum_j C(j-1, k-1) g_(j) with g_(1) <= ... <= g_(n)."""
    gs = sorted(g)
    return sum((Fraction(gs[j - 1]) * C(j - 1, k - 1) for j in range(1, len(gs) + 1)), Fraction(0)) / C(len(gs), k)


def pkpo_s(g, k: int) -> list:
    """PKPO's s (no baseline): s = M g / C(n, k) on sorted rewards, M upper triangular with
    m_ii = C(i-1, k-1) (subsets where g_(i) itself is the max) and m_ij = C(j-2, k-2), j > i (subsets that contain
    g_(i) and whose max is g_(j)). Equals (1/C(n, k)) sum over k-subsets S containing i of max(S)."""
    n = len(g)
    order = _argsort(g)
    gs = [Fraction(g[i]) for i in order]
    out = [Fraction(0)] * n
    for a in range(1, n + 1):  # sorted position of the response
        tot = C(a - 1, k - 1) * gs[a - 1] + sum((C(b - 2, k - 2) * gs[b - 1] for b in range(a + 1, n + 1)), Fraction(0))
        out[order[a - 1]] = tot / C(n, k)
    return out


def pkpo_b_literal(g, k: int) -> list:
    """Listing 1's b: b_i = sum_{j != i} s_j(batch without i), by calling ``pkpo_s`` on each leave-one-out batch."""
    out = []
    for i in range(len(g)):
        rest = [g[j] for j in range(len(g)) if j != i]
        out.append(sum(pkpo_s(rest, k), Fraction(0)))
    return out


def pkpo_b(g, k: int) -> list:
    """The same b via sum_j s_j = k rho (each k-subset is counted once per member): b_i = k rho(batch without i).
    O(n^2) instead of O(n^3); ``pkpo_b_literal`` is the check (tests)."""
    return [k * pkpo_rho([g[j] for j in range(len(g)) if j != i], k) for i in range(len(g))]


def pkpo_sloo(g, k: int) -> list:
    """Eq. 29 / Listing 1: s^loo = s - b / (n - 1). Needs n > k."""
    n = len(g)
    if not 1 <= k < n:
        raise ValueError(f"s^loo needs 1 <= k < n, got k={k}, n={n}")
    return [s - b / (n - 1) for s, b in zip(pkpo_s(g, k), pkpo_b(g, k))]


def pkpo_sloo_minus_one(g, k: int) -> list:
    """Eq. 33 / Listing 1: s^(loo-1) = s - b^(k-1) k / ((k - 1) n), b^(k-1) the b of the (k-1) transform. k >= 2."""
    n = len(g)
    if not 2 <= k <= n:
        raise ValueError(f"s^(loo-1) needs 2 <= k <= n, got k={k}, n={n}")
    return [s - b * Fraction(k, (k - 1) * n) for s, b in zip(pkpo_s(g, k), pkpo_b(g, k - 1))]


# ---------------------------------------------------------------------------------------------------------------------
# MaxPO (Takashiro et al. 2026, arXiv 2606.06080): the leave-two-out baseline as plain loops
#
# The paper's text was not reachable from this project's tools; the definition below is the one docs/estimators.md
# derives (and states): RSPO's / PKPO s^(loo-1)'s advantage a_i, minus the mean over j != i of a_j recomputed on the
# batch without i.


def rspo_advantage(g, i: int, k: int):
    """a_i = k E_T[(g_i - max T)^+], T a uniformly random (k-1)-subset of the other responses (k = 1: a_i = g_i).

    With the others sorted ascending o_(1..m), P(max T = o_(q)) = C(q-1, k-2) / C(m, k-1) (ties: any order)."""
    if k == 1:
        return Fraction(g[i])
    others = sorted(Fraction(g[j]) for j in range(len(g)) if j != i)
    m = len(others)
    gi = Fraction(g[i])
    return k * sum((Fraction(C(q - 1, k - 2), C(m, k - 1)) * max(gi - others[q - 1], 0) for q in range(1, m + 1)),
                   Fraction(0))


def maxpo_l2o_weights(g, k: int) -> list:
    """MaxPO weights (times n, our convention) by the leave-two-out loops, O(n^3 log n) per group; needs n > k.

    w_i = a_i - (1/(n-1)) sum_{j != i} a_j(batch without i): the baseline of i never sees y_i."""
    n = len(g)
    if not 1 <= k < n:
        raise ValueError(f"MaxPO needs 1 <= k < n, got k={k}, n={n}")
    out = []
    for i in range(n):
        rest = [g[j] for j in range(n) if j != i]
        base = sum((rspo_advantage(rest, j, k) for j in range(n - 1)), Fraction(0)) / (n - 1)
        out.append(rspo_advantage(g, i, k) - base)
    return out


def subset_contrast_weights(g, k: int) -> list:
    """k [mean of max(S) over k-subsets S containing i - mean of max(S) over k-subsets not containing i], by
    enumerating the subsets (small n only): the plug-in of the population advantage k (Q(y_i) - J_k),
    Q(y) = E[max(R(y), R_2, ..., R_k)]. Needs n > k."""
    import itertools

    n = len(g)
    out = []
    for i in range(n):
        with_i, without_i = [], []
        for S in itertools.combinations(range(n), k):
            (with_i if i in S else without_i).append(max(Fraction(g[j]) for j in S))
        out.append(k * (sum(with_i, Fraction(0)) / len(with_i) - sum(without_i, Fraction(0)) / len(without_i)))
    return out
