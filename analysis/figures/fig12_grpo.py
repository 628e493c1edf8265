"""Figure 12: GRPO beside policy gradient (both risk-neutral), Pass@k per benchmark."""

from __future__ import annotations

from analysis.figures.panels import draw_metric_panels
from analysis.figures.registry import register_figure
from analysis.figures.selection import family_rows


@register_figure("fig12_grpo", needs="tables", paper_figure=12, families=("grpo",),
                 caption="Pass@k of GRPO and policy gradient: both optimise the risk-neutral objective and behave "
                         "alike. Mean over seeds, 95% CI bands.")
def build(ctx):
    fam = family_rows(ctx, ("grpo",), ctx.table("passk"))
    return draw_metric_panels(ctx, fam, ylabel="Pass@k", family_name="grpo")
