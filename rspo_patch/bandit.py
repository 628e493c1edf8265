"""Toy policy lab: policies over m discrete outcomes, exact J_k and grad J_k, and sampled registry-estimator gradients.

Everything here is small, exact where it can be, seeded, and returns plain arrays/dicts (the figures engineer plots
them). ``python -m rspo_patch.bandit --out results/bandit.json`` writes every experiment below in well under 30 s.

Objects
-------
A *policy* is ``probs_fn(theta) -> probs``: theta (..., d) -> probs (..., m) over m outcomes, differentiable in torch.
Two families: ``softmax_policy`` (tabular, d = m) and ``mixture_policy(strategies)`` (softmax weights over S fixed
outcome distributions: the restricted family in which risk-neutral and risk-seeking objectives disagree).
``rewards`` is an (m,) vector: outcome j pays rewards[j].

J_k(theta) = E[max(R(y_1), ..., R(y_k))], y_i iid ~ probs_fn(theta), computed exactly from order statistics:
    J_k = sum_v v * (F(v)^k - F(v-)^k)  over distinct reward values v ascending, F the CDF of R(y).
grad J_k comes from autograd on that closed form (float64). A *sampled* gradient draws n outcomes, turns their rewards
(1, n) into weights with a registry estimator and returns (1/n) sum_i w_i grad log pi(y_i) (unbiased estimators:
E = grad J_k). Batches of independent replicates are computed at once: rewards (B, n) is just P = B "prompts".

Experiments (each returns a JSON-able dict)
-------------------------------------------
figure1()            the paper's Figure 1: pi_A (6 w.p. 1) vs pi_B (0 or 10 w.p. 1/2): E[R] 6 > 5 but E[max of 2]
                     6 < 7.5; plus training inside the mixture family: k=1 drifts to pi_A, k=2 to pi_B.
hitchhiking()        J_k training curves from the same init, hitchhiking baseline vs rspo_pass, k in {2, 4, 8}
                     (binary rewards, tabular policies, n = 8): the baseline's extra variance grows with k.
k_matching()         train with k_train, evaluate J_k_eval: the matrix whose column-best sits on the diagonal.
estimator_variance() E||g_hat - grad J_k||^2 and the bias of every applicable registry estimator versus n.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from typing import Callable

import numpy as np
import torch

from rspo_core.atomic import write_text_atomic

from rspo_patch.estimators import ESTIMATORS, check_estimator_args, get_estimator

log = logging.getLogger("rspo_patch.bandit")
DT = torch.float64

# ---------------------------------------------------------------------------------------------------------------------
# Policies and exact objectives


def softmax_policy(theta: torch.Tensor) -> torch.Tensor:
    """Tabular policy: probs = softmax(theta) over the last dim. theta (..., m) -> (..., m)."""
    return torch.softmax(theta, dim=-1)


def mixture_policy(strategies) -> Callable[[torch.Tensor], torch.Tensor]:
    """Policy family pi_theta = sum_s softmax(theta)_s * strategies[s]; strategies (S, m) rows are distributions.

    Returns probs_fn: theta (..., S) -> probs (..., m).
    """
    q = torch.as_tensor(np.asarray(strategies, dtype=np.float64), dtype=DT)
    if q.ndim != 2 or (q < 0).any() or not torch.allclose(q.sum(1), torch.ones(q.shape[0], dtype=DT)):
        raise ValueError(f"strategies must be an (S, m) matrix of probability rows, got {q.tolist()}")

    def probs_fn(theta: torch.Tensor) -> torch.Tensor:
        return torch.softmax(theta, dim=-1) @ q

    return probs_fn


def expected_max(probs: torch.Tensor, rewards, k: int) -> torch.Tensor:
    """J_k = E[max of k iid rewards] for outcome probs (..., m) and rewards (m,); differentiable; returns (...).

    Order-statistic formula over distinct values (ties merged): sum_v v * (F(v)^k - F(v-)^k).
    """
    if isinstance(k, bool) or int(k) != k or k < 1:
        raise ValueError(f"k must be an int >= 1, got {k!r}")
    r = torch.as_tensor(rewards, dtype=DT)
    if r.ndim != 1 or r.shape[0] != probs.shape[-1]:
        raise ValueError(f"rewards must have shape ({probs.shape[-1]},), got {tuple(r.shape)}")
    vals, inv = torch.unique(r, sorted=True, return_inverse=True)  # (U,), (m,)
    onehot = torch.nn.functional.one_hot(inv, vals.shape[0]).to(probs.dtype)  # (m, U)
    mass = probs @ onehot  # (..., U)
    cdf = mass.cumsum(-1)
    cdf_prev = (cdf - mass).clamp(min=0.0)
    return ((cdf.clamp(max=1.0) ** k - cdf_prev ** k) * vals.to(probs.dtype)).sum(-1)


def exact_grad(probs_fn, theta: torch.Tensor, rewards, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(J_k, grad_theta J_k) for theta (..., d): J (...), grad (..., d); exact (autograd on the closed form)."""
    th = theta.detach().to(DT).requires_grad_(True)
    J = expected_max(probs_fn(th), rewards, k)
    (g,) = torch.autograd.grad(J.sum(), th)  # replicates are independent: grad of the sum = per-replicate grads
    return J.detach(), g


def sampled_grad(probs_fn, theta: torch.Tensor, rewards, k: int, n: int, estimator: str,
                 gen: torch.Generator, **hp) -> torch.Tensor:
    """One sampled estimate per replicate: g = (1/n) sum_i w_i grad log pi(y_i); theta (B, d) -> (B, d).

    y (B, n) ~ probs_fn(theta); R = rewards[y]; w = registry estimator(R, k=k) (B, n). The gradient is taken through
    the surrogate (1/n) sum_i w_i log pi(y_i) with w detached, exactly as the LLM trainer does.
    """
    th = theta.detach().to(DT).requires_grad_(True)
    logp = torch.log(probs_fn(th).clamp_min(1e-300))  # (B, m)
    y = torch.multinomial(logp.detach().exp(), n, replacement=True, generator=gen)  # (B, n)
    R = torch.as_tensor(rewards, dtype=DT)[y]  # (B, n)
    w = get_estimator(estimator).fn(R, k=k, **hp)  # (B, n)
    surrogate = (w * logp.gather(-1, y)).sum() / n
    (g,) = torch.autograd.grad(surrogate, th)
    return g


# ---------------------------------------------------------------------------------------------------------------------
# Figure 1

PI_A = [0.0, 1.0, 0.0]  # outcomes (0, 6, 10): always 6
PI_B = [0.5, 0.0, 0.5]  # 0 or 10, each w.p. 1/2
FIG1_REWARDS = [0.0, 6.0, 10.0]


def figure1(*, steps: int = 150, lr: float = 0.5, sampled_lr: float = 0.1, n: int = 8, seed: int = 0,
            ks=(1, 2, 3, 4, 8)) -> dict:
    """The paper's Figure 1 and the preference flip under training.

    Returns {"J": {"pi_A": {k: J_k}, "pi_B": {...}}, "train": {...}}. Training runs inside the mixture family
    pi = a * pi_A + (1 - a) * pi_B (a = softmax(theta)_A, theta (2,), start a = 1/2) by exact gradient ascent on J_k
    (step ``lr``) and by sampled gradients (pg for k = 1, rspo_max for k = 2; n samples, step ``sampled_lr``, 64
    replicates averaged), recording a. Exact k = 2 converges to a = 0.2, the J_2 optimum of this family.
    """
    r = torch.tensor(FIG1_REWARDS, dtype=DT)
    pa, pb = torch.tensor(PI_A, dtype=DT), torch.tensor(PI_B, dtype=DT)
    out = {"rewards": FIG1_REWARDS, "pi_A": PI_A, "pi_B": PI_B,
           "J": {"pi_A": {str(k): float(expected_max(pa, r, k)) for k in ks},
                 "pi_B": {str(k): float(expected_max(pb, r, k)) for k in ks}}}
    fn = mixture_policy([PI_A, PI_B])
    gen = torch.Generator().manual_seed(seed)
    train = {}
    for k, est in ((1, "pg"), (2, "rspo_max")):
        th = torch.zeros(2, dtype=DT)
        a_exact = [float(torch.softmax(th, -1)[0])]
        for _ in range(steps):
            th = th + lr * exact_grad(fn, th, r, k)[1]
            a_exact.append(float(torch.softmax(th, -1)[0]))
        thb = torch.zeros(64, 2, dtype=DT)
        a_sampled = [float(torch.softmax(thb, -1)[:, 0].mean())]
        for _ in range(steps):
            thb = thb + sampled_lr * sampled_grad(fn, thb, r, k, n, est, gen)
            a_sampled.append(float(torch.softmax(thb, -1)[:, 0].mean()))
        th_final = torch.tensor([np.log(max(a_exact[-1], 1e-300)), np.log(max(1 - a_exact[-1], 1e-300))])
        train[f"k={k}"] = {"estimator": est, "weight_on_pi_A_exact": a_exact, "weight_on_pi_A_sampled": a_sampled,
                           "final_J1": float(expected_max(fn(th_final.to(DT)), r, 1)),
                           "final_J2": float(expected_max(fn(th_final.to(DT)), r, 2))}
    out["train"] = train
    out["settings"] = dict(steps=steps, lr=lr, sampled_lr=sampled_lr, n=n, seed=seed, replicates=64)
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Hitchhiking: baseline vs rspo_pass as k grows

def _init_prompts(P: int, m: int, w0_range=(0.02, 0.4)) -> tuple[torch.Tensor, torch.Tensor]:
    """P tabular prompts over m outcomes, outcome 0 correct (reward 1), initial P(correct) log-spaced in w0_range.

    Returns theta (P, m) and rewards (m,). Wrong outcomes share the remaining mass equally.
    """
    w0 = torch.logspace(np.log10(w0_range[0]), np.log10(w0_range[1]), P, dtype=DT)
    theta = torch.zeros(P, m, dtype=DT)
    theta[:, 0] = torch.log(w0 * (m - 1) / (1 - w0))  # softmax gives P(correct) = w0
    rewards = torch.zeros(m, dtype=DT)
    rewards[0] = 1.0
    return theta, rewards


def train_curve(probs_fn, theta0: torch.Tensor, rewards, *, k_train: int, estimator: str, n: int, steps: int,
                lr: float, replicates: int, gen: torch.Generator, eval_ks=(1,), eval_every: int = 5, **hp) -> dict:
    """Sampled-gradient ascent from theta0 (P, d), ``replicates`` independent runs at once.

    Each step every (replicate, prompt) draws n outcomes and moves theta by lr * g_hat. Returns
    {"steps": [...], "J@k": {k: [mean over replicates and prompts of J_k]}, "J@k_sd": {k: [sd over replicates]}}.
    """
    P, d = theta0.shape
    th = theta0.to(DT).unsqueeze(0).expand(replicates, P, d).reshape(replicates * P, d).clone()
    rec_steps, curves, sds = [], {str(k): [] for k in eval_ks}, {str(k): [] for k in eval_ks}

    def record(t):
        rec_steps.append(t)
        with torch.no_grad():
            probs = probs_fn(th)
            for k in eval_ks:
                J = expected_max(probs, rewards, k).view(replicates, P).mean(1)  # (replicates,)
                curves[str(k)].append(float(J.mean()))
                sds[str(k)].append(float(J.std()) if replicates > 1 else 0.0)

    record(0)
    for t in range(1, steps + 1):
        th = th + lr * sampled_grad(probs_fn, th, rewards, k_train, n, estimator, gen, **hp)
        if t % eval_every == 0 or t == steps:
            record(t)
    return {"steps": rec_steps, "J@k": curves, "J@k_sd": sds}


def hitchhiking(*, ks=(2, 4, 8), n: int = 8, P: int = 16, m: int = 16, steps: int = 100, lr: float = 0.5,
                replicates: int = 32, seed: int = 0, with_pg: bool = True) -> dict:
    """J_k curves under the hitchhiking ``baseline`` and ``rspo_pass`` (both unbiased) from the same init, per k.

    Binary rewards, P tabular prompts (outcome 0 correct, initial P(correct) from 0.02 to 0.4), n samples each.
    Returns {"k=K": {"baseline": curve, "rspo_pass": curve, "final_gap": rspo - baseline J_k at the end}, ...,
    "pg": curve of J_1 and J_k under plain policy gradient}.
    """
    theta0, rewards = _init_prompts(P, m)
    out = {"settings": dict(ks=list(ks), n=n, P=P, m=m, steps=steps, lr=lr, replicates=replicates, seed=seed)}
    for k in ks:
        res = {}
        for est in ("baseline", "rspo_pass"):
            check_estimator_args(est, n=n, k=k, binary_rewards=True)
            gen = torch.Generator().manual_seed(seed)  # same seed per arm: common random numbers where possible
            res[est] = train_curve(softmax_policy, theta0, rewards, k_train=k, estimator=est, n=n, steps=steps,
                                   lr=lr, replicates=replicates, gen=gen, eval_ks=(1, k))
        res["final_gap"] = res["rspo_pass"]["J@k"][str(k)][-1] - res["baseline"]["J@k"][str(k)][-1]
        out[f"k={k}"] = res
    if not with_pg:
        return out
    gen = torch.Generator().manual_seed(seed)
    out["pg"] = train_curve(softmax_policy, theta0, rewards, k_train=1, estimator="pg", n=n, steps=steps, lr=lr,
                            replicates=replicates, gen=gen, eval_ks=(1,) + tuple(ks))
    return out


# ---------------------------------------------------------------------------------------------------------------------
# k-matching: train with k_train, evaluate J_{k_eval}

# Outcomes (0, 1, 1.5, 2.5, 4); strategy s pays v_s with probability p_s, else 0. Alone, strategy s is the best one
# for exactly one k in (1, 2, 4, 8): J_k(s) = v_s (1 - (1 - p_s)^k).
KM_REWARDS = [0.0, 1.0, 1.5, 2.5, 4.0]
KM_STRATEGIES = [
    [0.1, 0.9, 0.0, 0.0, 0.0],  # safe:   p=0.9, v=1
    [0.5, 0.0, 0.5, 0.0, 0.0],  # medium: p=0.5, v=1.5
    [0.8, 0.0, 0.0, 0.2, 0.0],  # risky:  p=0.2, v=2.5
    [0.9, 0.0, 0.0, 0.0, 0.1],  # long shot: p=0.1, v=4
]


def k_matching(*, ks=(1, 2, 4, 8), steps: int = 300, lr: float = 1.0, n: int = 16, replicates: int = 32,
               sampled_steps: int = 150, seed: int = 0) -> dict:
    """Matrix M[k_train][k_eval] = J_{k_eval} after training on J_{k_train} inside the 4-strategy mixture family.

    Exact: gradient ascent with grad J_{k_train}. Sampled: rspo_max (pg for k = 1) with n samples, mean over
    replicates. Returns {"exact": {kt: {ke: J}}, "sampled": {...}, "argmax_strategy": {kt: s}, "diagonal_best": bool}.
    """
    fn = mixture_policy(KM_STRATEGIES)
    r = torch.tensor(KM_REWARDS, dtype=DT)
    exact, sampled, mix = {}, {}, {}
    for kt in ks:
        th = torch.zeros(len(KM_STRATEGIES), dtype=DT)
        for _ in range(steps):
            th = th + lr * exact_grad(fn, th, r, kt)[1]
        probs = fn(th)
        exact[str(kt)] = {str(ke): float(expected_max(probs, r, ke)) for ke in ks}
        mix[str(kt)] = torch.softmax(th, -1).tolist()
        est = "pg" if kt == 1 else "rspo_max"
        gen = torch.Generator().manual_seed(seed)
        thb = torch.zeros(replicates, len(KM_STRATEGIES), dtype=DT)
        for _ in range(sampled_steps):
            thb = thb + lr * sampled_grad(fn, thb, r, kt, n, est, gen)
        probs_b = fn(thb)
        sampled[str(kt)] = {str(ke): float(expected_max(probs_b, r, ke).mean()) for ke in ks}
    diag = all(max(ks, key=lambda kt: exact[str(kt)][str(ke)]) == ke for ke in ks)
    diag_s = all(max(ks, key=lambda kt: sampled[str(kt)][str(ke)]) == ke for ke in ks)
    return {"ks": list(ks), "rewards": KM_REWARDS, "strategies": KM_STRATEGIES, "exact": exact, "sampled": sampled,
            "mixture_weights_exact": mix, "diagonal_best_exact": diag, "diagonal_best_sampled": diag_s,
            "settings": dict(steps=steps, sampled_steps=sampled_steps, lr=lr, n=n, replicates=replicates, seed=seed)}


# ---------------------------------------------------------------------------------------------------------------------
# Variance and bias of each estimator versus n

def applicable_estimators(k: int, n: int, binary: bool) -> list[str]:
    """Registry names whose checks pass for (k, n, reward kind); weights depend on k or k == 1."""
    names = []
    for name, spec in ESTIMATORS.items():
        try:
            check_estimator_args(name, n=n, k=k, binary_rewards=binary)
        except ValueError:
            continue
        if spec.uses_k or k == 1:
            names.append(name)
    return names


def estimator_variance(*, k: int = 4, ns=(4, 8, 16, 32, 64), replicates: int = 4000, m: int = 6,
                       seed: int = 0) -> dict:
    """For a fixed tabular policy, E||g_hat - grad J_k||^2 (MSE), ||E g_hat - grad J_k|| (bias) and its Monte-Carlo
    standard error, per estimator and n, for binary rewards (Pass@k) and graded rewards (Max@k).

    Returns {"binary": {"grad_norm": |grad J_k|, "estimators": {name: {"unbiased": flag, "n": [...], "mse": [...],
    "bias": [...], "bias_se": [...]}}}, "graded": {...}}.
    """
    gen0 = torch.Generator().manual_seed(seed)
    theta = torch.randn(m, generator=gen0, dtype=DT) * 0.7
    settings = {
        "binary": torch.tensor([1.0, 1.0] + [0.0] * (m - 2), dtype=DT),
        "graded": torch.linspace(0.0, 1.0, m, dtype=DT),
    }
    out = {"k": k, "theta": theta.tolist(), "settings": dict(ns=list(ns), replicates=replicates, m=m, seed=seed)}
    for label, r in settings.items():
        _, g_true = exact_grad(softmax_policy, theta, r, k)
        res = {"rewards": r.tolist(), "grad_norm": float(g_true.norm()), "estimators": {}}
        for name in applicable_estimators(k, max(ns), label == "binary"):
            spec = get_estimator(name)
            row = {"unbiased": spec.unbiased_for(k), "n": [], "mse": [], "bias": [], "bias_se": []}
            for n in ns:
                try:
                    check_estimator_args(name, n=n, k=k, binary_rewards=label == "binary")
                except ValueError:
                    continue
                gen = torch.Generator().manual_seed(seed + n)
                g = sampled_grad(softmax_policy, theta.expand(replicates, m), r, k, n, name, gen)  # (B, m)
                err = g - g_true
                mean_err = err.mean(0)
                row["n"].append(n)
                row["mse"].append(float((err ** 2).sum(1).mean()))
                row["bias"].append(float(mean_err.norm()))
                row["bias_se"].append(float((err.var(0) / replicates).sum().sqrt()))
            res["estimators"][name] = row
        out[label] = res
    return out


# ---------------------------------------------------------------------------------------------------------------------
# CLI

# reduced settings for smoke runs (--quick): same code paths, a fraction of the work
QUICK = {"figure1": dict(steps=20), "hitchhiking": dict(ks=(2,), steps=10, replicates=4),
         "k_matching": dict(steps=20, sampled_steps=5, replicates=4),
         "estimator_variance": dict(ns=(4, 8), replicates=200)}


def run_all(seed: int = 0, quick: bool = False) -> dict:
    """Every experiment (default settings, or QUICK ones); keys: figure1, hitchhiking, k_matching,
    estimator_variance, timings_s, quick."""
    torch.manual_seed(seed)
    res, timings = {"quick": quick}, {}
    for name, fn in (("figure1", figure1), ("hitchhiking", hitchhiking), ("k_matching", k_matching),
                     ("estimator_variance", estimator_variance)):
        t = time.time()
        res[name] = fn(seed=seed, **(QUICK[name] if quick else {}))
        timings[name] = time.time() - t
        log.info("%s: %.1f s", name, timings[name])
    res["timings_s"] = timings
    return res


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description="Toy policy lab for RSPO (exact J_k, sampled estimator gradients)")
    ap.add_argument("--out", required=True, help="output JSON path (written atomically)")
    ap.add_argument("--seed", type=int, default=0, help="seed of every experiment")
    ap.add_argument("--quick", action="store_true", help="reduced settings (smoke test), not for figures")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    res = run_all(a.seed, quick=a.quick)
    write_text_atomic(a.out, json.dumps(res, indent=1))
    return res


if __name__ == "__main__":
    main()
