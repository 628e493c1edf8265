"""Figure 11: Max@k curves (length-penalised reward, paper §5.5) of RSPO-Max, the baseline and policy gradient."""

from __future__ import annotations

from analysis.figures.panels import draw_metric_panels
from analysis.figures.registry import register_figure
from analysis.figures.selection import family_rows


@register_figure("fig11_maxk", needs="tables", paper_figure=11, families=("maxk",),
                 caption="Max@k with the reward 1 - 0.5 len/max_len for correct answers (0 otherwise), for cells "
                         "trained on that reward: RSPO-Max, the hitchhiking baseline and policy gradient. Mean over "
                         "seeds, 95% CI bands.")
def build(ctx):
    fam = family_rows(ctx, ("maxk",), ctx.table("maxk"))
    return draw_metric_panels(ctx, fam, ylabel="Max@k", family_name="maxk")
