"""Toy policy lab: exact J_k and its gradient, Figure 1's numbers, and the estimators' behaviour on bandits."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest
import torch

from rspo_patch import bandit
from rspo_patch.exact import expected_max as expected_max_exact

DT = torch.float64


def test_figure1_numbers():
    res = bandit.figure1(steps=60)
    assert res["J"]["pi_A"]["1"] == 6.0 and res["J"]["pi_B"]["1"] == 5.0  # risk-neutral prefers pi_A
    assert res["J"]["pi_A"]["2"] == 6.0 and res["J"]["pi_B"]["2"] == 7.5  # Max@2 prefers pi_B
    # training in the mixture a*pi_A + (1-a)*pi_B from a = 1/2: k=1 goes to pi_A; k=2 to the J_2 optimum a = 0.2
    # (J_2 = 6 + 8b - 10b^2 with b = (1-a)/2, maximal at b = 0.4: J_2 = 7.6)
    k1, k2 = res["train"]["k=1"], res["train"]["k=2"]
    assert k1["weight_on_pi_A_exact"][-1] > 0.95 and k1["weight_on_pi_A_sampled"][-1] > 0.6
    assert k2["weight_on_pi_A_exact"][-1] == pytest.approx(0.2, abs=1e-3)
    assert k2["final_J2"] == pytest.approx(7.6, abs=1e-5)
    assert k2["weight_on_pi_A_sampled"][-1] < 0.35


def test_expected_max_matches_rational_order_statistics():
    g = torch.Generator().manual_seed(0)
    for k in (1, 2, 3, 5):
        probs = torch.softmax(torch.randn(7, generator=g, dtype=DT), 0)
        rewards = torch.tensor([0.0, 1.0, 1.0, 0.5, 2.0, 0.0, 3.0], dtype=DT)  # ties on purpose
        exact = expected_max_exact([Fraction(float(v)) for v in rewards], [Fraction(float(p)) for p in probs], k)
        assert float(bandit.expected_max(probs, rewards, k)) == pytest.approx(float(exact), rel=1e-12)
    # brute force over all k-tuples for k = 2
    probs = torch.tensor([0.2, 0.5, 0.3], dtype=DT)
    r = torch.tensor([1.0, 0.0, 4.0], dtype=DT)
    brute = sum(probs[i] * probs[j] * max(r[i], r[j]) for i in range(3) for j in range(3))
    assert float(bandit.expected_max(probs, r, 2)) == pytest.approx(float(brute), rel=1e-12)


@pytest.mark.parametrize("family", ["softmax", "mixture"])
@pytest.mark.parametrize("k", [1, 2, 4])
def test_exact_grad_matches_finite_differences(family, k):
    g = torch.Generator().manual_seed(k)
    if family == "softmax":
        fn, r = bandit.softmax_policy, torch.tensor([0.0, 0.3, 1.0, 1.0, 2.0], dtype=DT)
        theta = torch.randn(5, generator=g, dtype=DT)
    else:
        fn, r = bandit.mixture_policy(bandit.KM_STRATEGIES), torch.tensor(bandit.KM_REWARDS, dtype=DT)
        theta = torch.randn(4, generator=g, dtype=DT)
    _, grad = bandit.exact_grad(fn, theta, r, k)
    eps = 1e-6
    fd = torch.zeros_like(theta)
    for i in range(theta.shape[0]):
        e = torch.zeros_like(theta)
        e[i] = eps
        fd[i] = (bandit.expected_max(fn(theta + e), r, k) - bandit.expected_max(fn(theta - e), r, k)) / (2 * eps)
    assert torch.allclose(grad, fd, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name, rewards", [
    ("rspo_pass", [1.0, 0.0, 0.0, 1.0, 0.0]),
    ("rspo_max", [0.0, 0.25, 0.5, 0.75, 1.0]),
    ("baseline", [0.0, 0.25, 0.5, 0.75, 1.0]),
])
def test_sampled_unbiased_estimators_average_to_the_exact_gradient(name, rewards):
    k, n, reps = 4, 8, 20000
    r = torch.tensor(rewards, dtype=DT)
    theta = torch.tensor([0.3, -0.2, 0.5, -1.0, 0.1], dtype=DT)
    _, true = bandit.exact_grad(bandit.softmax_policy, theta, r, k)
    g = bandit.sampled_grad(bandit.softmax_policy, theta.expand(reps, 5), r, k, n, name,
                            torch.Generator().manual_seed(1))
    se = g.std(0) / reps ** 0.5
    assert ((g.mean(0) - true).abs() <= 4.5 * se + 1e-12).all()


def test_hitchhiking_baseline_falls_behind_rspo_more_as_k_grows():
    res = bandit.hitchhiking(ks=(2, 8), steps=60, replicates=16, with_pg=False)
    for k in (2, 8):
        b, s = res[f"k={k}"]["baseline"], res[f"k={k}"]["rspo_pass"]
        assert b["J@k"][str(k)][0] == s["J@k"][str(k)][0]  # same init
        assert s["J@k"][str(k)][-1] > s["J@k"][str(k)][0]  # rspo improves its objective
    assert res["k=8"]["final_gap"] > res["k=2"]["final_gap"]
    assert res["k=8"]["final_gap"] > 0.01


def test_k_matching_diagonal():
    res = bandit.k_matching(steps=200, sampled_steps=0)
    assert res["diagonal_best_exact"]
    m = res["exact"]
    assert m["1"]["1"] > m["8"]["1"] and m["8"]["8"] > m["1"]["8"]


def test_estimator_variance_rspo_beats_baseline_and_biased_ones_show_bias():
    res = bandit.estimator_variance(k=4, ns=(8, 16), replicates=3000)
    est = res["binary"]["estimators"]
    assert est["rspo_pass"]["unbiased"] and not est["rspo_pass_plugin"]["unbiased"]
    for i in range(2):
        assert est["rspo_pass"]["mse"][i] < 0.2 * est["baseline"]["mse"][i]
        for name in ("rspo_pass", "baseline", "rspo_max", "pkpo_sloo"):
            assert est[name]["bias"][i] < 5 * est[name]["bias_se"][i] + 1e-12
    assert est["rspo_pass"]["mse"][1] < est["rspo_pass"]["mse"][0]  # more samples, less variance
    graded = res["graded"]["estimators"]
    assert "rspo_pass" not in graded and "rspo_max" in graded
    assert graded["rspo_max_plugin"]["bias"][1] > 5 * graded["rspo_max_plugin"]["bias_se"][1]


def test_cli_writes_json(tmp_path):
    out = tmp_path / "sub" / "bandit.json"
    bandit.main(["--out", str(out), "--seed", "3", "--quick"])
    res = json.loads(out.read_text())
    assert {"figure1", "hitchhiking", "k_matching", "estimator_variance", "timings_s"} <= set(res)
    assert res["quick"] and res["figure1"]["J"]["pi_B"]["2"] == 7.5
    assert res["estimator_variance"]["binary"]["estimators"]["rspo_pass"]["n"] == [4, 8]


def test_bad_inputs():
    with pytest.raises(ValueError, match="k must be"):
        bandit.expected_max(torch.tensor([1.0], dtype=DT), [1.0], 0)
    with pytest.raises(ValueError, match="rewards must have shape"):
        bandit.expected_max(torch.tensor([0.5, 0.5], dtype=DT), [1.0], 1)
    with pytest.raises(ValueError, match="strategies"):
        bandit.mixture_policy([[0.5, 0.6]])
