"""Drawing helpers shared by the figure scripts: panel grids, one legend per figure, log2 k axes, placeholders for
panels without data and the footnote listing missing cells."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

BENCH_TITLES = {"aime24": "AIME24", "amc": "AMC", "amc23": "AMC23", "math500": "MATH500", "minerva": "Minerva",
                "olympiadbench": "OlympiadBench", "aime25": "AIME25", "livemathbench": "LiveMathBench"}


def placeholder(ax, message: str, missing: list[str] | None = None, *, max_items: int = 6) -> None:
    """Blank the axes and write why it is empty (and the first missing cells) in its middle."""
    lines = [message]
    if missing:
        lines.append("missing cells:")
        lines += [_short(m) for m in missing[:max_items]]
        if len(missing) > max_items:
            lines.append(f"... (+{len(missing) - max_items} more, see the .json sidecar)")
    ax.text(0.5, 0.5, "\n".join(lines), ha="center", va="center", transform=ax.transAxes, fontsize=6,
            color="0.35", wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    for s in ax.spines.values():
        s.set_visible(True)
        s.set_color("0.8")
        s.set_linestyle(":")


def _short(cell: str) -> str:
    """'model~tiny/algo~rspo_pass/k~4/n~8/reward~pass/seed~0 [math500]' -> 'tiny rspo_pass k4 n8 pass s0 [math500]'."""
    return " ".join(p.split("~", 1)[-1] if p.startswith(("model~", "algo~", "reward~")) else p.replace("~", "")
                    for p in cell.split("/"))


def annotate_missing(fig, missing: list[str], *, max_items: int = 3) -> None:
    """Footnote under a figure that has some but not all of its cells."""
    if not missing:
        return
    shown = "; ".join(_short(m) for m in missing[:max_items])
    more = f" (+{len(missing) - max_items} more)" if len(missing) > max_items else ""
    fig.suptitle(f"missing cells ({len(missing)}): {shown}{more} - see the .json sidecar", fontsize=5.5,
                 color="firebrick", wrap=True)


def log2_k_axis(ax, ks) -> None:
    """x axis in log2 with ticks at the given k values."""
    ks = sorted(set(int(k) for k in ks))
    if not ks:
        return
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks)
    ax.set_xticklabels([str(k) for k in ks])
    ax.minorticks_off()


def panel_grid(n_panels: int, *, ncols: int | None = None, panel_w: float = 2.1, panel_h: float = 1.8,
               sharey: bool = False):
    """fig, flat list of axes for n_panels panels (extra axes removed)."""
    n_panels = max(1, n_panels)
    ncols = ncols or min(n_panels, 5)
    nrows = int(np.ceil(n_panels / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_w * ncols, panel_h * nrows + 0.45), squeeze=False,
                             sharey=sharey, constrained_layout=True)
    flat = list(axes.ravel())
    for ax in flat[n_panels:]:
        ax.remove()
    return fig, flat[:n_panels]


def figure_legend(fig, axes, *, ncol: int | None = None) -> None:
    """One legend for the whole figure, below the panels, deduplicated by label."""
    seen = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(lab, h)
    if not seen:
        return
    width = fig.get_size_inches()[0]
    fits_below = max(1, int(width / 1.35))
    if ncol is None and len(axes) == 1 and len(seen) > 3:
        # one narrow panel and a long legend: beside the panel, not squeezing it from below
        fig.legend(list(seen.values()), list(seen.keys()), loc="outside right center", ncol=1)
    else:
        fig.legend(list(seen.values()), list(seen.keys()), loc="outside lower center",
                   ncol=ncol or min(len(seen), fits_below))
