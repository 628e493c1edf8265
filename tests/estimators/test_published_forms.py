"""Peers exactly as published: PKPO's s, s^loo and s^(loo-1) against an exact transcription of the paper's Listing 1, and
MaxPO's leave-two-out (L2O) baseline against plain loops (rspo_patch.reference; both written from the papers' formulas).

Scale: our weights are n times PKPO's transforms (PKPO's gradient is sum_i s_i grad log pi, ours (1/n) sum_i w_i ...).
"""

import random
from fractions import Fraction

import pytest
import torch

from rspo_patch.estimators import compute_weights
from rspo_patch.reference import (
    maxpo_l2o_weights,
    pkpo_b,
    pkpo_b_literal,
    pkpo_s,
    pkpo_sloo,
    pkpo_sloo_minus_one,
    subset_contrast_weights,
)


def _group(kind: str, n: int, rng: random.Random) -> list:
    """Exact rewards: 0/1, few tied levels (like graded rewards), or distinct values (continuous)."""
    if kind == "binary":
        return [Fraction(rng.random() < 0.3) for _ in range(n)]
    if kind == "tied":
        return [Fraction(rng.randint(-2, 2), 4) for _ in range(n)]
    return [Fraction(rng.randint(-10**6, 10**6), 10**5) for _ in range(n)]


def _t(r) -> torch.Tensor:
    return torch.tensor([[float(x) for x in r]], dtype=torch.float64)


def _close(got: torch.Tensor, ref: list, tol: float = 1e-10) -> None:
    """float64 weights against exact ones, relative to the group's largest exact weight."""
    ref_t = torch.tensor([float(x) for x in ref], dtype=torch.float64)
    scale = max(1.0, float(ref_t.abs().max()))
    torch.testing.assert_close(got, ref_t, rtol=0, atol=tol * scale)


KINDS = ["binary", "tied", "continuous"]


# ---------------------------------------------------------------------------------------------------------------------
# PKPO Listing 1


def test_issue_examples_pkpo_sloo():
    """Issue 14's two examples: n x PKPO's s^loo, by hand from Eq. 29."""
    torch.testing.assert_close(compute_weights("pkpo_sloo", _t([0, 1, 2]), 2)[0], torch.tensor([-3.0, -3, 1]).double())
    torch.testing.assert_close(compute_weights("pkpo_sloo", _t([1, 0]), 1)[0], torch.tensor([1.0, -2]).double())


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n", [2, 3, 5, 8])
def test_listing_b_by_definition_equals_k_rho(n, kind):
    """b_i = sum_{j != i} s_j(batch without i) (literal) = k rho(batch without i), the form the big-n tests use."""
    rng = random.Random(n)
    g = _group(kind, n, rng)
    for k in range(1, n):
        assert pkpo_b_literal(g, k) == pkpo_b(g, k)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n", [2, 3, 4, 5, 7, 8, 12, 16, 17, 32, 64])
def test_pkpo_sloo_is_n_times_listing1_sloo_every_k(n, kind):
    rng = random.Random(1000 * n + len(kind))
    g = _group(kind, n, rng)
    R = _t(g)
    for k in range(1, n):  # s^loo needs n > k
        _close(compute_weights("pkpo_sloo", R, k)[0], [n * x for x in pkpo_sloo(g, k)])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n", [2, 3, 5, 8, 16, 64])
def test_pkpo_s_is_n_times_listing1_s_every_k(n, kind):
    rng = random.Random(7 * n + len(kind))
    g = _group(kind, n, rng)
    R = _t(g)
    for k in range(1, n + 1):
        _close(compute_weights("pkpo_s", R, k)[0], [n * x for x in pkpo_s(g, k)])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n", [2, 3, 5, 8, 16, 33])
def test_rspo_max_is_n_times_listing1_sloo_minus_one_every_k(n, kind):
    """RSPO's Max@k weight (Theorem C.4) is PKPO's recommended s^(loo-1) (Eq. 33), times n."""
    rng = random.Random(3 * n + len(kind))
    g = _group(kind, n, rng)
    R = _t(g)
    for k in range(2, n + 1):
        ref = [n * x for x in pkpo_sloo_minus_one(g, k)]
        _close(compute_weights("rspo_max", R, k)[0], ref)
        if kind == "binary":
            _close(compute_weights("rspo_pass", R, k)[0], ref)


def test_pkpo_sloo_is_not_centred_and_differs_from_maxpo():
    """s^loo's baseline overshoots: sum_i n s^loo_i = -k n rho / (n-1) (exact), so it is not MaxPO."""
    g = [Fraction(v) for v in (0, 1, 2, 5)]
    n, k = 4, 2
    w = [n * x for x in pkpo_sloo(g, k)]
    rho = sum(max(a, b) for i, a in enumerate(g) for b in g[i + 1:]) / 6
    assert sum(w) == -k * n * rho / (n - 1) != 0


# ---------------------------------------------------------------------------------------------------------------------
# MaxPO


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n", [2, 3, 4, 6, 9])
def test_maxpo_matches_leave_two_out_loops_every_k(n, kind):
    rng = random.Random(11 * n + len(kind))
    for _ in range(2):
        g = _group(kind, n, rng)
        R = _t(g)
        for k in range(1, n):
            _close(compute_weights("maxpo", R, k)[0], maxpo_l2o_weights(g, k))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n", [3, 5, 8])
def test_maxpo_is_the_subset_contrast_advantage(n, kind):
    """Identity: the L2O-baselined advantage equals k [E_{S contains i} max S - E_{S excludes i} max S] exactly."""
    rng = random.Random(5 * n + len(kind))
    g = _group(kind, n, rng)
    for k in range(1, n):
        assert maxpo_l2o_weights(g, k) == subset_contrast_weights(g, k)


def test_maxpo_k1_is_rloo():
    g = torch.Generator().manual_seed(0)
    R = torch.randn(50, 7, generator=g, dtype=torch.float64)
    rloo = R - (R.sum(1, keepdim=True) - R) / (R.shape[1] - 1)
    torch.testing.assert_close(compute_weights("maxpo", R, 1), rloo)


def test_maxpo_worked_example():
    """R = [0, 1, 2], k = 2 by hand: a = rspo_max = [0, 1, 3]; without y_0 the 2-subset {1, 2} has max - 2nd = 1, without
    y_1 {0, 2}: 2, without y_2 {0, 1}: 1; so w = [0 - 1, 1 - 2, 3 - 1] = [-1, -1, 2] (sums to 0)."""
    torch.testing.assert_close(compute_weights("rspo_max", _t([0, 1, 2]), 2)[0], torch.tensor([0.0, 1, 3]).double())
    torch.testing.assert_close(compute_weights("maxpo", _t([0, 1, 2]), 2)[0], torch.tensor([-1.0, -1, 2]).double())


@pytest.mark.parametrize("n", [2, 3, 8, 16, 64, 256])
def test_maxpo_every_group_sums_to_zero(n):
    g = torch.Generator().manual_seed(n)
    cont = torch.rand(64, n, generator=g, dtype=torch.float64) * 10 - 3
    tied = torch.randint(0, 3, (64, n), generator=g).double()
    binary = (torch.rand(64, n, generator=g) < 0.2).double()
    for R in (cont, tied, binary):
        for k in sorted({1, 2, 3, n // 2, n - 1} & set(range(1, n))):
            w = compute_weights("maxpo", R, k)
            scale = w.abs().amax(1).clamp_min(1.0)
            assert (w.sum(1).abs() <= 1e-12 * n * scale).all(), (n, k)


@pytest.mark.parametrize("n,k", [(1024, 2), (1024, 17), (1024, 512), (1024, 1023), (4096, 3), (4096, 4000)])
def test_maxpo_large_n_matches_exact_rationals(n, k):
    """O(n) exact closed form per group (sorted prefix sums, Python ints) against the float64 weights at large n:
    w_(p) = k [(n/k) s_(p) - rho_{-(p)}], s and rho as in PKPO's Listing 1 (reference.pkpo_s / pkpo_rho)."""
    from math import comb

    rng = random.Random(n + k)
    r = [Fraction(rng.randint(0, 200), 100) for _ in range(n)]
    rs = sorted(r)
    w = compute_weights("maxpo", _t(r), k)[0]
    # suffix sums for s and rho_{-p}, prefix sums for rho_{-p}
    suf_s = [Fraction(0)] * (n + 2)
    suf_r = [Fraction(0)] * (n + 2)
    for j in range(n, 0, -1):
        suf_s[j] = suf_s[j + 1] + rs[j - 1] * (comb(j - 2, k - 2) if j >= 2 and k >= 2 else 0)
        suf_r[j] = suf_r[j + 1] + rs[j - 1] * (comb(j - 2, k - 1) if j >= 2 else 0)
    pre_r = [Fraction(0)]
    for j in range(1, n + 1):
        pre_r.append(pre_r[-1] + rs[j - 1] * comb(j - 1, k - 1))
    exact = {}
    for p in range(1, n + 1):
        ns = n * (rs[p - 1] * comb(p - 1, k - 1) + suf_s[p + 1]) / comb(n, k)
        rho = (pre_r[p - 1] + suf_r[p + 1]) / comb(n - 1, k)
        exact.setdefault(rs[p - 1], ns - k * rho)  # tied rewards share one weight
    ref = torch.tensor([float(exact[x]) for x in r], dtype=torch.float64)
    torch.testing.assert_close(w, ref, rtol=0, atol=1e-9 * max(1.0, float(ref.abs().max())))


# ---------------------------------------------------------------------------------------------------------------------
# where the canonical (subset-contrast) advantage meets the other registry entries (docs/estimators.md)


@pytest.mark.parametrize("n", [4, 7, 12])
def test_rspo_max_minus_maxpo_is_the_l2o_baseline(n):
    """rspo_max_i - maxpo_i = b_i = mean over k-subsets U of the others of (max U - second max U), by enumeration."""
    import itertools

    rng = random.Random(n)
    for kind in KINDS:
        g = _group(kind, n, rng)
        R = _t(g)
        for k in range(2, n):
            base = []
            for i in range(n):
                others = [g[j] for j in range(n) if j != i]
                gaps = [sorted(U)[-1] - sorted(U)[-2] for U in itertools.combinations(others, k)]
                base.append(sum(gaps, Fraction(0)) / len(gaps))
            _close(compute_weights("rspo_max", R, k)[0] - compute_weights("maxpo", R, k)[0], base)


@pytest.mark.parametrize("kind", KINDS)
def test_pkpo_sloo_is_maxpo_minus_k_rho_over_n_minus_1(kind):
    """n s^loo_i = maxpo_i - k rho_{-i} / (n - 1): PKPO's baseline overshoots the centred one by that much."""
    from rspo_patch.reference import pkpo_rho

    rng = random.Random(len(kind))
    for n in (3, 6, 10):
        g = _group(kind, n, rng)
        for k in range(1, n):
            extra = [Fraction(k, n - 1) * pkpo_rho([g[j] for j in range(n) if j != i], k) for i in range(n)]
            diff = compute_weights("maxpo", _t(g), k)[0] - compute_weights("pkpo_sloo", _t(g), k)[0]
            _close(diff, extra)


def test_passk_chen_is_maxpo_over_sigma_on_binary_rewards():
    """Binary rewards: Chen et al.'s Pass@k advantage = maxpo (n - k) / (n k sigma), sigma = sqrt(rho (1 - rho)),
    rho = 1 - C(n - c, k) / C(n, k); both are 0 for all-correct and all-wrong groups."""
    import math

    for n in (4, 8, 16, 33):
        for c in range(0, n + 1):
            R = torch.tensor([[1.0] * c + [0.0] * (n - c)], dtype=torch.float64)
            for k in range(1, n):
                rho = 1 - math.comb(n - c, k) / math.comb(n, k)
                sigma = math.sqrt(max(rho * (1 - rho), 0.0))
                got = compute_weights("passk_chen", R, k)[0]
                ref = compute_weights("maxpo", R, k)[0] * (n - k) / (n * k * sigma) if sigma > 1e-12 else 0 * got
                torch.testing.assert_close(got, ref, rtol=1e-9, atol=1e-9)
