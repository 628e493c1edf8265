"""Figure 9: the main comparison repeated with the larger model (Qwen2.5-Math-7B in config/paper.yaml)."""

from __future__ import annotations

from analysis.figures.panels import draw_metric_panels
from analysis.figures.registry import register_figure
from analysis.figures.selection import family_rows


@register_figure("fig09_7b", needs="tables", paper_figure=9, families=("main_7b",),
                 caption="Pass@k of RSPO, the baseline and policy gradient for the larger model (the paper's "
                         "Qwen2.5-Math-7B). Mean over seeds, 95% CI bands.")
def build(ctx):
    fam = family_rows(ctx, ("main_7b", "7b"), ctx.table("passk"))
    return draw_metric_panels(ctx, fam, ylabel="Pass@k", family_name="main_7b", what="second-model cells")
