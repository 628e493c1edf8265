"""Figure 7: policy entropy over training steps; RSPO keeps entropy higher as k grows (§5.2).

Left: RSPO at each k with policy gradient; right: the hitchhiking baseline with policy gradient. Mean over seeds of the
per-step entropy logged by the trainer (train_log.jsonl), lightly smoothed (window in the sidecar).
"""

from __future__ import annotations

from analysis.figures.panels import draw_train_panels
from analysis.figures.registry import register_figure
from analysis.figures.selection import family_rows


@register_figure("fig07_entropy", needs="tables", paper_figure=7, families=("main",),
                 caption="Mean token entropy of the policy over training steps: RSPO (left) and the baseline (right) "
                         "at each training k, policy gradient black dashed. Mean over seeds, 95% t-band across seeds.")
def build(ctx):
    fam = family_rows(ctx, ("main",), ctx.table("train_curves"), trained_only=True)
    panels = [("RSPO vs policy gradient", "entropy", lambda a: a in ("rspo_pass", "pg"), "rspo_pass"),
              ("Baseline vs policy gradient", "entropy", lambda a: a in ("baseline", "pg"), "baseline")]
    return draw_train_panels(fam, panels)
