"""Figure 4: the RSPO Pass@k weight k (1 - w)^(k-1) and where it exceeds the policy-gradient weight 1.

w is the policy's probability of a correct answer. For k >= 2 the weight falls with w; it exceeds 1 exactly for
w < w*(k) = 1 - k^(-1/(k-1)) (the boundary k (1 - w*)^(k-1) = 1; w* -> 0 as k -> infinity, w*(2) = 1/2).
"""

from __future__ import annotations

import numpy as np
from matplotlib.colors import ListedColormap

from analysis.figures.drawing import panel_grid
from analysis.figures.registry import register_figure
from analysis.figures.colors import method_color, style_for

KS = (1, 2, 4, 8, 16)


def passk_weight(w, k):
    """k (1 - w)^(k-1), elementwise (w in [0, 1], k >= 1)."""
    w = np.asarray(w, float)
    k = np.asarray(k, float)
    return k * (1.0 - w) ** (k - 1.0)


def boundary_w(k):
    """w*(k) = 1 - k^(-1/(k-1)) for k > 1 (where the weight equals 1); NaN at k = 1 (weight is 1 for every w)."""
    k = np.asarray(k, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(k > 1, 1.0 - k ** (-1.0 / (k - 1.0)), np.nan)


@register_figure("fig04_passk_weight", needs="analytic", paper_figure=4,
                 caption="Left: RSPO's Pass@k gradient weight k(1-w)^(k-1) against the policy's success probability "
                         "w, one curve per k (policy gradient: k = 1, weight 1). Right: (k, w) pairs where the weight "
                         "exceeds 1 (green, RSPO amplifies the gradient) or falls below 1 (red); the black curve is "
                         "the boundary w*(k) = 1 - k^(-1/(k-1)).")
def build(ctx):
    fig, (ax0, ax1) = panel_grid(2, panel_w=2.7, panel_h=2.1)
    w = np.linspace(0, 1, 401)
    for k in KS:
        st = style_for("pg" if k == 1 else "rspo_pass", k)
        ax0.plot(w, passk_weight(w, k), color=st["color"], lw=st["linewidth"], ls=st["linestyle"],
                 label=f"k={k}" + (" (policy gradient)" if k == 1 else ""))
    ax0.axhline(1.0, color="0.5", lw=0.5)
    ax0.set_yscale("log")
    ax0.set_ylim(1e-2, 20)
    ax0.set_xlim(0, 1)
    ax0.set_xlabel(r"$w_\theta$ (probability of a correct response)")
    ax0.set_ylabel(r"weight $k(1-w_\theta)^{k-1}$")
    ax0.legend(loc="lower left")
    # right: region map over integer k
    kk = np.arange(1, 33)
    ww = np.linspace(0, 1, 401)
    K_, W_ = np.meshgrid(kk, ww, indexing="xy")
    val = passk_weight(W_, K_)
    region = np.where(np.isclose(val, 1.0), 1, np.where(val > 1, 2, 0))
    cmap = ListedColormap(["#f4a3a8", "#dddddd", "#a7d7a0"])
    ax1.pcolormesh(K_, W_, region, cmap=cmap, vmin=0, vmax=2, shading="nearest", rasterized=True)
    kc = np.linspace(1.0001, 32, 400)
    ax1.plot(kc, boundary_w(kc), color="k", lw=1.0, label=r"$k(1-w)^{k-1}=1$")
    ax1.text(12, 0.04, "> 1", color="#2d6a4f", fontsize=7, weight="bold")
    ax1.text(12, 0.6, "< 1", color="#9d0208", fontsize=7, weight="bold")
    ax1.set_xlabel("k")
    ax1.set_ylabel(r"$w_\theta$")
    ax1.set_xlim(0.5, 32.5)
    ax1.set_ylim(0, 1)
    ax1.grid(False)
    ax1.legend(loc="upper right")
    return fig, {"values": {"boundary_w": {int(k): float(boundary_w(k)) for k in KS if k > 1},
                            "color_rspo_k8": list(method_color("rspo_pass", 8))}}
