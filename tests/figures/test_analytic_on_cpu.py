"""The numbers behind the analytic figures (1-5), checked exactly where the paper states them."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from scipy.stats import norm

from analysis.figures.fig01_risk_preference import expected_max_table
from analysis.figures.fig02_hitchhiking_weights import example_weights
from analysis.figures.fig03_max_probability import decomposition, prob_max_enumerated, prob_max_theorem
from analysis.figures.fig04_passk_weight import boundary_w, passk_weight
from analysis.figures.fig05_maxk_gaussian_weight import maxk_weight, maxk_weight_by_parts, maxk_weight_curve


def test_fig1_six_vs_seven_and_a_half():
    t = expected_max_table(range(1, 4))
    assert t["pi_A"] == [6, 6, 6]
    assert t["pi_B"][0] == 5 and t["pi_B"][1] == Fraction(15, 2)  # E[max of 2] = 7.5
    assert t["pi_A"][0] > t["pi_B"][0] and t["pi_A"][1] < t["pi_B"][1]  # the preference flips at k = 2
    assert t["pi_B"][2] == Fraction(35, 4)  # 10 (1 - 2^-3)


def test_fig3_37_over_216_exactly():
    terms = decomposition(4, 3)
    assert terms == [Fraction(1, 6) * Fraction(2, 3) ** 2, Fraction(1, 2) * Fraction(1, 6) * Fraction(2, 3),
                     Fraction(1, 2) ** 2 * Fraction(1, 6)]
    assert sum(terms) == Fraction(37, 216)
    assert prob_max_theorem(4) == Fraction(37, 216) == prob_max_enumerated(4)


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_fig3_theorem_matches_enumeration_for_every_face(k):
    vals = [prob_max_theorem(f, k) for f in range(1, 7)]
    assert vals == [prob_max_enumerated(f, k) for f in range(1, 7)]
    assert sum(vals) == 1


def test_fig3_rejects_bad_face():
    with pytest.raises(ValueError, match="face"):
        decomposition(7, 3)


def test_fig4_boundary_and_regions():
    ks = np.array([2, 3, 4, 8, 16, 32])
    w_star = boundary_w(ks)
    np.testing.assert_allclose(passk_weight(w_star, ks), 1.0, rtol=1e-12)
    assert w_star[0] == pytest.approx(0.5)
    assert np.all(np.diff(w_star) < 0)  # the amplified region shrinks as k grows
    assert np.all(passk_weight(w_star - 1e-3, ks) > 1) and np.all(passk_weight(w_star + 1e-3, ks) < 1)
    assert np.all(passk_weight(np.linspace(0, 1, 11), 1) == 1)  # k = 1: policy gradient
    assert np.isnan(boundary_w(1))


@pytest.mark.parametrize("r", [-1.5, 0.0, 1.0, 2.5])
def test_fig5_quadrature_forms_agree(r):
    # k = 2 has a closed form: W_2(r) / 2 = r Phi(r) + phi(r) (area under the CDF left of r)
    assert maxk_weight(r, 2) == pytest.approx(2 * (r * norm.cdf(r) + norm.pdf(r)), rel=1e-8)
    for k in (4, 8):
        assert maxk_weight(r, k) == pytest.approx(maxk_weight_by_parts(r, k), rel=1e-7, abs=1e-10)
        assert maxk_weight_curve([r], k)[0] == pytest.approx(maxk_weight(r, k), rel=1e-5, abs=1e-8)


def test_fig5_weight_nonnegative_increasing():
    rs = np.linspace(-3, 3, 31)
    for k in (2, 4, 16):
        w = maxk_weight_curve(rs, k)
        assert np.all(w >= -1e-12) and np.all(np.diff(w) > 0)
    with pytest.raises(ValueError, match="k must be >= 2"):
        maxk_weight(0.0, 1)


def test_fig2_registry_weights_show_hitchhiking():
    binary = example_weights([1, 0, 0, 0, 0, 1, 0, 0], "rspo_pass", k=4)
    # baseline: every response in a block with a correct one gets k * 1
    assert binary["baseline"].tolist() == [4.0] * 8
    # RSPO (Theorem 4.3): k C(n-c, k-1) / C(n-1, k-1) = 4 * C(6,3)/C(7,3) = 16/7 for the correct ones only
    np.testing.assert_allclose(binary["rspo"], [16 / 7, 0, 0, 0, 0, 16 / 7, 0, 0], rtol=1e-12)
    assert binary["hitchhiker"].sum() == 6
    cont = example_weights([0.3, 0.9, 0.1, 0.5, 0.2, 0.6, 0.0, 0.4], "rspo_max", k=4)
    assert np.all(cont["rspo"] >= 0)
    assert np.count_nonzero(cont["rspo"]) == 8 - 3  # the k-1 lowest rewards can never be the max of k
    assert np.flatnonzero(cont["hitchhiker"]).tolist() == [0, 2, 3, 4, 6, 7]  # all but each block's best
    np.testing.assert_allclose(cont["baseline"], [3.6] * 4 + [2.4] * 4)  # k * block max
