"""Figure 5: the Max@k gradient weight ("marginal contribution") under a standard Gaussian policy.

With rewards R(y) = y ~ N(0, 1) (pdf phi, CDF Phi) the weight of a response with reward r is

    W_k(r) = k * int_{-inf}^{r} (r - t) (k - 1) phi(t) Phi(t)^(k-2) dt        (numerical integration, scipy quad)
           = k * int_{-inf}^{r} Phi(t)^(k-1) dt                               (by parts; checked in the tests)

so W_2(r) / 2 = r Phi(r) + phi(r) is the area under the CDF left of r (left panel). The dots are Monte Carlo means of
the registry's unbiased ``rspo_max`` weights for groups of n = 16 Gaussian rewards, binned by reward: the estimator's
conditional expectation given R_i = r is exactly W_k(r).
"""

from __future__ import annotations

import numpy as np

from analysis.figures.drawing import panel_grid
from analysis.figures.registry import register_figure
from analysis.figures.colors import style_for

KS = (2, 4, 8, 16)
R_SHOW = 1.0          # the reward of the example response in the left panel
MC_N, MC_GROUPS, MC_SEED = 16, 3000, 0


def maxk_weight(r: float, k: int) -> float:
    """W_k(r) = k int_{-inf}^r (r - t)(k-1) phi(t) Phi(t)^(k-2) dt by adaptive quadrature (k >= 2)."""
    from scipy import integrate
    from scipy.stats import norm

    if k < 2:
        raise ValueError(f"k must be >= 2 for the marginal-contribution weight, got {k}")
    f = lambda t: (r - t) * (k - 1) * norm.pdf(t) * norm.cdf(t) ** (k - 2)  # noqa: E731
    val, _ = integrate.quad(f, -np.inf, r, epsabs=1e-11, epsrel=1e-10, limit=200)
    return k * val


def maxk_weight_curve(rs, k: int, *, lo: float = -12.0, points: int = 40001) -> np.ndarray:
    """W_k at every r in rs (vectorised): W_k(r) = k [r A(r) - B(r)], with the cumulative integrals
    A(r) = int_lo^r (k-1) phi Phi^(k-2) dt and B(r) = int_lo^r t (k-1) phi Phi^(k-2) dt (trapezoid rule on a fine
    grid; agrees with maxk_weight's quadrature to ~1e-7)."""
    from scipy.integrate import cumulative_trapezoid
    from scipy.stats import norm

    if k < 2:
        raise ValueError(f"k must be >= 2 for the marginal-contribution weight, got {k}")
    rs = np.asarray(rs, float)
    t = np.linspace(lo, max(float(rs.max()), lo + 1.0), points)
    dens = (k - 1) * norm.pdf(t) * norm.cdf(t) ** (k - 2)
    a = cumulative_trapezoid(dens, t, initial=0.0)
    b = cumulative_trapezoid(t * dens, t, initial=0.0)
    return k * (rs * np.interp(rs, t, a) - np.interp(rs, t, b))


def maxk_weight_by_parts(r: float, k: int) -> float:
    """k int_{-inf}^r Phi(t)^(k-1) dt (the integrated-by-parts form; same value)."""
    from scipy import integrate
    from scipy.stats import norm

    val, _ = integrate.quad(lambda t: norm.cdf(t) ** (k - 1), -np.inf, r, epsabs=1e-11, epsrel=1e-10, limit=200)
    return k * val


def monte_carlo_weights(k: int, *, n: int = MC_N, groups: int = MC_GROUPS, seed: int = MC_SEED, bins=None):
    """Bin centres, mean rspo_max weight per bin, and counts, for `groups` groups of n iid N(0,1) rewards."""
    import torch

    from rspo_patch.estimators import get_estimator

    g = torch.Generator().manual_seed(seed + 1000 * k)
    r = torch.randn(groups, n, generator=g, dtype=torch.float64)
    w = get_estimator("rspo_max").fn(r, k=k)
    bins = np.linspace(-2.5, 2.5, 21) if bins is None else bins
    rv, wv = r.numpy().ravel(), w.numpy().ravel()
    which = np.digitize(rv, bins) - 1
    centres, means, counts = [], [], []
    for b in range(len(bins) - 1):
        m = which == b
        if m.sum() >= 30:
            centres.append(0.5 * (bins[b] + bins[b + 1]))
            means.append(float(wv[m].mean()))
            counts.append(int(m.sum()))
    return np.array(centres), np.array(means), np.array(counts)


@register_figure("fig05_maxk_gaussian_weight", needs="analytic", paper_figure=5,
                 caption="Max@k gradient weight under a standard Gaussian policy with reward R(y) = y. Left (k = 2): "
                         "the CDF of the policy; the shaded area left of R(y) equals the weight divided by k. Right: "
                         "weight k * sum_{y'<y} (R(y) - R(y')) pi(y') (k-1) P(y')^(k-2) as R(y) varies, by numerical "
                         "integration, one curve per k; dots: Monte Carlo means of the registry's rspo_max weights "
                         f"(n = {MC_N}, {MC_GROUPS} groups).")
def build(ctx):
    from scipy.stats import norm

    fig, (ax0, ax1) = panel_grid(2, panel_w=2.7, panel_h=2.1)
    t = np.linspace(-3.5, 3.5, 500)
    ax0.plot(t, norm.cdf(t), color="k", lw=1.1, label=r"CDF $\Phi$")
    m = t <= R_SHOW
    ax0.fill_between(t[m], 0, norm.cdf(t[m]), color=style_for("rspo_pass", 2)["color"], alpha=0.45,
                     label=f"area = W$_2$/2 = {maxk_weight(R_SHOW, 2) / 2:.3f}")
    ax0.axvline(R_SHOW, color="0.4", lw=0.6, ls=":")
    ax0.text(R_SHOW + 0.08, 0.06, "R(y)", fontsize=6.5)
    ax0.set_xlabel("reward R(y')")
    ax0.set_ylabel(r"$\sum_{y'<y}\pi_\theta(y')$")
    ax0.set_title("k = 2")
    ax0.legend(loc="upper left")
    rs = np.linspace(-3, 3, 61)
    values = {}
    for k in KS:
        st = style_for("rspo_pass", k)
        wk = maxk_weight_curve(rs, k)
        ax1.plot(rs, wk, color=st["color"], lw=st["linewidth"], label=f"k={k}")
        c, mc, _ = monte_carlo_weights(k)
        ax1.plot(c, mc, "o", color=st["color"], ms=2.2, mec="none")
        values[k] = {"r": rs.tolist(), "weight": wk.tolist(), "mc_r": c.tolist(), "mc_weight": mc.tolist()}
    ax1.set_xlabel("reward R(y)")
    ax1.set_ylabel("gradient weight")
    ax1.set_title("marginal contribution")
    ax1.set_yscale("symlog", linthresh=0.1)
    ax1.legend(loc="upper left")
    return fig, {"values": {str(k): v for k, v in values.items()},
                 "monte_carlo": {"n": MC_N, "groups": MC_GROUPS, "seed": MC_SEED, "estimator": "rspo_max"}}
