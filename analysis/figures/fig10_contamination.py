"""Figure 10: the main comparison on benchmarks the training data does not cover: released after the model (paper
config: AIME25, LiveMathBench 202505), or never read by any stage (default config: arithmetic_clean, which the
n-gram audit clears).

Cells and benchmarks: the manifest family ``contamination`` if the config defines it, else the ``main`` family's cells
on the config's ``contamination.benchmarks`` (recorded in the manifest).
"""

from __future__ import annotations

from analysis.figures.panels import draw_metric_panels
from analysis.figures.registry import register_figure
from analysis.figures.selection import family_rows


@register_figure("fig10_contamination", needs="tables", paper_figure=10, families=("contamination", "main"),
                 caption="Pass@k on benchmarks the training data does not cover (paper: AIME25, LiveMathBench; default: "
                         "arithmetic_clean): RSPO's advantage does not come from contaminated test sets. Mean over "
                         "seeds, 95% CI bands.")
def build(ctx):
    table = ctx.table("passk")
    if ctx.family("contamination") is not None:
        fam = family_rows(ctx, ("contamination",), table)
    else:
        benches = ((ctx.manifest or {}).get("contamination") or {}).get("benchmarks", [])
        fam = family_rows(ctx, ("main",), table, benchmarks=benches)
    return draw_metric_panels(ctx, fam, ylabel="Pass@k", family_name="contamination",
                              what="rows on the clean benchmarks")
