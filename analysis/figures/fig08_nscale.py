"""Figure 8: RSPO at fixed k as the samples per prompt n vary (n-scaling), Pass@k per benchmark."""

from __future__ import annotations

from analysis.figures.panels import draw_metric_panels
from analysis.figures.registry import register_figure
from analysis.figures.selection import family_rows
from analysis.manifest import N_SCALING_FAMILIES


@register_figure("fig08_nscale", needs="tables", paper_figure=8, families=N_SCALING_FAMILIES,
                 caption="Pass@k of RSPO at a fixed training k as the number of samples per prompt n varies (darker "
                         "and thicker: larger n). Mean over seeds, 95% CI bands.")
def build(ctx):
    fam = family_rows(ctx, N_SCALING_FAMILIES, ctx.table("passk"))
    return draw_metric_panels(ctx, fam, ylabel="Pass@k", color_by="n", family_name="n_scaling")
