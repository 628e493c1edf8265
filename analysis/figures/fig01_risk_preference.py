"""Figure 1: risk-neutral training prefers pi_A, risk-seeking evaluation prefers pi_B.

pi_A pays 6 with certainty; pi_B pays 0 or 10 with probability 1/2 each. E[R] = 6 > 5, but
E[max(R_1, R_2)] = 6 < 7.5 (and E[max of k] = 10 (1 - 2^-k) for pi_B). Exact arithmetic with Fractions
(rspo_patch.exact.expected_max, order statistics).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from analysis.figures.drawing import panel_grid
from analysis.figures.registry import register_figure
from rspo_patch.exact import expected_max

POLICIES = {
    "pi_A": {"values": [6], "probs": [Fraction(1)]},
    "pi_B": {"values": [0, 10], "probs": [Fraction(1, 2), Fraction(1, 2)]},
}
COLORS = {"pi_A": "#457b9d", "pi_B": "#e63946"}


def expected_max_table(ks=range(1, 9)) -> dict[str, list[Fraction]]:
    """policy -> [E[max of k draws] for k in ks], exact Fractions."""
    return {p: [Fraction(expected_max(d["values"], d["probs"], k)) for k in ks] for p, d in POLICIES.items()}


@register_figure("fig01_risk_preference", needs="analytic", paper_figure=1,
                 caption="Risk preference mismatch. Left: the two policies' reward distributions. Right: expected "
                         "maximum reward of k draws; risk-neutral training (k = 1) prefers pi_A (6 > 5), risk-seeking "
                         "evaluation (k = 2) prefers pi_B (6 < 7.5). Exact values.")
def build(ctx):
    ks = list(range(1, 9))
    table = expected_max_table(ks)
    fig, (ax0, ax1) = panel_grid(2, panel_w=2.6, panel_h=2.0)
    # left: the distributions as stems
    for off, (p, d) in zip((-0.35, 0.35), POLICIES.items()):
        xs = np.array(d["values"], float) + off
        ys = [float(q) for q in d["probs"]]
        ax0.bar(xs, ys, width=0.6, color=COLORS[p], label=f"$\\pi_{p[-1]}$")
        for x, y in zip(xs, ys):
            ax0.text(x, y + 0.02, f"{y:.0%}", ha="center", va="bottom", fontsize=6)
    ax0.set_xlabel("reward R(y)")
    ax0.set_ylabel("probability")
    ax0.set_xticks([0, 5, 6, 10])
    ax0.set_ylim(0, 1.15)
    ax0.set_title("policies")
    ax0.legend(loc="upper left")
    # right: E[max of k]
    for p in POLICIES:
        ax1.plot(ks, [float(v) for v in table[p]], marker="o", color=COLORS[p], label=f"$\\pi_{p[-1]}$")
    for k in (1, 2):  # k = 1: risk-neutral training; k = 2: the paper's risk-seeking evaluation
        a, b = table["pi_A"][k - 1], table["pi_B"][k - 1]
        ax1.annotate(f"k={k}: {float(a):g} vs {float(b):g}", (k, float(b)), xytext=(k + 0.5, float(b) - 0.6),
                     fontsize=6, arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "0.4"})
        ax1.axvline(k, color="0.75", lw=0.6, ls=":")
    ax1.set_xlabel("k (draws)")
    ax1.set_ylabel("E[max of k rewards]")
    ax1.set_title("risk-seeking value")
    ax1.set_xticks(ks)
    ax1.set_ylim(4, 10.5)
    ax1.legend(loc="lower right")
    values = {p: {str(k): str(v) for k, v in zip(ks, vals)} for p, vals in table.items()}
    return fig, {"values": values, "check": {"E_A_k1": "6", "E_B_k1": str(table["pi_B"][0]),
                                             "E_A_k2": str(table["pi_A"][1]), "E_B_k2": str(table["pi_B"][1])}}
