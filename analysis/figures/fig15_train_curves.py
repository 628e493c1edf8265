"""Beyond the paper: training reward, pass rate and the fraction of zero-weight responses over steps.

The zero-weight fraction is the share of responses that need no backward pass (the paper's §5.1 speed-up).
"""

from __future__ import annotations

from analysis.figures.panels import draw_train_panels
from analysis.figures.registry import register_figure
from analysis.figures.selection import family_rows


@register_figure("fig15_train_curves", needs="tables", families=("main",),
                 caption="Training curves of the main experiment: mean reward, pass rate of the sampled responses and "
                         "fraction of responses with weight exactly 0 (no backward pass needed), per training step. "
                         "Mean over seeds, 95% t-band across seeds.")
def build(ctx):
    fam = family_rows(ctx, ("main",), ctx.table("train_curves"), trained_only=True)
    panels = [("train reward", "reward_mean", None), ("train pass rate", "pass_rate", None),
              ("zero-weight responses", "frac_zero_weight", None)]
    return draw_train_panels(fam, panels, ncols=3)
