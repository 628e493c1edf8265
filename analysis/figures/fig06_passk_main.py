"""Figure 6: Pass@k curves of every algorithm of the main experiment on the five main benchmarks.

Policy gradient black dashed, RSPO reds and the hitchhiking baseline blues (darker and thicker as the training k
grows), base model grey. Mean over seeds; bands are 95% intervals (bootstrap over problems from analysis.metrics,
widened to the across-seed t-interval when there are several seeds).
"""

from __future__ import annotations

from analysis.figures.panels import draw_metric_panels
from analysis.figures.registry import register_figure
from analysis.figures.selection import family_rows


@register_figure("fig06_passk_main", needs="tables", paper_figure=6, families=("main",),
                 caption="Pass@k of RSPO (reds), the hitchhiking baseline (blues) and policy gradient (black dashed) "
                         "at each evaluation k, one panel per benchmark; base model grey. Mean over seeds, 95% CI "
                         "bands.")
def build(ctx):
    fam = family_rows(ctx, ("main",), ctx.table("passk"))
    return draw_metric_panels(ctx, fam, ylabel="Pass@k", family_name="main")
