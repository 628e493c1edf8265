"""Figure 3: probability of being the maximum of k draws (Theorem 4.1), three fair dice.

P(max{D1, D2, D3} = 4) = P(D1=4, D2<=4, D3<=4) + P(D1<4, D2=4, D3<=4) + P(D1<4, D2<4, D3=4)
                       = 1/6*2/3*2/3 + 1/2*1/6*2/3 + 1/2*1/2*1/6 = 37/216,
term i = P_<^(i-1) * pi(y) * P_<=^(k-i). Exact Fractions; checked against enumerating all 6^3 outcomes.
"""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
from matplotlib.patches import Rectangle

from analysis.figures.drawing import panel_grid
from analysis.figures.registry import register_figure
from rspo_patch.exact import prob_is_max

FACES = 6
K = 3
FACE = 4


def decomposition(face: int = FACE, k: int = K, faces: int = FACES) -> list[Fraction]:
    """The k disjoint terms P_<^(i-1) pi P_<=^(k-i), i = 1..k, for "face is the max of k fair dice" (Fractions)."""
    if not 1 <= face <= faces:
        raise ValueError(f"face must be in 1..{faces}, got {face}")
    p = Fraction(1, faces)
    less, le = Fraction(face - 1, faces), Fraction(face, faces)
    return [less ** (i - 1) * p * le ** (k - i) for i in range(1, k + 1)]


def prob_max_theorem(face: int, k: int = K, faces: int = FACES) -> Fraction:
    """Theorem 4.1 via rspo_patch.exact.prob_is_max."""
    p = Fraction(1, faces)
    return Fraction(prob_is_max(Fraction(face - 1, faces), p, Fraction(face, faces), k))


def prob_max_enumerated(face: int, k: int = K, faces: int = FACES) -> Fraction:
    """P(max of k dice = face) by enumerating all faces**k equally likely outcomes."""
    hits = sum(1 for roll in itertools.product(range(1, faces + 1), repeat=k) if max(roll) == face)
    return Fraction(hits, faces ** k)


def _frac(f: Fraction) -> str:
    return f"{f.numerator}/{f.denominator}"


@register_figure("fig03_max_probability", needs="analytic", paper_figure=3,
                 caption="Probability of being the maximum (Theorem 4.1) with three dice. Left: the disjoint "
                         "decomposition of P(max{D1,D2,D3} = 4) by the first die showing 4; the terms sum to 37/216. "
                         "Right: Theorem 4.1 for every face (bars) against enumeration of all 216 outcomes (dots).")
def build(ctx):
    terms = decomposition()
    total = sum(terms)
    fig, (ax0, ax1) = panel_grid(2, panel_w=3.0, panel_h=2.1)
    # left: the decomposition as a grid, rows = term i, columns = dice
    colours = {"=": "#e63946", "<": "#a8dadc", "<=": "#457b9d"}
    probs = {"=": Fraction(1, FACES), "<": Fraction(FACE - 1, FACES), "<=": Fraction(FACE, FACES)}
    for i in range(K):
        y = K - 1 - i
        for j in range(K):
            kind = "<" if j < i else "=" if j == i else "<="
            ax0.add_patch(Rectangle((j, y), 0.92, 0.85, color=colours[kind], alpha=0.85 if kind == "=" else 0.6))
            sym = {"=": "=", "<": "<", "<=": "\u2264"}[kind]
            ax0.text(j + 0.46, y + 0.55, f"D{j + 1}{sym}{FACE}", ha="center", va="center", fontsize=6.5)
            ax0.text(j + 0.46, y + 0.25, _frac(probs[kind]), ha="center", va="center", fontsize=6.5)
        ax0.text(K + 0.1, y + 0.42, f"= {_frac(terms[i])}", ha="left", va="center", fontsize=7)
    ax0.text(K + 0.1, -0.45, f"sum = {_frac(total)}", ha="left", va="center", fontsize=7.5, weight="bold")
    ax0.set_xlim(-0.1, K + 1.3)
    ax0.set_ylim(-0.8, K)
    ax0.set_axis_off()
    ax0.set_title(f"P(max of {K} dice = {FACE})")
    # right: every face
    faces = np.arange(1, FACES + 1)
    th = [prob_max_theorem(f) for f in faces]
    en = [prob_max_enumerated(f) for f in faces]
    ax1.bar(faces, [float(x) for x in th], color=["#e63946" if f == FACE else "0.6" for f in faces], width=0.65,
            label="Theorem 4.1")
    ax1.plot(faces, [float(x) for x in en], "o", color="k", ms=3, label=f"enumeration ({FACES}^{K})")
    for f, x in zip(faces, th):
        ax1.text(f, float(x) + 0.01, _frac(x), ha="center", va="bottom", fontsize=5.5)
    ax1.set_xlabel("face v")
    ax1.set_ylabel(f"P(max of {K} dice = v)")
    ax1.set_xticks(faces)
    ax1.set_ylim(0, 0.5)
    ax1.legend(loc="upper left")
    return fig, {"values": {"terms": [_frac(t) for t in terms], "total": _frac(total),
                            "theorem": {int(f): _frac(x) for f, x in zip(faces, th)},
                            "enumerated": {int(f): _frac(x) for f, x in zip(faces, en)}}}
