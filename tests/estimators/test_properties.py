"""Closed forms against brute force, identities between estimators, the paper's numbers, numerics and input checks."""

import itertools
import math
import random
from fractions import Fraction

import pytest
import torch

from rspo_patch.estimators import ESTIMATORS, compute_weights, get_estimator, k_schedule, check_estimator_args
from rspo_patch.exact import expected_max, prob_is_max
from rspo_patch.reference import algorithm2_weights


def C(a, b):
    return math.comb(a, b) if 0 <= b <= a else 0


def _random_group(rng, n, ties):
    if ties:
        return [Fraction(rng.randint(-3, 3), 2) for _ in range(n)]
    return [Fraction(v, 7) for v in rng.sample(range(-40, 40), n)]


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("n,k", [(3, 2), (4, 2), (5, 3), (6, 2), (6, 4), (7, 3), (8, 5), (8, 8)])
def test_rspo_max_matches_algorithm2(n, k, ties):
    rng = random.Random(n * 100 + k * 10 + ties)
    for _ in range(3):
        r = _random_group(rng, n, ties)
        ref = torch.tensor([float(x) for x in algorithm2_weights(r, k)], dtype=torch.float64)
        got = compute_weights("rspo_max", torch.tensor([[float(x) for x in r]], dtype=torch.float64), k)[0]
        torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)


def _loo1_weights(r, k):
    """n * PKPO s^(loo-1)_i = n / C(n,k) * sum over k-subsets S containing i of [max(S) - max(S minus i)]."""
    n = len(r)
    out = []
    for i in range(n):
        tot = Fraction(0)
        for S in itertools.combinations(range(n), k):
            if i not in S:
                continue
            rest = [r[j] for j in S if j != i]
            tot += max(r[j] for j in S) - (max(rest) if rest else 0)
        out.append(n * tot / C(n, k))
    return out


def _s_weights(r, k):
    """n * PKPO s_i = n / C(n,k) * sum over k-subsets S containing i of max(S)."""
    n = len(r)
    return [n * sum((max(r[j] for j in S) for S in itertools.combinations(range(n), k) if i in S), Fraction(0))
            / C(n, k) for i in range(n)]


def _rho_without(r, i, k):
    """Mean over k-subsets of the responses other than i of their max (the max@k estimate without i)."""
    others = [r[j] for j in range(len(r)) if j != i]
    return sum((max(c) for c in itertools.combinations(others, k)), Fraction(0)) / C(len(others), k)


def _maxpo_weights(r, k):
    """n s_i - k rho_{-i}: MaxPO (docs/estimators.md), the form pkpo_sloo had before issue 14."""
    s = _s_weights(r, k)
    return [s[i] - k * _rho_without(r, i, k) for i in range(len(r))]


def _pkpo_sloo_weights(r, k):
    """n s^loo_i = n (s_i - k rho_{-i} / (n - 1)) (PKPO Eq. 29), by subset enumeration."""
    n = len(r)
    s = _s_weights(r, k)
    return [s[i] - Fraction(n * k, n - 1) * _rho_without(r, i, k) for i in range(n)]


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("n,k", [(4, 1), (4, 2), (6, 3), (8, 2), (8, 4), (9, 9)])
def test_rspo_equals_n_times_pkpo_loo_minus_one(n, k, ties):
    rng = random.Random(7 + n + k + ties)
    r = _random_group(rng, n, ties)
    ref = torch.tensor([float(x) for x in _loo1_weights(r, k)], dtype=torch.float64)
    R = torch.tensor([[float(x) for x in r]], dtype=torch.float64)
    torch.testing.assert_close(compute_weights("rspo_max", R, k)[0], ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(compute_weights("rspo_max_sorted", R, k)[0], ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n,k", [(4, 1), (5, 2), (6, 3), (7, 7)])
def test_pkpo_closed_forms_match_subset_enumeration(n, k):
    rng = random.Random(n * k)
    r = _random_group(rng, n, ties=True)
    R = torch.tensor([[float(x) for x in r]], dtype=torch.float64)
    ref_s = torch.tensor([float(x) for x in _s_weights(r, k)], dtype=torch.float64)
    torch.testing.assert_close(compute_weights("pkpo_s", R, k)[0], ref_s, rtol=1e-12, atol=1e-12)
    if n > k:
        for name, ref_fn in (("pkpo_sloo", _pkpo_sloo_weights), ("maxpo", _maxpo_weights)):
            ref = torch.tensor([float(x) for x in ref_fn(r, k)], dtype=torch.float64)
            torch.testing.assert_close(compute_weights(name, R, k)[0], ref, rtol=1e-12, atol=1e-12)


def test_rspo_max_on_binary_equals_rspo_pass():
    g = torch.Generator().manual_seed(0)
    R = (torch.rand(64, 16, generator=g) < 0.3).double()
    for k in (1, 2, 4, 8, 16):
        torch.testing.assert_close(compute_weights("rspo_max", R, k), compute_weights("rspo_pass", R, k))


def test_rspo_max_sorted_equals_rspo_max():
    g = torch.Generator().manual_seed(1)
    distinct = torch.rand(32, 12, generator=g, dtype=torch.float64)
    tied = torch.randint(-2, 3, (32, 12), generator=g).double()
    for R in (distinct, tied):
        for k in (1, 2, 3, 6, 12):
            torch.testing.assert_close(compute_weights("rspo_max_sorted", R, k), compute_weights("rspo_max", R, k))


@pytest.mark.parametrize("name", ["rspo_pass", "rspo_pass_plugin", "rspo_max", "rspo_max_sorted", "rspo_max_plugin",
                                  "baseline", "pkpo_s"])
def test_k1_gives_pg(name):
    g = torch.Generator().manual_seed(2)
    R = (torch.rand(8, 6, generator=g) < 0.5).double()
    if not get_estimator(name).binary_only:
        R = R * torch.randn(8, 6, generator=g, dtype=torch.float64)
    torch.testing.assert_close(compute_weights(name, R, 1), R)


def test_rspo_max_nonnegative_and_zero_for_k_minus_1_lowest():
    g = torch.Generator().manual_seed(3)
    R = torch.randn(200, 10, generator=g, dtype=torch.float64) * 5 - 3  # mostly negative rewards
    for k in (2, 3, 5, 10):
        w = compute_weights("rspo_max", R, k)
        assert (w >= 0).all()
        ranks = R.argsort(1).argsort(1)  # distinct values: rank = position
        assert (w[ranks < k - 1] == 0).all()
        assert (w[ranks >= k - 1] > 0).all()


def test_grpo_passk_is_rspo_max_at_k_equals_n_over_n():
    g = torch.Generator().manual_seed(4)
    R = torch.randn(20, 8, generator=g, dtype=torch.float64)
    torch.testing.assert_close(compute_weights("grpo_passk", R, 8), compute_weights("rspo_max", R, 8) / 8)


def test_grpo_matches_openrlhf_group_norm_values():
    # OpenRLHF 0.11.2 group_norm on rewards [1,0,0,1 | 0,0,0,1] (research/openrlhf.md)
    R = torch.tensor([[1.0, 0, 0, 1], [0, 0, 0, 1]])
    exp = torch.tensor([[0.866, -0.866, -0.866, 0.866], [-0.5, -0.5, -0.5, 1.5]])
    torch.testing.assert_close(compute_weights("grpo", R, 1), exp, atol=1e-3, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_grpo_constant_groups_are_exactly_zero(dtype):
    """A constant group has no signal: grpo gives exactly 0 (computed in float64). OpenRLHF's group_norm, in float32,
    can return rounding noise / 1e-9 here (docs/estimators.md), e.g. -0.8 or -59.6 for a group of -0.9."""
    for value in (-0.9, 0.1, 0.7, 1 / 3):
        for n in (2, 3, 7, 16, 100):
            assert (compute_weights("grpo", torch.full((3, n), value, dtype=dtype), 1) == 0).all()


def test_passk_chen_reference_example():
    # research/peers.md: n = 16, c = 4, k = 4: +0.61 / -0.20
    R = torch.tensor([[1.0] * 4 + [0.0] * 12])
    w = compute_weights("passk_chen", R, 4)[0]
    assert abs(w[0].item() - 0.611) < 2e-3 and abs(w[-1].item() + 0.204) < 2e-3
    # RSPO on the same group: 0.121 per response after dividing by n
    assert abs(compute_weights("rspo_pass", R, 4)[0, 0].item() / 16 - 0.121) < 1e-3


def test_baseline_blocks():
    R = torch.tensor([[0.0, 1, 0, 0, 0, 0]])
    torch.testing.assert_close(compute_weights("baseline", R, 2), torch.tensor([[2.0, 2, 0, 0, 0, 0]]))
    torch.testing.assert_close(compute_weights("baseline", R, 3), torch.tensor([[3.0, 3, 3, 0, 0, 0]]))


def test_rs_grpo_formula():
    R = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    e = math.exp(2.0)
    exp = torch.tensor([[(e / ((e + 1) / 2) - 1) / 2, (1 / ((e + 1) / 2) - 1) / 2]], dtype=torch.float64)
    torch.testing.assert_close(compute_weights("rs_grpo", R, 1), exp)


# ---------------------------------------------------------------------------------------------------------------------
# the paper's numbers


def test_figure3_probability_of_max_is_37_over_216():
    assert prob_is_max(Fraction(3, 6), Fraction(1, 6), Fraction(4, 6), 3) == Fraction(37, 216)
    # cross-check by enumerating three dice
    hits = sum(1 for d in itertools.product(range(1, 7), repeat=3) if 4 in d and max(d) == 4)
    assert Fraction(hits, 216) == Fraction(37, 216)


def test_figure1_risk_preference_flip():
    pa = ([6], [Fraction(1)])
    pb = ([0, 10], [Fraction(1, 2), Fraction(1, 2)])
    assert expected_max(*pa, 1) == 6 and expected_max(*pb, 1) == 5
    assert expected_max(*pa, 2) == 6 and expected_max(*pb, 2) == Fraction(15, 2)


# ---------------------------------------------------------------------------------------------------------------------
# large n


def _rspo_max_exact(r, k, indices):
    """Exact rational Theorem C.4 weights at ``indices`` of one group (Fractions, Python ints for binomials)."""
    import bisect

    n = len(r)
    rs = sorted(r)
    prefix = [Fraction(0)]
    for j in range(1, n + 1):
        prefix.append(prefix[-1] + rs[j - 1] * C(j - 1, k - 2))
    denom = C(n - 1, k - 1)
    out = {}
    for i in indices:
        c_lt = bisect.bisect_left(rs, r[i])
        out[i] = Fraction(k, denom) * (r[i] * C(c_lt, k - 1) - prefix[c_lt])
    return out


@pytest.mark.parametrize("n", [1024, 4096])
def test_large_n_finite_for_every_k(n):
    g = torch.Generator().manual_seed(n)
    Rb = (torch.rand(2, n, generator=g) < 0.1).double()
    Rc = torch.rand(2, n, generator=g, dtype=torch.float64)
    ks = sorted(set([1, 2, 3, n // 2, n - 1, n] + list(range(1, n + 1, max(1, n // 16)))))
    for k in ks:
        for name, spec in ESTIMATORS.items():
            if spec.k_divides_n and n % k:
                continue
            if spec.n_minus_k is not None and n - k < spec.n_minus_k:
                continue
            w = compute_weights(name, Rb if spec.binary_only else Rc, k)
            assert torch.isfinite(w).all(), (name, n, k)


@pytest.mark.parametrize("n,k", [(1024, 1), (1024, 2), (1024, 17), (1024, 512), (1024, 1000), (1024, 1024),
                                 (4096, 3), (4096, 2048), (4096, 4000)])
def test_large_n_matches_exact_rationals(n, k):
    rng = random.Random(n + k)
    # binary: rspo_pass against the exact ratio
    c = rng.randint(1, n // 3)
    Rb = torch.zeros(1, n, dtype=torch.float64)
    Rb[0, :c] = 1
    got = compute_weights("rspo_pass", Rb, k)[0, 0].item()
    ref = Fraction(k * C(n - c, k - 1), C(n - 1, k - 1))
    assert abs(got - float(ref)) <= 1e-9 * max(abs(float(ref)), 1e-300) or (ref == 0 and got == 0)
    # continuous with ties: rspo_max against exact rationals on a sampled group
    r = [Fraction(rng.randint(0, 200), 100) for _ in range(n)]
    w = compute_weights("rspo_max", torch.tensor([[float(x) for x in r]], dtype=torch.float64), k)[0]
    idx = rng.sample(range(n), 48) + [max(range(n), key=lambda i: r[i])]
    ref = _rspo_max_exact(r, k, idx)
    scale = max(abs(float(x)) for x in ref.values())
    for i in idx:
        assert abs(w[i].item() - float(ref[i])) <= 1e-9 * scale, (i, w[i].item(), float(ref[i]))


# ---------------------------------------------------------------------------------------------------------------------
# dtype, device, shape; bad input


def test_dtype_and_shape_preserved():
    for dtype in (torch.float32, torch.float64, torch.bfloat16):
        R = (torch.rand(3, 8) < 0.5).to(dtype)
        for name in ESTIMATORS:
            w = compute_weights(name, R, 2)
            assert w.shape == R.shape and w.dtype == dtype and w.device == R.device


def test_empty_batch():
    w = compute_weights("rspo_max", torch.zeros(0, 8), 4)
    assert w.shape == (0, 8)


@pytest.mark.parametrize("name,R,k,match", [
    ("rspo_pass", torch.ones(2, 4), 0, "k must be >= 1, got k=0"),
    ("rspo_pass", torch.ones(2, 4), 5, "k=5 > n=4"),
    ("rspo_max", torch.ones(2, 4), 5, "k=5 > n=4"),
    ("pkpo_sloo", torch.ones(2, 4), 4, "needs n > k"),
    ("baseline", torch.ones(2, 6), 4, "k must divide n"),
    ("rspo_pass", torch.tensor([[0.5, 1.0]]), 1, "binary 0/1 rewards, got value 0.5"),
    ("passk_chen", torch.tensor([[2.0, 1.0]]), 1, "binary 0/1 rewards, got value 2.0"),
    ("rspo_max", torch.tensor([[float("nan"), 1.0]]), 1, "finite, got nan"),
    ("rspo_max", torch.tensor([[float("inf"), 1.0]]), 1, "finite, got inf"),
    ("pkpo_s", torch.tensor([[0.5, float("-inf")]]), 1, "finite, got -inf"),
    ("pg", torch.tensor([[0.5, 1.0], [float("nan"), float("inf")]]), 1, "finite, got nan"),
    ("rspo_max", torch.ones(4), 1, r"rank 2, shape \(P, n\), got shape \(4,\)"),
    ("rspo_max", torch.ones(2, 2, 2), 1, "rank 2"),
    ("grpo", torch.ones(3, 1), 1, "at least n=2"),
    ("pkpo_sloo", torch.ones(3, 1), 1, "at least n=2"),
    ("maxpo", torch.ones(2, 4), 4, "needs n > k"),
    ("maxpo", torch.ones(3, 1), 1, "at least n=2"),
    ("rs_grpo", torch.ones(3, 1), 1, "at least n=2"),
    ("rspo_max", [[1.0, 0.0]], 1, "torch.Tensor"),
    ("rspo_max", torch.ones(2, 4), 2.0, "k must be an int"),
])
def test_bad_input_raises_value_error(name, R, k, match):
    with pytest.raises(ValueError, match=match):
        compute_weights(name, R, k)


def test_unknown_estimator_lists_valid_names():
    with pytest.raises(ValueError, match="valid names: pg, grpo, baseline, rspo_pass"):
        get_estimator("rspo")


def test_unknown_hyperparameter():
    with pytest.raises(ValueError, match="unknown hyperparameter.*betta.*allowed: beta"):
        compute_weights("rs_grpo", torch.ones(2, 4), 1, betta=1.0)
    torch.testing.assert_close(compute_weights("rs_grpo", torch.ones(1, 2), 1, beta=0.5), torch.zeros(1, 2))


def test_check_estimator_args_without_tensors():
    with pytest.raises(ValueError, match="binary 0/1 rewards"):
        check_estimator_args("rspo_pass", n=16, k=4, binary_rewards=False)
    with pytest.raises(ValueError, match="only the 'constant' k schedule"):
        check_estimator_args("baseline", n=16, k=4, k_schedule="linear")
    assert check_estimator_args("rspo_max", n=16, k=4, binary_rewards=False).name == "rspo_max"


def test_registry_rejects_a_second_function_under_a_taken_name():
    from rspo_patch.estimators import register_estimator

    with pytest.raises(ValueError, match="already registered"):
        register_estimator("pg", unbiased=False, description="dup")(lambda r, *, k: r)
    # plugins register plain names, but only ones that fit a cell path and mean one method in every trainer
    with pytest.raises(ValueError, match="not valid"):
        register_estimator("Not-A-Name", unbiased=False, description="x")
    with pytest.raises(ValueError, match="reserved"):
        register_estimator("rloo", unbiased=False, description="x")  # OpenRLHF's own rloo
    with pytest.raises(ValueError, match="reserved"):
        register_estimator("base", unbiased=False, description="x")  # the cell grammar's untrained model


def test_k_schedule():
    from rspo_core import schedules

    assert k_schedule is schedules.k_schedule  # one definition (rspo_core), re-exported by the registry
    assert [k_schedule("constant", 8, s, 10) for s in range(10)] == [8] * 10
    lin = [k_schedule("linear", 8, s, 8) for s in range(8)]
    assert lin == [8, 7, 6, 5, 4, 3, 2, 1]
    cos = [k_schedule("cosine", 8, s, 11) for s in range(11)]
    assert cos[0] == 8 and cos[-1] == 1 and all(a >= b for a, b in zip(cos, cos[1:]))
    with pytest.raises(ValueError, match="unknown k schedule 'exp'"):
        k_schedule("exp", 4, 0, 10)
    with pytest.raises(ValueError, match="step must be in"):
        k_schedule("linear", 4, 10, 10)


def _eq11_plugin(r, k):
    """Eq. 11 written plainly: P_<=(y_i) = #{j: R_j <= R_i}/n, g(y_i) = (1/n) sum_{j: R_j < R_i} R_j P_<=(y_j)^(k-2)."""
    n = len(r)
    p_le = [sum(1 for x in r if x <= ri) / n for ri in r]
    out = []
    for i in range(n):
        g = sum(r[j] * p_le[j] ** (k - 2) for j in range(n) if r[j] < r[i]) / n
        out.append(k * (r[i] * p_le[i] ** (k - 1) - (k - 1) * g))
    return out


@pytest.mark.parametrize("ties", [True, False])
@pytest.mark.parametrize("k", [2, 3, 5])
def test_rspo_max_plugin_matches_eq11_loop(k, ties):
    g = torch.Generator().manual_seed(k)
    R = torch.randint(-3, 4, (10, 7), generator=g).double() / 2 if ties else torch.randn(10, 7, generator=g).double()
    if not ties:
        R[::3, 2] = R[::3, 5]  # some rows tied: the tie-free path for the others, the tie-count path for these
    row_tied = (R.sort(1).values.diff(1) == 0).any(1)
    assert bool(row_tied.all()) if ties else bool(row_tied.any()) and not bool(row_tied.all())
    got = compute_weights("rspo_max_plugin", R, k)
    ref = torch.tensor([_eq11_plugin(row, k) for row in R.tolist()], dtype=torch.float64)
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)


def test_rspo_pass_plugin_formula():
    R = torch.tensor([[1.0, 0, 0, 1, 0, 0, 0, 0]])
    # c/n = 1/4: k (1 - 1/4)^(k-1) for correct responses
    torch.testing.assert_close(compute_weights("rspo_pass_plugin", R, 3), R * 3 * 0.75 ** 2)


def test_tie_counts_match_searchsorted():
    from rspo_patch.estimators import _tie_counts

    g = torch.Generator().manual_seed(5)
    for levels in (2, 5, 1000):
        rs = torch.randint(0, levels, (64, 33), generator=g).double().sort(1).values
        below, le = _tie_counts(rs, rs[:, 1:] == rs[:, :-1])
        assert torch.equal(below, torch.searchsorted(rs, rs, right=False))
        assert torch.equal(le, torch.searchsorted(rs, rs, right=True))


@pytest.mark.parametrize("name", ["rspo_max", "rspo_max_sorted", "rspo_max_plugin", "pkpo_s", "pkpo_sloo", "maxpo"])
def test_sorted_input_estimators_accept_every_input_dtype(name):
    """They sort in the input dtype (cheaper than float64; a float64 cast keeps the order) and scatter back."""
    g = torch.Generator().manual_seed(6)
    R = torch.randint(0, 4, (16, 8), generator=g).double()
    ref = compute_weights(name, R, 3)
    for dtype in (torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.uint8):
        got = compute_weights(name, R.to(dtype), 3)
        assert got.dtype == (dtype if dtype.is_floating_point else torch.float32)
        torch.testing.assert_close(got.double(), ref.to(got.dtype).double())
    got = compute_weights(name, R > 1, 3)
    torch.testing.assert_close(got.double(), compute_weights(name, (R > 1).double(), 3).float().double())


# ---------------------------------------------------------------------------------------------------------------------
# issue 13 item 6: float16 overflow, autograd


@pytest.mark.parametrize("name,row", [("pkpo_s", [3e4, 5e4, 6e4, 4e4]), ("baseline", [3e4, 5e4, 6e4, 4e4]),
                                      ("maxpo", [0.0, 6e4, 0.0, 0.0]), ("rspo_max", [0.0, 6e4, 0.0, 0.0])])
def test_float16_weights_that_overflow_raise(name, row):
    """Rewards 3e4-6e4 in float16 give weights above 65504; the estimator must say so, not return inf."""
    R = torch.tensor([row] * 2, dtype=torch.float16)
    w64 = compute_weights(name, R.double(), 2)
    assert w64.abs().max() > torch.finfo(torch.float16).max  # the exact weights do not fit in float16
    with pytest.raises(ValueError, match=rf"{name}: weights are not finite in torch.float16 .*float32 or float64"):
        compute_weights(name, R, 2)


def test_float16_weights_that_fit_are_returned():
    R = torch.tensor([[3e4, 5e4, 6e4, 4e4]], dtype=torch.float16)
    w = compute_weights("rspo_max", R, 2)
    assert w.dtype == torch.float16 and torch.isfinite(w).all()
    torch.testing.assert_close(w.double(), compute_weights("rspo_max", R.double(), 2).half().double())


def test_rewards_requiring_grad_do_not_warn():
    import warnings

    R = torch.rand(4, 6, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in ESTIMATORS:
            w = compute_weights(name, (R > 0.5).float().requires_grad_() if get_estimator(name).binary_only else R, 2)
            assert not w.requires_grad


def test_rs_grpo_rejects_a_lone_response():
    """n = 1: rejected like grpo (the RS-GRPO reference would return (e^{beta R} - 1)/beta, no baseline at all)."""
    assert get_estimator("rs_grpo").min_n == 2
    with pytest.raises(ValueError, match="rs_grpo: needs at least n=2"):
        compute_weights("rs_grpo", torch.tensor([[1.0]]), 1)
