"""Beyond the paper: error of every registry estimator of grad J_k versus the samples per prompt n.

From the toy policy lab (rspo_patch.bandit ``estimator_variance``): a fixed tabular policy, exact grad J_k, and
``replicates`` sampled gradients per n. Top: mean squared error E||g_hat - grad J_k||^2 (log-log); bottom: bias
||E g_hat - grad J_k|| with +-2 Monte Carlo standard errors (unbiased estimators should sit within them of 0).
Solid: unbiased for grad J_k per the registry; dashed: biased.
"""

from __future__ import annotations

import numpy as np

from analysis.figures.drawing import figure_legend, panel_grid, placeholder
from analysis.figures.registry import register_figure
from analysis.figures.colors import style_for

SETTINGS = (("binary", "Pass@k (binary rewards)"), ("graded", "Max@k (graded rewards)"))


@register_figure("fig14_estimator_variance", needs="bandit",
                 caption="Estimator error versus n in the toy policy lab (exact gradient known): mean squared error "
                         "(top, log-log) and bias with +-2 Monte Carlo s.e. (bottom) of every applicable registry "
                         "estimator of grad J_k, for binary (Pass@k) and graded (Max@k) rewards. Solid: unbiased per "
                         "the registry; dashed: biased.")
def build(ctx):
    data = (ctx.bandit or {}).get("estimator_variance")
    fig, axes = panel_grid(4, ncols=2, panel_w=3.0, panel_h=2.0)
    if not data:
        for ax in axes:
            placeholder(ax, "no estimator_variance in the bandit JSON" if ctx.bandit else "no --bandit JSON given")
        return fig, {"source": str(ctx.bandit_path), "missing_inputs": ["estimator_variance"]}
    k = int(data["k"])
    values = {}
    for col, (key, title) in enumerate(SETTINGS):
        ax_m, ax_b = axes[col], axes[2 + col]
        block = data.get(key)
        if not block:
            placeholder(ax_m, f"no '{key}' block")
            placeholder(ax_b, f"no '{key}' block")
            continue
        ax_m.set_title(f"{title}, k = {k}")
        for j, (name, row) in enumerate(block["estimators"].items()):
            if not row["n"]:
                continue
            st = style_for(name, k)
            ls = "-" if row["unbiased"] else (0, (3, 1.5))
            n = np.asarray(row["n"], float)
            lab = st["label"] + ("" if row["unbiased"] else " [biased]")
            z = 4 if name in ("rspo_pass", "rspo_max") else 3  # RSPO on top of the estimators it coincides with
            ax_m.plot(n, row["mse"], color=st["color"], ls=ls, lw=1.2, marker=st["marker"] or "o", ms=3, label=lab,
                      zorder=z)
            bias, se = np.asarray(row["bias"]), np.asarray(row["bias_se"])
            ax_b.errorbar(n * 2.0 ** (0.04 * (j % 7 - 3)), bias, yerr=2 * se, color=st["color"], ls=ls,
                          lw=1.0, marker=st["marker"] or "o", ms=2.5, capsize=1.5, elinewidth=0.6, label=lab)
            values[f"{key}/{name}"] = {"n": row["n"], "mse": row["mse"], "bias": row["bias"],
                                       "unbiased": row["unbiased"]}
        for ax in (ax_m, ax_b):
            ax.set_xscale("log", base=2)
            ax.set_xticks(sorted({int(x) for r in block["estimators"].values() for x in r["n"]}))
            ax.set_xticklabels([str(t) for t in ax.get_xticks()])
            ax.minorticks_off()
            ax.set_xlabel("n (samples per prompt)")
        ax_m.set_yscale("log")
        ax_m.set_ylabel(r"MSE $E\|\hat g - \nabla J_k\|^2$")
        ax_b.set_ylabel(r"bias $\|E\hat g - \nabla J_k\|$")
        ax_b.axhline(0, color="0.5", lw=0.5)
    figure_legend(fig, axes, ncol=4)
    if ctx.bandit.get("quick"):
        fig.suptitle("bandit JSON made with --quick (smoke-test settings)", fontsize=6, color="firebrick")
    return fig, {"source": str(ctx.bandit_path), "k": k, "settings": data.get("settings"), "values": values}
