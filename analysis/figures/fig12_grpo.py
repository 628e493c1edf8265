"""Figure 12: GRPO beside policy gradient (both risk-neutral), Pass@k per benchmark."""

from __future__ import annotations

from analysis.figures._common import draw_metric_panels, family_for, register_figure
from analysis.figures._families import grpo_rows


@register_figure("fig12_grpo", needs="tables", paper_figure=12, families=("grpo",),
                 caption="Pass@k of GRPO and policy gradient: both optimise the risk-neutral objective and behave "
                         "alike. Mean over seeds, 95% CI bands.")
def build(ctx):
    fam = family_for(ctx, ("grpo",), ctx.table("passk"), fallback_filter=grpo_rows)
    return draw_metric_panels(ctx, fam, ylabel="Pass@k", family_name="grpo")
