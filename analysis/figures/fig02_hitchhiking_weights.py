"""Figure 2: the "hitchhiking" baseline vs RSPO, gradient weights of one example group.

Weights come from the estimator registry (rspo_patch.estimators): ``baseline`` gives every response of a consecutive
block of k the weight k * max(block); ``rspo_pass`` (binary rewards, Theorem 4.3) and ``rspo_max`` (continuous
rewards, Theorem C.4) weight each response by its own chance of being the maximum. A *hitchhiker* is a response that
the baseline reinforces (weight > 0) although it is not its block's best: its weight is the block maximum's.
"""

from __future__ import annotations

import numpy as np

from analysis.figures.drawing import panel_grid
from analysis.figures.registry import register_figure
from analysis.figures.colors import method_color

K = 4
EXAMPLES = {
    "Pass@k (binary rewards)": ("rspo_pass", [1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0]),
    "Max@k (continuous rewards)": ("rspo_max", [0.3, 0.9, 0.1, 0.5, 0.2, 0.6, 0.0, 0.4]),
}


def example_weights(rewards: list[float], rspo_name: str, k: int = K) -> dict[str, np.ndarray]:
    """{"reward", "baseline", "rspo", "hitchhiker"} arrays (n,) for one group, weights from the registry."""
    import torch

    from rspo_patch.estimators import get_estimator

    r = torch.tensor([rewards], dtype=torch.float64)  # (1, n)
    base = get_estimator("baseline").fn(r, k=k)[0].numpy()
    rspo = get_estimator(rspo_name).fn(r, k=k)[0].numpy()
    rr = np.asarray(rewards, float)
    block_max = rr.reshape(-1, k).max(axis=1).repeat(k)
    hitch = (base > 0) & (rr < block_max)
    return {"reward": rr, "baseline": base, "rspo": rspo, "hitchhiker": hitch}


@register_figure("fig02_hitchhiking_weights", needs="analytic", paper_figure=2,
                 caption=f"Hitchhiking baseline vs RSPO on one group of n = 8 responses, k = {K}. Left: rewards, the "
                         "baseline's blocks of k shaded. Right: gradient weights from the estimator registry; 'h' "
                         "marks hitchhikers (given their block maximum's weight by the baseline, though not the "
                         "block's best).")
def build(ctx):
    fig, axes = panel_grid(4, ncols=2, panel_w=2.7, panel_h=1.7)
    values = {}
    for row, (title, (rspo_name, rewards)) in enumerate(EXAMPLES.items()):
        w = example_weights(rewards, rspo_name)
        n = len(rewards)
        idx = np.arange(1, n + 1)
        ax_r, ax_w = axes[2 * row], axes[2 * row + 1]
        for b in range(n // K):
            for ax in (ax_r, ax_w):
                ax.axvspan(b * K + 0.5, (b + 1) * K + 0.5, color="0.93" if b % 2 == 0 else "0.97", zorder=0, lw=0)
        ax_r.bar(idx, w["reward"], color="0.45", width=0.6)
        ax_r.set_ylim(0, 1.15)
        ax_r.set_ylabel("reward")
        ax_r.set_title(title)
        ax_w.bar(idx - 0.18, w["baseline"], width=0.36, color=method_color("baseline", K), label=f"Baseline (k={K})")
        ax_w.bar(idx + 0.18, w["rspo"], width=0.36, color=method_color(rspo_name, K),
                 label=f"{'RSPO' if rspo_name == 'rspo_pass' else 'RSPO-Max'} (k={K}, registry '{rspo_name}')")
        for i in np.flatnonzero(w["hitchhiker"]):
            ax_w.text(idx[i] - 0.18, w["baseline"][i] + 0.05, "h", ha="center", va="bottom", fontsize=6,
                      color="firebrick")
        ax_w.set_ylabel("gradient weight")
        ax_w.set_ylim(0, max(w["baseline"].max(), w["rspo"].max()) * 1.7 + 1e-9)
        ax_w.legend(loc="upper center", fontsize=5.5, ncol=1)
        for ax in (ax_r, ax_w):
            ax.set_xticks(idx)
            ax.set_xlabel("response i")
            ax.grid(axis="x", visible=False)
        values[title] = {key: v.tolist() for key, v in w.items()} | {"estimator": rspo_name, "k": K}
    return fig, {"values": values}
