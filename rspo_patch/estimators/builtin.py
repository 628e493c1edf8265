"""The suite's estimators: RSPO (Pass@k, Max@k, their plug-in forms), the paper's baseline and the peers.

Each is registered on import with ``register_estimator`` and its metadata; the formulas and the published code or
equation each one was checked against are in the docstrings and docs/estimators.md. Shapes: rewards (P, n) float64 in,
weights (P, n) float64 out (sorted rows in and out where ``sorted_input``).
"""

from __future__ import annotations

import functools
import math

import torch

from rspo_patch.estimators.registry import Estimator, register_estimator

# ---------------------------------------------------------------------------------------------------------------------
# combinatorics in log space


def _log_comb(a: torch.Tensor, b: int | torch.Tensor) -> torch.Tensor:
    """log C(a, b) elementwise in float64; -inf where b < 0 or b > a (C = 0). a, b: integer-valued."""
    a = torch.as_tensor(a, dtype=torch.float64)
    b = torch.as_tensor(b, dtype=torch.float64, device=a.device)
    valid = (b >= 0) & (b <= a) & (a >= 0)
    a_ = torch.where(valid, a, torch.zeros_like(a))
    b_ = torch.where(valid, b, torch.zeros_like(b))
    out = torch.lgamma(a_ + 1) - torch.lgamma(b_ + 1) - torch.lgamma(a_ - b_ + 1)
    return torch.where(valid, out, torch.full_like(out, -math.inf))


def _comb_ratio(a: torch.Tensor, b: int, c: int, d: int) -> torch.Tensor:
    """C(a, b) / C(c, d) in float64 (0 where C(a, b) = 0); c, d scalars with C(c, d) > 0."""
    return torch.exp(_log_comb(a, b) - _log_comb(torch.tensor(float(c), dtype=torch.float64, device=a.device), d))


@functools.lru_cache(maxsize=256)
def _position_ratio(n: int, shift: int, b: int, c: int, d: int, device: torch.device) -> torch.Tensor:
    """(n,) float64 vector C(j - shift, b) / C(c, d) for sorted positions j = 1..n, cached per (n, k) (read-only).

    Exact: integer binomials by the recurrence C(m, b) = C(m-1, b) m / (m - b), each ratio rounded once (Python's int
    true division is correctly rounded; log-gamma ratios are off by up to ~3e-12 relative at n = 4096). O(n) big-int
    steps, a few ms at n = 4096, once per (n, k).
    """
    den = math.comb(c, d)
    out = [0.0] * n
    num = 1
    for j in range(1, n + 1):
        m = j - shift
        if b < 0 or m < b:
            continue
        num = 1 if m == b else num * m // (m - b)
        out[j - 1] = num / den
    return torch.tensor(out, dtype=torch.float64, device=device)


@functools.lru_cache(maxsize=256)
def _position_prefix(n: int, shift: int, b: int, c: int, d: int, device: torch.device) -> torch.Tensor:
    """(n,) inclusive prefix sums of ``_position_ratio(n, shift, b, c, d)``, cached per (n, k) (read-only)."""
    return torch.cumsum(_position_ratio(n, shift, b, c, d, device), 0)


# ---------------------------------------------------------------------------------------------------------------------
# risk-neutral estimators


@register_estimator(Estimator.PG, unbiased=False, uses_k=False,
                    description="REINFORCE without baseline: w_i = R_i (the k = 1 case of every k-method)")
def pg(rewards: torch.Tensor, *, k: int) -> torch.Tensor:
    """w_i = R_i. rewards (P, n) -> (P, n). Unbiased for grad E[R] (J_1)."""
    return rewards.clone()


@register_estimator(Estimator.GRPO, unbiased=False, unbiased_at_k1=False, uses_k=False, min_n=2,
                    hyperparameters={"eps": 1e-9},
                    description="GRPO / OpenRLHF group_norm: (R_i - mean) / (std + eps), unbiased std")
def grpo(rewards: torch.Tensor, *, k: int, eps: float) -> torch.Tensor:
    """w_i = (R_i - mean_j R_j) / (std_j R_j + eps), std with Bessel's correction as OpenRLHF's group_norm. (P, n).
    Rows are shifted by their first entry first (w is shift-invariant): a constant group gets exactly 0."""
    r = rewards - rewards[:, :1]
    return (r - r.mean(dim=1, keepdim=True)) / (r.std(dim=1, keepdim=True, unbiased=True) + eps)


# ---------------------------------------------------------------------------------------------------------------------
# Pass@k / Max@k: the paper's baseline and RSPO


@register_estimator(Estimator.BASELINE, unbiased=True, k_divides_n=True,
                    description="the 'hitchhiking' baseline: w_i = k * max of its block of k consecutive responses")
def baseline(rewards: torch.Tensor, *, k: int) -> torch.Tensor:
    """Split each group into n/k consecutive blocks of size k; every response gets k * max(block).

    Unbiased: each block is an iid k-sample, and grad J_k = E[max(R_1..R_k) sum_i grad log pi(y_i)]; with n/k blocks
    the (1/n) convention gives the factor k. (P, n) -> (P, n).
    """
    P, n = rewards.shape
    block_max = rewards.view(P, n // k, k).amax(dim=2, keepdim=True)
    return (k * block_max).expand(P, n // k, k).reshape(P, n).clone()


@register_estimator(Estimator.RSPO_PASS, unbiased=True, binary_only=True,
                    description="RSPO Pass@k (Theorem 4.3): w_i = k C(n-c, k-1) / C(n-1, k-1) R_i")
def rspo_pass(rewards: torch.Tensor, *, k: int) -> torch.Tensor:
    """w_i = k * C(n - c, k - 1) / C(n - 1, k - 1) * R_i, c = number of correct responses in the group.

    C(n-c, k-1)/C(n-1, k-1) is the unbiased leave-one-out estimate of (1 - w)^(k-1) from the other n-1 responses when
    y_i is correct (Theorem 4.3, with the normalisation the paper's Eq. 8 omits). rewards 0/1 (P, n) -> (P, n).
    """
    n = rewards.shape[1]
    c = rewards.sum(dim=1, keepdim=True)  # (P, 1)
    return k * _comb_ratio(n - c, k - 1, n - 1, k - 1) * rewards


@register_estimator(Estimator.RSPO_PASS_PLUGIN, unbiased=False, binary_only=True, n_minus_k=None,
                    description="RSPO Pass@k plug-in (Eq. 7): w_i = k (1 - c/n)^(k-1) R_i (biased)")
def rspo_pass_plugin(rewards: torch.Tensor, *, k: int) -> torch.Tensor:
    """w_i = k * (1 - c/n)^(k-1) * R_i with the plug-in success rate c/n (biased for k >= 2). (P, n) -> (P, n)."""
    fail = 1.0 - rewards.mean(dim=1, keepdim=True)
    return k * fail.pow(k - 1) * rewards


def _rspo_max_rows(rs: torch.Tensor, k: int) -> torch.Tensor:
    """Max@k weights of ascending rows rs (P, n), in sorted order; k >= 2.

        w_(p) = k sum_{j <= p} (R_(p) - R_(j)) b_j,   b_j = C(j-1, k-2) / C(n-1, k-1)   (positions 1-indexed)
              = R_(p) B_p - RB_p,   B_p = k sum_{j <= p} b_j (cached), RB_p = k sum_{j <= p} R_(j) b_j (one cumsum),

    after shifting each row by its minimum (w is shift-invariant for k >= 2; the shift removes most cancellation).
    Tied entries R_(j) = R_(p), j != p, add (R_(p) - R_(j)) b_j = 0, so summing to the position p equals summing to
    c_< (Theorem C.4's form) and tied responses get equal weights; the j = p term is 0 too, hence inclusive sums.
    """
    n = rs.shape[1]
    rs.sub_(rs[:, :1].clone())  # in place: rs is owned (sorted_input)
    kb = k * _position_ratio(n, 1, k - 2, n - 1, k - 1, rs.device)  # (n,): k b_j
    B = k * _position_prefix(n, 1, k - 2, n - 1, k - 1, rs.device)  # (n,): k sum_{j <= p} b_j
    RB = torch.mul(rs, kb).cumsum_(1)
    # not a fused addcmul: with separate roundings the (k-1)-th lowest entry (B_p = k b_p, RB_p = R_(p) k b_p) gets an
    # exact 0 (fused, it keeps the rounding residue of RB_p). Exact value >= 0 (hockey stick): the clamp is for
    # rounding.
    return rs.mul_(B).sub_(RB).clamp_min_(0.0)


@register_estimator(Estimator.RSPO_MAX, unbiased=True, sorted_input=True,
                    description="RSPO Max@k (Theorem C.4): k/C(n-1,k-1) [R_i C(c_<,k-1) - sum_{j<=c_<} R_(j) C(j-1,k-2)]")
def rspo_max(rs: torch.Tensor, *, k: int) -> torch.Tensor:
    """Exact unbiased Max@k weight, ties included (Theorem C.4), O(n log n) per group.

    w_i = k / C(n-1, k-1) * [R_i C(c_<[i], k-1) - sum_{j=1}^{c_<[i]} R_(j) C(j-1, k-2)],
    R_(1) <= ... <= R_(n) ascending, c_<[i] = #{j : R_j < R_i}. Equivalently k E_T[(R_i - max T)^+] over the
    (k-1)-subsets T of the other responses. Non-negative whatever the signs of R; zero for the k-1 lowest responses.
    k = 1 gives R_i. Computed on sorted rows by ``_rspo_max_rows`` (no tie counting needed). (P, n) -> (P, n).
    """
    return rs.clone() if k == 1 else _rspo_max_rows(rs, k)


@register_estimator(Estimator.RSPO_MAX_SORTED, unbiased=True, sorted_input=True,
                    description="RSPO Max@k (Theorem 4.4): c_< replaced by the position in a stable ascending sort")
def rspo_max_sorted(rs: torch.Tensor, *, k: int) -> torch.Tensor:
    """Theorem 4.4's form: w for sorted position p (1-indexed) uses p - 1 in place of c_<:

    w_(p) = k / C(n-1, k-1) * [R_(p) C(p-1, k-1) - sum_{j<p} R_(j) C(j-1, k-2)].
    Tied lower entries contribute (R_(p) - R_(j)) = 0, so this equals ``rspo_max`` also with ties (tested), and both
    share ``_rspo_max_rows``. (P, n) -> (P, n).
    """
    return rs.clone() if k == 1 else _rspo_max_rows(rs, k)


def _tie_counts(rs: torch.Tensor, tied: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """c_< and c_<= (P, n) int64 for ascending rows rs, given tied = (rs[:, 1:] == rs[:, :-1]) (P, n-1).

    Run ids (cumsum of run starts), then each run's first position scattered into a (P, n + 2) table whose unused
    slots hold n: c_< = first position of the own run, c_<= = first position of the next run. ~2x cheaper than two
    searchsorted calls on 2 cores.
    """
    P, n = rs.shape
    new = torch.ones(P, n, dtype=torch.bool, device=rs.device)
    torch.logical_not(tied, out=new[:, 1:])
    run = new.cumsum(1)  # 1-based run id of every position
    start = torch.full((P, n + 2), n, dtype=torch.int64, device=rs.device)
    start.scatter_(1, torch.where(new, run, n + 1), torch.arange(n, device=rs.device).expand(P, n))
    return start.gather(1, run), start.gather(1, run + 1)


@functools.lru_cache(maxsize=256)
def _plugin_powers(n: int, k: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(p/n)^(k-1), (p/n)^(k-2) for positions p = 1..n: P_<= of each sorted position when no reward is tied."""
    p_le = torch.arange(1, n + 1, dtype=torch.float64, device=device) / n
    return p_le.pow(k - 1), p_le.pow(k - 2)


@register_estimator(Estimator.RSPO_MAX_PLUGIN, unbiased=False, n_minus_k=None, sorted_input=True,
                    description="RSPO Max@k plug-in (Eq. 11): k [R_i P_<=(y_i)^(k-1) - (k-1) g(y_i)] (biased)")
def rspo_max_plugin(rs: torch.Tensor, *, k: int) -> torch.Tensor:
    """Eq. 11: P_<=(y_i) = #{j: R_j <= R_i} / n,  g(y_i) = (1/n) sum_{j: R_j < R_i} R_j P_<=(y_j)^(k-2),
    w_i = k [R_i P_<=(y_i)^(k-1) - (k-1) g(y_i)]. Biased plug-in version. Sorted rows (P, n) -> (P, n).

    Without ties P_<= of sorted position p is p/n and g sums the p-1 lower entries (cached powers, one cumsum); the
    rows that have ties are recomputed with the counts of ``_tie_counts``.
    """
    if k == 1:
        return rs.clone()
    P, n = rs.shape
    tied = rs[:, 1:] == rs[:, :-1]
    rows = tied.any(1).nonzero().squeeze(1)
    if rows.numel() == P:
        return _rspo_max_plugin_tied(rs, tied, k)
    p_k1, p_k2 = _plugin_powers(n, k, rs.device)
    G = torch.mul(rs, p_k2).cumsum_(1)  # inclusive; shifted by one below: n g = sum_{j < p}
    w = torch.mul(rs, p_k1)
    w[:, 1:].sub_(G[:, :-1], alpha=(k - 1) / n)
    w.mul_(k)
    if rows.numel():
        w[rows] = _rspo_max_plugin_tied(rs[rows], tied[rows], k)
    return w


def _rspo_max_plugin_tied(rs: torch.Tensor, tied: torch.Tensor, k: int) -> torch.Tensor:
    """Eq. 11 on ascending rows with ties: P_<= and the range of g from the tie counts c_<=, c_<. (P, n) -> (P, n)."""
    n = rs.shape[1]
    below, le = _tie_counts(rs, tied)
    p_le = le.to(torch.float64).div_(n)  # P_<= >= 1/n
    p_k2 = p_le.pow(k - 2)
    G = torch.nn.functional.pad(torch.cumsum(rs * p_k2, 1), (1, 0)).gather(1, below)  # n g: sum of the c_< lowest
    return torch.addcmul(G.mul_(-(k - 1) / n), rs, p_k2.mul_(p_le)).mul_(k)


# ---------------------------------------------------------------------------------------------------------------------
# peers


def _add_suffix_sums_(w: torch.Tensor, rs: torch.Tensor, coef: torch.Tensor) -> torch.Tensor:
    """w[:, p] += sum_{j > p} rs[:, j] coef[j], in place; returns w. w, rs (P, n); coef (n,).

    One flipped copy of rs, scaled and cumulated in place (its column q holds the suffix sum from n-1-q), added to w
    with a shift of one: exact exclusive sums, never a total minus a prefix.
    """
    rev = torch.flip(rs, [1]).mul_(coef.flip(0)).cumsum_(1)
    w[:, :-1].add_(rev[:, :-1].flip(1))
    return w


@register_estimator(Estimator.PKPO_S, unbiased=True, sorted_input=True,
                    description="PKPO s (Walder & Karkhanis 2025): n/C(n,k) sum_{S ∋ i, |S|=k} max(S)")
def pkpo_s(rs: torch.Tensor, *, k: int) -> torch.Tensor:
    """w_i = n * s_i, s_i = (1/C(n,k)) sum over k-subsets S containing i of max(S) (no baseline). On sorted rows (P, n):
    s_(p) = [R_(p) C(p-1, k-1) + sum_{j>p} R_(j) C(j-2, k-2)] / C(n, k)."""
    n = rs.shape[1]
    own = n * _position_ratio(n, 1, k - 1, n, k, rs.device)  # (n,): subsets where p itself is the max
    other = n * _position_ratio(n, 2, k - 2, n, k, rs.device)  # (n,): subsets whose max sits at j > p
    return _add_suffix_sums_(torch.mul(rs, own), rs, other)


def _subset_contrast_rows(rs: torch.Tensor, k: int, c: float) -> torch.Tensor:
    """n s_(p) - c rho_{-(p)} on ascending rows (P, n), in sorted order; needs n > k. rs is read, not written.

    n s_(p) = n [R_(p) C(p-1, k-1) + sum_{j>p} R_(j) C(j-2, k-2)] / C(n, k)            (PKPO's s, times n)
    rho_{-(p)} = [sum_{j<p} R_(j) C(j-1, k-1) + sum_{j>p} R_(j) C(j-2, k-1)] / C(n-1, k)   (max@k estimate without p)
    Both need a suffix sum over j > p; they share one: w_(p) = own_p R_(p) - sum_{j<p} R_(j) lo_j + sum_{j>p} R_(j) mixed_j.
    """
    n = rs.shape[1]
    own = n * _position_ratio(n, 1, k - 1, n, k, rs.device)
    lo = c * _position_ratio(n, 1, k - 1, n - 1, k, rs.device)
    mixed = n * _position_ratio(n, 2, k - 2, n, k, rs.device) - c * _position_ratio(n, 2, k - 1, n - 1, k, rs.device)
    w = torch.mul(rs, own)
    _add_suffix_sums_(w, rs, mixed)
    head = torch.mul(rs, lo).cumsum_(1)  # inclusive; shifted by one below: sum_{j < p}
    w[:, 1:].sub_(head[:, :-1])
    return w


@register_estimator(Estimator.PKPO_SLOO, unbiased=True, min_n=2, n_minus_k=1, sorted_input=True,
                    description="PKPO s^loo (Walder & Karkhanis 2025, Eq. 29, Listing 1), times n: "
                                "n (s_i - k rho_{-i} / (n-1))")
def pkpo_sloo(rs: torch.Tensor, *, k: int) -> torch.Tensor:
    """PKPO's s^loo times n. Listing 1: ``sloo = s - b / (n - 1)`` with b_i = sum_{j != i} s_j(batch without i)
    = k rho_{-i}, rho_{-i} the unbiased max@k estimate from the other n - 1 responses (each k-subset of the others is
    counted once per member). So w_i = n s_i - (n k / (n - 1)) rho_{-i}; k = 1 gives R_i - n/(n-1) mean_{j != i} R_j.
    Not centred: sum_i w_i = -k n rho / (n - 1). Sorted rows (P, n) -> (P, n); needs n > k.
    """
    n = rs.shape[1]
    return _subset_contrast_rows(rs, k, n * k / (n - 1))


@register_estimator(Estimator.MAXPO, unbiased=True, min_n=2, n_minus_k=1, sorted_input=True,
                    description="MaxPO (Takashiro et al. 2026): RSPO/PKPO s^(loo-1) weight minus a leave-two-out "
                                "baseline; centred; = k [mean max of k-subsets with i - mean max of those without i]")
def maxpo(rs: torch.Tensor, *, k: int) -> torch.Tensor:
    """MaxPO's advantage with the leave-two-out (L2O) baseline, times n (docs/estimators.md derives it):

        w_i = a_i - b_i,   a_i = k E_T[(R_i - max T)^+]  (rspo_max = n PKPO s^(loo-1); T: (k-1)-subsets of the others)
        b_i = (1/(n-1)) sum_{j != i} a_j^{(-i)},   a_j^{(-i)} = a_j computed without response i (leaves out i and j)
            = E_U[max U - second max U] over the k-subsets U of the others   (n > k)

    b_i does not depend on y_i (unbiased); sum_i b_i = sum_i a_i (each group sums to 0). Algebraically w_i = k [E_{S ∋ i}
    max S - E_{S ∌ i} max S] over k-subsets S = n s_i - k rho_{-i} (tested against reference.maxpo_l2o_weights), computed
    so in O(n log n); shift-invariant, so rows are shifted by their minimum first. k = 1: RLOO. Sorted rows (P, n).
    """
    rs.sub_(rs[:, :1].clone())  # in place: rs is owned (sorted_input)
    return _subset_contrast_rows(rs, k, float(k))


@register_estimator(Estimator.PASSK_CHEN, unbiased=False, unbiased_at_k1=False, binary_only=True, min_n=2,
                    description="Chen et al. 2025 analytic Pass@k advantage (binary rewards)")
def passk_chen(rewards: torch.Tensor, *, k: int) -> torch.Tensor:
    """Pass@k Training (Chen et al., arXiv 2508.10751), per group with c correct, n_neg = n - c:

    rho = 1 - C(n_neg, k)/C(n, k),  sigma = sqrt(rho (1 - rho)),
    A_pos = (1 - rho) / sigma,  A_neg = (1 - rho - C(n_neg - 1, k - 1)/C(n - 1, k - 1)) / sigma,
    and 0 for the whole group when sigma = 0 (all correct or all wrong). (P, n) 0/1 -> (P, n).
    """
    n = rewards.shape[1]
    n_neg = n - rewards.sum(dim=1, keepdim=True)
    rho = 1.0 - _comb_ratio(n_neg, k, n, k)
    sigma = torch.sqrt((rho * (1.0 - rho)).clamp_min(0.0))
    a_pos = 1.0 - rho
    a_neg = 1.0 - rho - _comb_ratio(n_neg - 1, k - 1, n - 1, k - 1)
    ok = sigma > 1e-12
    safe = torch.where(ok, sigma, torch.ones_like(sigma))
    w = torch.where(rewards > 0.5, a_pos, a_neg) / safe
    return torch.where(ok, w, torch.zeros_like(w))


@register_estimator(Estimator.GRPO_PASSK, unbiased=False, unbiased_at_k1=False, uses_k=False, min_n=2,
                    hyperparameters={"norm_by_std": False, "eps": 1e-6},
                    description="verl grpo_passk (Tang et al.): the best response gets r_max - r_2nd, others 0")
def grpo_passk(rewards: torch.Tensor, *, k: int, norm_by_std: bool, eps: float) -> torch.Tensor:
    """w = r_max - r_2nd for the first argmax of each group, 0 elsewhere; optionally divided by (group std + eps).

    Equals RSPO's Max@k weight at k = n divided by n. (P, n) -> (P, n).
    """
    top2 = torch.topk(rewards, 2, dim=1).values  # (P, 2)
    gap = (top2[:, :1] - top2[:, 1:])  # (P, 1)
    if norm_by_std:
        gap = gap / (rewards.std(dim=1, keepdim=True, unbiased=True) + eps)
    w = torch.zeros_like(rewards)
    return w.scatter_(1, rewards.argmax(dim=1, keepdim=True), gap)


@register_estimator(Estimator.RS_GRPO, unbiased=False, unbiased_at_k1=False, uses_k=False, min_n=2,
                    hyperparameters={"beta": 2.0},
                    description="RS-GRPO (Jiang et al. 2025): (1/beta)(exp(beta R_i) / mean_j exp(beta R_j) - 1)")
def rs_grpo(rewards: torch.Tensor, *, k: int, beta: float) -> torch.Tensor:
    """w_i = (1/beta) (exp(beta R_i) / mean_j exp(beta R_j) - 1), computed with the row max subtracted. (P, n).
    n = 1 is rejected like grpo's (the RS-GRPO code would return (e^{beta R} - 1)/beta, i.e. no baseline)."""
    if not beta > 0:
        raise ValueError(f"rs_grpo: beta must be > 0, got {beta}")
    z = beta * (rewards - rewards.amax(dim=1, keepdim=True))
    e = torch.exp(z)
    return (e / e.mean(dim=1, keepdim=True) - 1.0) / beta
