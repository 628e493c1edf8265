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


# panel_grid adds LEGEND_ROOM inches below the panels: the room of a legend of up to LEGEND_ROWS rows (at the style's
# legend.fontsize 6.5: 0.17 in for one row, 0.14 in for each further one); figure_legend grows the figure for more
LEGEND_ROOM = 0.45
LEGEND_ROWS = 3
COLUMN_PITCH = 1.35  # inches per legend column below the panels, at most (columns of one grid across the figure)


def lone_panel_width(n_entries: int) -> float:
    """Width (inches) of a figure's only panel: room for a legend of more than three entries beside it."""
    return 4.2 if n_entries > 3 else 2.8


def panel_grid(n_panels: int, *, ncols: int | None = None, panel_w: float = 2.1, panel_h: float = 1.8,
               sharey: bool = False):
    """fig, flat list of axes for n_panels panels (extra axes removed)."""
    n_panels = max(1, n_panels)
    ncols = ncols or min(n_panels, 5)
    nrows = int(np.ceil(n_panels / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_w * ncols, panel_h * nrows + LEGEND_ROOM), squeeze=False,
                             sharey=sharey, constrained_layout=True)
    flat = list(axes.ravel())
    for ax in flat[n_panels:]:
        ax.remove()
    return fig, flat[:n_panels]


def _legend_size(fig, handles, labels, ncol: int) -> tuple[float, float]:
    """(width, height) in inches of the legend these entries make in ncol columns (drawn, measured, removed)."""
    leg = fig.legend(handles, labels, ncol=ncol, loc="upper left")
    box = leg.get_window_extent(fig.canvas.get_renderer())
    leg.remove()
    return box.width / fig.dpi, box.height / fig.dpi


def figure_legend(fig, axes, *, ncol: int | None = None) -> None:
    """One legend for the whole figure, deduplicated by label.

    Beside a lone panel when it has more than three entries and fits there (no wider than what is left to the panel,
    no taller than the figure); else below the panels in ``ncol`` columns or, by default, as many as fit the figure's
    width (at most one per COLUMN_PITCH inches). A legend of more than LEGEND_ROWS rows makes the figure taller by
    what it needs beyond LEGEND_ROOM, so the panels keep their size however many methods there are.
    """
    seen = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(lab, h)
    if not seen:
        return
    handles, labels = list(seen.values()), list(seen.keys())
    width, height = fig.get_size_inches()
    if ncol is None and len(axes) == 1 and len(seen) > 3:
        # one narrow panel and a long legend: beside the panel, not squeezing it from below
        w, h = _legend_size(fig, handles, labels, 1)
        if w <= width - w and h <= height:
            fig.legend(handles, labels, loc="outside right center", ncol=1)
            return
    if ncol is None:
        ncol = min(len(seen), max(1, int(width / COLUMN_PITCH)))
        while ncol > 1 and _legend_size(fig, handles, labels, ncol)[0] > width:
            ncol -= 1
    if -(-len(seen) // ncol) > LEGEND_ROWS:
        fig.set_size_inches(width, height + _legend_size(fig, handles, labels, ncol)[1] - LEGEND_ROOM)
    fig.legend(handles, labels, loc="outside lower center", ncol=ncol)
