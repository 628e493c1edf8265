"""Check one registered estimator against its declared metadata: ``python -m rspo_patch.estimators check NAME``.

Four properties, one :class:`Verdict` each (status PASS, FAIL, SKIP, NOTE or INFO; only FAIL fails):

unbiased  exact enumeration, float64. Softmax policy pi = softmax(theta) over m in {3, 4} outcomes, rewards r (m,).
          All T = m^n sample tuples give the exact E = E[(1/n) sum_i w_i grad log pi(y_i)] (grad log pi(j) = e_j - pi),
          compared with grad J_k, J_k = E[max(r(y_1), ..., r(y_k))] from all m^k tuples and autograd. A case passes
          when |E - grad J_k| <= ATOL + RTOL |grad J_k| in every component (the tolerance of
          tests/estimators/test_unbiased_enumeration.py). Strict where ``spec.unbiased_for(k)``; at the other k the
          largest bias is reported (NOTE when no case is measurably biased).
finite    weights finite, shape and dtype kept, the caller's rewards untouched, two calls equal: float32 and float64,
          n up to 4096, k in {1, 2, 3, n/2, n - n_minus_k, n}, reward scales 1e-6, 1, 1e6, ties and constant groups;
          an empty batch (0, n) gives (0, n).
scale     the 1/n convention is the unbiased check's; here: permutation equivariance within a group (skipped for
          k_divides_n: blocks of consecutive responses), rows independent of each other, and weights that do not change
          with k when ``uses_k`` is False. Tolerance SCALE_TOL relative to the largest |weight|.
speed     milliseconds per call at P = 1024 beside torch.sort of the same tensor (informational).

Shapes: rewards (P, n) -> weights (P, n), as everywhere in the registry (package docstring).
"""

from __future__ import annotations

import functools
import itertools
import time
from dataclasses import dataclass

import torch

from rspo_patch.bench import time_call
from rspo_patch.estimators.registry import EstimatorSpec, check_estimator_args

INF = float("inf")
RTOL, ATOL = 1e-10, 1e-12  # unbiased: per component, as the suite's enumeration test
SCALE_TOL = 1e-10  # scale: |a - b| <= SCALE_TOL * max|b| + ATOL (rounding of sums taken in another order)
# (n, k) of the enumeration: m^n <= 4096 tuples; each pair is used where the metadata allows it
NK = ((1, 1), (2, 1), (2, 2), (3, 1), (3, 2), (3, 3), (4, 2), (4, 3), (4, 4), (5, 2), (5, 3), (5, 4), (6, 2), (6, 3),
      (6, 6))
REWARD_SETS = {"distinct": (0.3, 1.0, -0.5, 2.0), "ties": (1.0, 0.0, 1.0, 0.5), "negative": (-2.0, -1.0, -3.5, -1.0),
               "binary": (1.0, 0.0, 0.0, 1.0), "binary_high": (0.0, 1.0, 1.0, 0.0)}  # the first m are the outcomes' R
LOGITS = {"mixed": (0.2, -0.7, 0.5, 0.1), "uniform": (0.0, 0.0, 0.0, 0.0), "peaked": (1.5, -1.0, 0.3, -0.5)}


@dataclass(frozen=True)
class Verdict:
    """One property's outcome: ``status`` in PASS, FAIL, SKIP, NOTE, INFO; ``message`` one line with the numbers."""

    prop: str
    status: str
    message: str

    def line(self) -> str:  # "PASS unbiased: ..."
        return f"{self.status} {self.prop}: {self.message}"


def allowed(spec: EstimatorSpec, n: int, k: int, hp: dict) -> bool:
    """Whether the registry accepts (n, k) for this estimator (``check_estimator_args``: min_n, n_minus_k, k | n)."""
    try:
        check_estimator_args(spec.name, n=n, k=k, **hp)
    except ValueError:
        return False
    return True


def call(spec: EstimatorSpec, rewards: torch.Tensor, k: int, hp: dict) -> tuple[torch.Tensor | None, str | None]:
    """``spec.fn(rewards, k=k, **hp)`` -> (weights, None), or (None, the exception as one line)."""
    try:
        w = spec.fn(rewards, k=k, **hp)
    except Exception as exc:  # noqa: BLE001 - a user's estimator may raise anything; the verdict names it
        text = str(exc).strip().splitlines()
        return None, f"raised {type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
    if not isinstance(w, torch.Tensor):
        return None, f"returned {type(w).__name__}, not a Tensor"
    return w, None


# ---------------------------------------------------------------------------------------------------------------------
# unbiased: exact enumeration


@functools.lru_cache(maxsize=64)
def all_tuples(m: int, n: int) -> torch.Tensor:
    """(m^n, n) int64: every sample tuple of n draws from m outcomes (read-only, cached)."""
    return torch.tensor(list(itertools.product(range(m), repeat=n)), dtype=torch.int64).reshape(-1, n)


@functools.lru_cache(maxsize=4096)
def exact_grad_jk(logits: tuple, rewards: tuple, k: int) -> torch.Tensor:
    """grad_theta J_k (m,) float64; J_k = sum over the m^k tuples y of prod_t pi(y_t) max_t r(y_t), pi = softmax."""
    theta = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    tuples = all_tuples(len(logits), k)
    J = (torch.log_softmax(theta, 0)[tuples].sum(1).exp() * torch.tensor(rewards, dtype=torch.float64)[tuples]
         .amax(1)).sum()
    (g,) = torch.autograd.grad(J, theta)
    return g


def expected_gradient(w: torch.Tensor, tuples: torch.Tensor, logits: tuple) -> torch.Tensor:
    """E[(1/n) sum_i w_i grad log pi(y_i)] (m,) exactly: w (T, n) weights of the tuples (T, n), T = m^n, float64.

    With q_T = prod_i pi(y_{T,i}), grad log pi(j) = e_j - pi: A_j = sum_{T,i: y=j} q_T w_{T,i} / n, E = A - pi sum A.
    """
    m, n = len(logits), tuples.shape[1]
    pi = torch.softmax(torch.tensor(logits, dtype=torch.float64), 0)
    qw = pi[tuples].prod(1, keepdim=True) * w.to(torch.float64) / n  # (T, n)
    A = torch.bincount(tuples.flatten(), weights=qw.flatten(), minlength=m)
    return A - pi * A.sum()


@dataclass(frozen=True)
class BiasCase:
    """E (``estimate``, None where the estimator failed: ``error``) against grad J_k (``exact``) for one policy."""

    n: int
    k: int
    rewards: tuple
    logits: tuple
    exact: torch.Tensor
    estimate: torch.Tensor | None
    error: str | None = None

    @property
    def abs_bias(self) -> float:
        """max_j |E_j - grad J_k,j| (inf where the estimator failed or E is not finite)."""
        if self.estimate is None or not bool(torch.isfinite(self.estimate).all()):
            return INF
        return float((self.estimate - self.exact).abs().max())

    @property
    def rel_bias(self) -> float:  # abs_bias / max_j |grad J_k,j|
        return self.abs_bias / max(float(self.exact.abs().max()), 1e-300)

    @property
    def within(self) -> bool:  # the tolerance of the suite's enumeration test, per component
        return self.estimate is not None and bool(
            ((self.estimate - self.exact).abs() <= ATOL + RTOL * self.exact.abs()).all())

    def where(self) -> str:
        return f"n={self.n}, k={self.k}, rewards={list(self.rewards)}, logits={list(self.logits)}"

    def describe(self) -> str:
        if self.error is not None:
            return f"{self.error} at {self.where()}"
        if self.abs_bias == INF:
            return f"expectation not finite (weights not finite) at {self.where()}"
        return f"largest |bias| {self.abs_bias:.6g} ({self.rel_bias:.6g} of max|grad J_k|) at {self.where()}"


def reward_sets(binary_only: bool) -> list[tuple]:
    """The reward vectors (m,) of the policies, m in {3, 4}: 0/1 sets only for binary-only estimators."""
    return [r[:m] for name, r in REWARD_SETS.items() for m in (3, 4) if not binary_only or name.startswith("binary")]


def bias_cases(spec: EstimatorSpec, hp: dict, nk=NK) -> list[BiasCase]:
    """One BiasCase per allowed (n, k) in ``nk``, reward set and logit vector; the weights of a (rewards, n, k) are
    computed once, with the m^n tuples as the batch axis, and shared by the logit vectors."""
    cases = []
    for n, k in nk:
        if not allowed(spec, n, k, hp):
            continue
        for r in reward_sets(spec.binary_only):
            tuples = all_tuples(len(r), n)
            R = torch.tensor(r, dtype=torch.float64)[tuples]  # (T, n)
            w, err = call(spec, R, k, hp)
            if w is not None and tuple(w.shape) != tuple(R.shape):
                w, err = None, f"returned shape {tuple(w.shape)} for rewards {tuple(R.shape)}"
            for theta in LOGITS.values():
                theta = theta[:len(r)]
                est = None if w is None else expected_gradient(w, tuples, theta)
                cases.append(BiasCase(n, k, r, theta, exact_grad_jk(theta, r, k), est, err))
    return cases


def _scale_hint(worst: BiasCase, cases: list[BiasCase]) -> str:
    """'; at n=.. E = c x grad J_k ...' when at the worst case's n every policy and k is off by one factor c (a weight
    missing a factor n, say); '' otherwise."""
    same = [c for c in cases if c.n == worst.n]
    if any(c.abs_bias == INF for c in same):
        return ""
    g = worst.exact
    factor = float(worst.estimate @ g / (g @ g))
    if all(float((c.estimate - factor * c.exact).abs().max()) <= 1e-8 * float(c.exact.abs().max()) + ATOL
           for c in same):
        return (f"; at n={worst.n} E = {factor:.6g} x grad J_k for every policy and k: a scale error? "
                f"(convention: E[(1/n) sum_i w_i grad log pi(y_i)] = grad J_k)")
    return ""


def check_unbiased(spec: EstimatorSpec, hp: dict, nk=NK) -> Verdict:
    """Strict where the spec claims unbiasedness (``unbiased_for(k)``); the largest bias as information elsewhere."""
    cases = bias_cases(spec, hp, nk)
    if not cases:
        return Verdict("unbiased", "SKIP", f"no (n, k) of the enumeration grid {list(nk)} is allowed by the metadata "
                                           f"(min_n={spec.min_n}, n_minus_k={spec.n_minus_k}, "
                                           f"k_divides_n={spec.k_divides_n})")
    tol = f"|E - grad J_k| <= {ATOL:g} + {RTOL:g} |grad J_k|"
    strict = [c for c in cases if spec.unbiased_for(c.k)]
    info = [c for c in cases if not spec.unbiased_for(c.k)]
    status, parts = "PASS", []
    if strict:
        claim = "for every k" if spec.unbiased else "at k = 1"
        bad = [c for c in strict if not c.within]
        worst = max(strict, key=lambda c: c.abs_bias)
        pairs = sorted({(c.n, c.k) for c in strict})
        if bad:
            status = "FAIL"
            parts.append(f"declared unbiased {claim}, but {len(bad)} of {len(strict)} cases are outside {tol}; "
                         f"{worst.describe()}{_scale_hint(worst, strict)}")
        else:
            parts.append(f"declared unbiased {claim}: all {len(strict)} cases within {tol} ((n, k) in "
                         f"{' '.join(f'{n},{k}' for n, k in pairs)}; {len(LOGITS)} logit vectors, "
                         f"{len(reward_sets(spec.binary_only))} reward sets, m in 3, 4); largest |bias| "
                         f"{worst.abs_bias:.2g}")
    if info:
        ks = sorted({c.k for c in info})
        at = f"at k in {{{', '.join(map(str, ks))}}}" if strict else "at every k"
        measured = [c for c in info if c.abs_bias < INF]
        unmeasured = [c for c in info if c.abs_bias == INF]  # raised, or weights not finite: "finite" says more
        broken = f"; {len(unmeasured)} of {len(info)} not measured: {unmeasured[0].describe()}" if unmeasured else ""
        if not measured:
            parts.append(f"declared biased {at}{broken}")
        elif all(c.within for c in measured):
            status = "NOTE" if status == "PASS" else status
            parts.append(f"declared biased {at}, but all {len(measured)} such cases are within {tol}: the metadata may "
                         f"claim too little (unbiased=True / unbiased_at_k1=True?){broken}")
        else:
            worst = max(measured, key=lambda c: c.abs_bias)
            parts.append(f"declared biased {at}: {sum(not c.within for c in measured)} of {len(info)} cases "
                         f"measurably biased; {worst.describe()}{broken}")
    if spec.binary_only:
        parts.append("0/1 rewards only (Pass@k = Max@k there)")
    return Verdict("unbiased", status, "; ".join(parts))


# ---------------------------------------------------------------------------------------------------------------------
# finite


def edge_rewards(P: int, n: int, binary: bool, scale: float, seed: int = 0) -> torch.Tensor:
    """(P, n) float64 rewards, P >= 5: random rows, and the edge cases estimators trip on.

    binary: Bernoulli(0.3) rows, all 0, all 1, a single 1, all but one 1. Otherwise (times ``scale``): uniform(-1, 1)
    rows, 5 tied levels in [0, 1], a constant row, a zero row, one high response over a constant rest.
    """
    g = torch.Generator().manual_seed(seed + n)
    if binary:
        R = (torch.rand(P, n, generator=g, dtype=torch.float64) < 0.3).double()
        R[1], R[2], R[3], R[4] = 0.0, 1.0, 0.0, 1.0
        R[3, -1], R[4, 0] = 1.0, 0.0
        return R
    R = torch.rand(P, n, generator=g, dtype=torch.float64) * 2 - 1
    R[1] = torch.floor(5 * torch.rand(n, generator=g, dtype=torch.float64)) / 4
    R[2], R[3], R[4] = 0.5, 0.0, -0.25
    R[4, n // 2] = 1.0
    return R * scale


def finite_grid(spec: EstimatorSpec, hp: dict, ns=(1, 2, 3, 16, 1024, 4096)) -> list[tuple[int, int]]:
    """(n, k) pairs of the finiteness check: k in {1, 2, 3, n/2, n - n_minus_k, n}, where the metadata allows."""
    return [(n, k) for n in ns for k in sorted({1, 2, 3, n // 2, n - (spec.n_minus_k or 0), n})
            if k >= 1 and allowed(spec, n, k, hp)]


def _head(row: torch.Tensor, m: int = 6) -> str:
    """The first ``m`` entries of a (n,) row as a list, '...' if there are more."""
    return str(row[:m].tolist())[:-1] + (", ...]" if row.numel() > m else "]")


def _finite_problem(spec: EstimatorSpec, R: torch.Tensor, k: int, hp: dict) -> str | None:
    """The first thing wrong with ``spec.fn(R, k=k)``: an exception, shape, dtype, non-finite weights, a write into R,
    or a second call that differs; None if all is well."""
    before = R.clone()
    w, err = call(spec, R, k, hp)
    if err:
        row = next((p for p in range(R.shape[0]) if call(spec, R[p:p + 1].clone(), k, hp)[1]), None)
        return err if row is None else f"{err} (row {row} alone too: rewards {_head(R[row])})"
    if tuple(w.shape) != tuple(R.shape) or w.dtype != R.dtype:
        return f"returned shape {tuple(w.shape)} {w.dtype} for rewards {tuple(R.shape)} {R.dtype}"
    if not torch.equal(R, before):
        return "modified its input rewards in place (the caller's tensor)"
    bad = ~torch.isfinite(w)
    if bool(bad.any()):
        row = int(bad.any(1).nonzero()[0])
        return f"weights not finite ({w[bad][0].item()}) in row {row}, rewards {_head(R[row])}"
    w2, err = call(spec, R, k, hp)
    if err or not torch.equal(w, w2):
        return "two calls on the same rewards differ (not deterministic)" if not err else f"second call {err}"
    return None


def check_finite(spec: EstimatorSpec, hp: dict, ns=(1, 2, 3, 16, 1024, 4096)) -> Verdict:
    """Every (n, k) of ``finite_grid`` x float32/float64 x reward scale; and an empty batch."""
    grid = finite_grid(spec, hp, ns)
    if not grid:
        return Verdict("finite", "SKIP", f"no (n, k) with n in {list(ns)} is allowed by the metadata")
    scales = (1.0,) if spec.binary_only else (1e-6, 1.0, 1e6)
    problems, calls = [], len(grid) * 2 * len(scales)
    for (n, k), dtype, scale in itertools.product(grid, (torch.float32, torch.float64), scales):
        problem = _finite_problem(spec, edge_rewards(6, n, spec.binary_only, scale).to(dtype), k, hp)
        if problem:
            problems.append(f"n={n}, k={k}, {str(dtype).removeprefix('torch.')}, scale {scale:g}: {problem}")
    n0, k0 = grid[-1]
    w, err = call(spec, torch.zeros(0, n0, dtype=torch.float64), k0, hp)
    if err or tuple(w.shape) != (0, n0):
        problems.append(f"empty batch (0, {n0}): {err or f'returned shape {tuple(w.shape)}'}")
    kinds = "0/1 rewards, all-0 and all-1 groups" if spec.binary_only else "scales 1e-6, 1, 1e6, ties, constant groups"
    what = (f"{calls} calls (n in {sorted({n for n, _ in grid})}, k in {{1, 2, 3, n/2, n - n_minus_k, n}} where "
            f"allowed, float32 and float64, {kinds})")
    if problems:
        return Verdict("finite", "FAIL", f"{len(problems)} problem(s) in {what}; first: {problems[0]}")
    return Verdict("finite", "PASS", f"{what}: weights finite, shape and dtype kept, rewards untouched, deterministic; "
                                     f"empty batch (0, n) -> (0, n)")


# ---------------------------------------------------------------------------------------------------------------------
# scale


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Same shape, non-finite in the same places (that is the finite check's business), and |a - b| <= SCALE_TOL
    max|b| + ATOL elsewhere."""
    if a.shape != b.shape or not torch.equal(torch.isfinite(a), torch.isfinite(b)):
        return False
    ok = torch.isfinite(b)
    a, b = a[ok], b[ok]
    scale = float(b.abs().max()) if b.numel() else 0.0
    return bool(((a - b).abs() <= SCALE_TOL * scale + ATOL).all())


def check_scale(spec: EstimatorSpec, hp: dict, ns=(5, 8, 13)) -> Verdict:
    """Permutation equivariance within a group, independence across groups, and k-independence if not ``uses_k``;
    float64 rewards (12, n) from ``edge_rewards`` plus random rows, n in ``ns`` (or min_n), k in {1, 2, 3, n-1, n}."""
    ns = [n for n in ns if n >= spec.min_n] or [spec.min_n]
    g = torch.Generator().manual_seed(1)

    def f(rewards, k):  # a fresh copy each call: an estimator that writes into its input fails "finite", not this
        return call(spec, rewards.clone(), k, hp)

    fails, tried = [], 0
    for n in ns:
        ks = [k for k in sorted({1, 2, 3, n - 1, n}) if k >= 1 and allowed(spec, n, k, hp)]
        R = edge_rewards(12, n, spec.binary_only, 1.0, seed=7)
        if not spec.binary_only:
            R[5:] = torch.randn(7, n, generator=g, dtype=torch.float64)
        perm = torch.rand(R.shape, generator=g).argsort(1)  # one permutation per row
        for k in ks:
            tried, where = tried + 1, f"n={n}, k={k}"
            w, err = f(R, k)
            if err:
                fails.append(f"{where}: {err}")
                continue
            if not spec.k_divides_n:
                wp, err = f(R.gather(1, perm), k)
                if err or not _close(wp, w.gather(1, perm)):
                    fails.append(f"{where}: weights of permuted rewards are not the permuted weights "
                                 f"(permutation equivariance){': ' + err if err else ''}")
            rows = [f(R[p:p + 1], k)[0] for p in range(R.shape[0])]
            if any(r is None for r in rows) or not _close(torch.cat(rows), w):
                fails.append(f"{where}: a row's weights change with the other rows of the batch")
            if not spec.uses_k and k != ks[0]:
                w1 = f(R, ks[0])[0]
                if w1 is None or not _close(w, w1):
                    fails.append(f"{where}: weights change with k, but uses_k=False")
    conv = ("1/n convention: the unbiased check" if spec.unbiased or spec.unbiased_at_k1
            else "no convention for a biased estimator")
    perm_text = ("permutation equivariance skipped (k_divides_n: blocks of consecutive responses, order-dependent by "
                 "design)" if spec.k_divides_n else "permutation-equivariant within groups")
    kind = f"{tried} (n, k) on 12 float64 groups, n in {ns}, tolerance {SCALE_TOL:g} x max|w|"
    if fails:
        return Verdict("scale", "FAIL", f"{len(fails)} of the checks on {kind} failed; first: {fails[0]}")
    return Verdict("scale", "PASS", f"{perm_text}; rows independent"
                                    f"{'; weights independent of k (uses_k=False)' if not spec.uses_k else ''}; "
                                    f"{kind}; {conv}")


# ---------------------------------------------------------------------------------------------------------------------
# speed


def check_speed(spec: EstimatorSpec, hp: dict, prompts: int = 1024, ns=(16, 64, 256, 1024), repeats: int = 5,
                slow_s: float = 2.0) -> Verdict:
    """Median ms per call at (prompts, n), float32 rewards (0/1 with p = 0.3 for binary-only, else uniform(0, 1)),
    beside torch.sort of the same tensor; k the largest allowed of {4, 3, 2, 1}. Larger n are skipped once one call
    takes over ``slow_s`` seconds (a Python-loop estimator); a call over 0.2 s is timed once, not ``repeats`` times."""
    g = torch.Generator().manual_seed(0)
    cells, note = [], ""
    for n in ns:
        k = next((k for k in (4, 3, 2, 1) if allowed(spec, n, k, hp)), None)
        if k is None:
            continue
        R = torch.rand(prompts, n, generator=g)
        R = (R < 0.3).float() if spec.binary_only else R
        t0 = time.perf_counter()
        _, err = call(spec, R, k, hp)
        first = time.perf_counter() - t0
        if err:
            return Verdict("speed", "INFO", f"not timed: {err} at P={prompts}, n={n}, k={k}")
        ms = 1e3 * first if first > 0.2 else time_call(lambda: spec.fn(R, k=k, **hp), repeats)
        sort_ms = time_call(lambda: torch.sort(R, dim=1, stable=True), repeats)
        cells.append(f"n={n} k={k} {ms:.3f} ms ({ms / sort_ms:.1f}x sort)")
        if first > slow_s:
            note = f"; larger n skipped (one call took {first:.1f} s)"
            break
    if not cells:
        return Verdict("speed", "SKIP", f"no n in {list(ns)} is allowed by the metadata")
    return Verdict("speed", "INFO", f"P={prompts}, float32, median of {repeats}, {torch.get_num_threads()} threads: "
                                    f"{' | '.join(cells)}{note}")


def unknown_hp(spec: EstimatorSpec, hp: dict) -> str | None:
    """The one-line complaint about hyperparameters ``spec`` does not declare; None if there are none."""
    unknown = sorted(set(hp) - set(spec.hyperparameters))
    return (f"{spec.name}: unknown hyperparameter(s) {', '.join(unknown)}; allowed: "
            f"{', '.join(sorted(spec.hyperparameters)) or 'none'}") if unknown else None


def run_checks(spec: EstimatorSpec, hp: dict | None = None, *, speed: bool = True, nk=NK) -> list[Verdict]:
    """The four verdicts in order (speed SKIP when not ``speed``); ``hp`` the hyperparameters (defaults: the spec's).
    ValueError for a hyperparameter the spec does not declare (every (n, k) would look disallowed otherwise)."""
    hp = dict(hp or {})
    if unknown_hp(spec, hp):
        raise ValueError(unknown_hp(spec, hp))
    out = [check_unbiased(spec, hp, nk), check_finite(spec, hp), check_scale(spec, hp)]
    out.append(check_speed(spec, hp) if speed else Verdict("speed", "SKIP", "not timed (--no-speed)"))
    return out
