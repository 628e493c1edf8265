"""Figure 9: the main comparison repeated with the larger model (family `main_7b`: Qwen2.5-Math-7B in config/paper.yaml;
`main_large`: the ~2.4M-parameter char model in config/config.yaml)."""

from __future__ import annotations

from analysis.figures.panels import draw_metric_panels
from analysis.figures.registry import register_figure
from analysis.figures.selection import family_rows
from analysis.manifest import LARGER_MODEL_FAMILIES


@register_figure("fig09_7b", needs="tables", paper_figure=9, families=LARGER_MODEL_FAMILIES,
                 caption="Pass@k of RSPO, the baseline and policy gradient for the larger model (the paper's "
                         "Qwen2.5-Math-7B; the ~2.4M char model in the default config). Mean over seeds, 95% CI bands.")
def build(ctx):
    fam = family_rows(ctx, LARGER_MODEL_FAMILIES, ctx.table("passk"))
    name = fam.get("family") or LARGER_MODEL_FAMILIES[0]
    return draw_metric_panels(ctx, fam, ylabel="Pass@k", family_name=name, what="second-model cells")
