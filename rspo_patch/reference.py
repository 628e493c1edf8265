"""Slow, readable reference implementations, next to the fast registry functions (tests and benchmarks use them).

``algorithm2_weights`` is the paper's Algorithm 2 (Appendix C, an unbiased Max@k estimator with ties) written as plain
nested loops, O(n^2 k) per group, in exact arithmetic when given Fractions.
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
