"""Figure 10: the main comparison on benchmarks released after the model (AIME25, LiveMathBench 202505).

Cells: config family ``contamination`` if defined, else the ``main`` family. Benchmarks: that family's, else the
config's ``contamination.benchmarks``, else the clean benchmarks present in the table.
"""

from __future__ import annotations

from analysis.figures._common import CLEAN_BENCHMARKS, draw_metric_panels, family_for, register_figure
from analysis.figures._families import main_rows


def _clean(rows):
    present = set(rows["benchmark"]) if not rows.empty else set()
    return [b for b in CLEAN_BENCHMARKS if b in present]


@register_figure("fig10_contamination", needs="tables", paper_figure=10, families=("contamination", "main"),
                 caption="Pass@k on benchmarks created after the base model (AIME25, LiveMathBench): RSPO's advantage "
                         "does not come from contaminated test sets. Mean over seeds, 95% CI bands.")
def build(ctx):
    table = ctx.table("passk")
    if ctx.family("contamination") is not None:
        fam = family_for(ctx, ("contamination",), table, fallback_filter=main_rows, benchmarks_fallback=_clean)
    else:
        cfg_b = ((ctx.config or {}).get("contamination") or {}).get("benchmarks")
        if cfg_b is None:
            present = table if table.empty else main_rows(table)
            cfg_b = _clean(present)
        fam = family_for(ctx, ("main",), table, fallback_filter=main_rows, benchmarks=cfg_b)
    return draw_metric_panels(ctx, fam, ylabel="Pass@k", family_name="contamination",
                              what="rows on the clean benchmarks")
