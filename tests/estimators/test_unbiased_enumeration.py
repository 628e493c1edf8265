"""Unbiasedness by exact enumeration.

A softmax policy over m <= 4 discrete outcomes with fixed rewards. For every estimator the registry marks unbiased, all
m^n sample tuples are enumerated, and the exact expectation of (1/n) sum_i w_i grad log pi(y_i) is compared with the
exact gradient of J_k = E[max(R_1..R_k)] (itself computed by enumerating m^k tuples and autograd), in float64.
"""

import itertools

import pytest
import torch

from rspo_patch.estimators import ESTIMATORS, get_estimator

REWARD_SETS = {
    "distinct": [0.3, 1.0, -0.5, 2.0],
    "ties": [1.0, 0.0, 1.0, 0.5],
    "negative": [-2.0, -1.0, -3.5, -1.0],
    "binary": [1.0, 0.0, 0.0, 1.0],
}
LOGITS = [0.2, -0.7, 0.5, 0.1]
NK = [(2, 1), (2, 2), (3, 2), (4, 2), (4, 3), (4, 4), (5, 2), (5, 3), (6, 2), (6, 3)]


def _exact_grad_Jk(theta: torch.Tensor, r: torch.Tensor, k: int) -> torch.Tensor:
    """grad_theta E[max of k iid draws] by enumerating all m^k tuples. theta, r: (m,)."""
    theta = theta.detach().clone().requires_grad_(True)
    logp = torch.log_softmax(theta, 0)
    m = theta.numel()
    tuples = torch.tensor(list(itertools.product(range(m), repeat=k)))  # (m^k, k)
    prob = logp[tuples].sum(1).exp()
    J = (prob * r[tuples].amax(1)).sum()
    (g,) = torch.autograd.grad(J, theta)
    return g


def _expected_estimate(spec_name: str, theta: torch.Tensor, r: torch.Tensor, n: int, k: int) -> torch.Tensor:
    """E[(1/n) sum_i w_i grad log pi(y_i)] exactly, all m^n tuples at once (the tuples form the P axis)."""
    m = theta.numel()
    pi = torch.softmax(theta, 0)
    tuples = torch.tensor(list(itertools.product(range(m), repeat=n)))  # (m^n, n)
    prob = pi[tuples].prod(1)  # (T,)
    w = get_estimator(spec_name).fn(r[tuples], k=k)  # (T, n)
    # grad log pi(y) for a softmax = onehot(y) - pi
    onehot = torch.nn.functional.one_hot(tuples, m).to(torch.float64)  # (T, n, m)
    glogp = onehot - pi  # (T, n, m)
    per_tuple = (w.unsqueeze(-1) * glogp).mean(1)  # (T, m)
    return (prob.unsqueeze(-1) * per_tuple).sum(0)


def _cases():
    for name, spec in ESTIMATORS.items():
        for n, k in NK:
            if not spec.unbiased_for(k):
                continue
            if spec.k_divides_n and n % k:
                continue
            if spec.n_minus_k is not None and n - k < spec.n_minus_k:
                continue
            if n < spec.min_n:
                continue
            for rname in REWARD_SETS:
                if spec.binary_only and rname != "binary":
                    continue
                for m in (3, 4) if n <= 5 else (3,):
                    yield name, n, k, rname, m


@pytest.mark.parametrize("name,n,k,rname,m", list(_cases()))
def test_unbiased_by_enumeration(name, n, k, rname, m):
    theta = torch.tensor(LOGITS[:m], dtype=torch.float64)
    r = torch.tensor(REWARD_SETS[rname][:m], dtype=torch.float64)
    exact = _exact_grad_Jk(theta, r, k)
    est = _expected_estimate(name, theta, r, n, k)
    torch.testing.assert_close(est, exact, rtol=1e-10, atol=1e-12)


def test_every_unbiased_estimator_is_covered():
    covered = {c[0] for c in _cases()}
    marked = {name for name, s in ESTIMATORS.items() if s.unbiased or s.unbiased_at_k1}
    assert marked <= covered


@pytest.mark.parametrize("name", ["rspo_pass_plugin", "rspo_max_plugin", "passk_chen", "grpo_passk"])
def test_biased_estimators_are_detectably_biased(name):
    """The enumeration harness can fail: estimators marked biased miss grad J_k at some (n, k)."""
    spec = get_estimator(name)
    theta = torch.tensor(LOGITS[:3], dtype=torch.float64)
    r = torch.tensor(REWARD_SETS["binary" if spec.binary_only else "distinct"][:3], dtype=torch.float64)
    n, k = 4, 2
    exact = _exact_grad_Jk(theta, r, k)
    est = _expected_estimate(name, theta, r, n, k)
    assert not torch.allclose(est, exact, rtol=1e-6, atol=1e-9)
