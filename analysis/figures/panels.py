"""The two panel layouts of the table figures: Pass@k / Max@k curves per benchmark, training curves per column.

Both take a family selection (analysis.figures.selection.family_rows) and draw the seed means and 95% bands that
analysis.stats computes; they return (figure, sidecar meta) with the numbers drawn under ``values``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.figures.colors import n_style, sort_key, style_for
from analysis.figures.drawing import (BENCH_TITLES, annotate_missing, figure_legend, log2_k_axis, lone_panel_width,
                                      panel_grid, placeholder)
from analysis.figures.selection import cells_used, grader_versions
from analysis.stats import METHOD_KEYS, method_curves, seed_curve


def draw_metric_panels(ctx, fam: dict, *, ylabel: str, title_suffix: str = "",
                       color_by: str = "method", family_name: str = "", ncols: int | None = None,
                       what: str = "cells"):
    """The Pass@k / Max@k figure: one panel per benchmark, one line (+ CI band) per method group.

    color_by "method" uses style_for(algo, train_k); "n" shades one method by n (the n-scaling figure).
    Returns (fig, meta) where meta has cells_used, missing_cells, ci_methods, grader_versions, source, benchmarks,
    values (the plotted numbers).
    """
    rows, benches, missing = fam["rows"], fam["benchmarks"], fam["missing"]
    curves = method_curves(rows, ctx.ci)
    if not benches:
        fig, axes = panel_grid(1, panel_w=3.3, panel_h=2.2)
        why = fam["source"] if fam["family"] is None else f"no {what} for family '{family_name}' in the tables"
        placeholder(axes[0], why, missing)
        return fig, _meta(rows, curves, fam)
    # a lone panel gets room for its legend beside it (figure_legend puts long legends there)
    n_lines = curves.groupby(METHOD_KEYS, dropna=False).ngroups if not curves.empty else 0
    fig, axes = panel_grid(len(benches), ncols=ncols, sharey=False,
                           panel_w=lone_panel_width(n_lines) if len(benches) == 1 else 2.1)
    ns = sorted(set(curves["n"])) if not curves.empty else []
    for ax, bench in zip(axes, benches):
        sub = curves[curves["benchmark"] == bench] if not curves.empty else curves
        ax.set_title(BENCH_TITLES.get(bench, bench) + title_suffix)
        if sub.empty:
            placeholder(ax, f"no rows for {bench}", [m for m in missing if m.endswith(f"[{bench}]")])
            continue
        groups = sorted(sub.groupby(METHOD_KEYS, dropna=False), key=lambda kv: sort_key(kv[0][1], kv[0][2]))
        for key, g in groups:
            model, algo, tk, sched, n, reward = key
            g = g.sort_values("k")
            st = style_for(algo, tk)
            if color_by == "n":
                st = n_style(algo, tk, n, ns)
            elif sched != "constant":
                st["linestyle"] = ":"
                st["label"] += f" [{sched}]"
            x, y = g["k"].to_numpy(float), g["value"].to_numpy(float)
            # pass@k and max@k (rewards in [0, 1]) lie in [0, 1]: a t-interval over few seeds may not
            lo = np.clip(g["ci_low"].to_numpy(float), 0.0, 1.0)
            hi = np.clip(g["ci_high"].to_numpy(float), 0.0, 1.0)
            ax.plot(x, y, color=st["color"], ls=st["linestyle"], lw=st["linewidth"], marker=st["marker"] or None,
                    label=st["label"], zorder=3 if algo != "base" else 2)
            ok = ~(np.isnan(lo) | np.isnan(hi))
            if ok.any():
                ax.fill_between(x[ok], lo[ok], hi[ok], color=st["color"], alpha=0.13, lw=0, zorder=1)
        log2_k_axis(ax, sub["k"])
        lo_y, hi_y = ax.get_ylim()  # both metrics lie in [0, 1]: no negative or >1 ticks from autoscaling
        ax.set_ylim(max(lo_y, -0.02), min(hi_y, 1.02))
        ax.set_xlabel("k")
        ax.set_ylabel(ylabel)
    figure_legend(fig, axes)
    annotate_missing(fig, missing)
    return fig, _meta(rows, curves, fam)


def _meta(rows: pd.DataFrame, curves: pd.DataFrame, fam: dict) -> dict:
    values = []
    if not curves.empty:
        for r in curves.itertuples(index=False):
            values.append({"model": r.model, "algo": r.algo, "train_k": int(r.train_k), "k_schedule": r.k_schedule,
                           "n": int(r.n), "reward": r.reward, "benchmark": r.benchmark, "k": int(r.k),
                           "value": float(r.value), "ci_low": _f(r.ci_low), "ci_high": _f(r.ci_high),
                           "n_seeds": int(r.n_seeds)})
    return {
        "source": fam.get("source"),
        "benchmarks": fam.get("benchmarks", []),
        "cells_used": cells_used(rows),
        "missing_cells": list(fam.get("missing", [])),
        "grader_versions": grader_versions(rows),
        "ci_methods": sorted(set(curves["ci_method"])) if not curves.empty else [],
        "values": values,
    }


def _f(x):
    x = float(x)
    return None if np.isnan(x) else x


def draw_train_panels(fam: dict, panels: list[tuple], *, ncols: int | None = None):
    """One panel per (title, column, algo predicate[, required algo]); one line per method group (mean over seeds,
    t-band across seeds).

    predicate(algo) -> bool restricts a panel's lines (None: all); a panel whose required algo has no rows is a
    placeholder (so a "baseline vs policy gradient" panel never shows policy gradient alone). Returns (fig, meta).
    """
    rows, missing = fam["rows"], fam["missing"]
    fig, axes = panel_grid(len(panels), ncols=ncols, panel_w=2.4, panel_h=1.9)
    values, windows = {}, set()
    for ax, (title, column, pred, *required) in zip(axes, panels):
        ax.set_title(title)
        sub = rows if rows.empty or pred is None else rows[rows["algo"].map(pred).astype(bool)]
        if required and not sub.empty and not (sub["algo"] == required[0]).any():
            placeholder(ax, f"no '{required[0]}' cells in this family", [m for m in missing if required[0] in m])
            continue
        if sub.empty:
            why = fam["source"] if fam["family"] is None else "no training logs for this panel's methods"
            placeholder(ax, why, missing)
            continue
        if column not in sub.columns or pd.to_numeric(sub[column], errors="coerce").isna().all():
            placeholder(ax, f"the training logs have no '{column}' values")
            continue
        groups = sorted(sub.groupby(METHOD_KEYS, dropna=False), key=lambda kv: sort_key(kv[0][1], kv[0][2]))
        for key, g in groups:
            model, algo, tk, sched, n, reward = key
            c = seed_curve(g, column)
            windows.add(int(c["window"].iloc[0]))
            st = style_for(algo, tk)
            if sched != "constant":
                st["linestyle"] = ":"
                st["label"] += f" [{sched}]"
            ax.plot(c["step"], c["mean"], color=st["color"], ls=st["linestyle"], lw=st["linewidth"],
                    label=st["label"])
            ok = c["lo"].notna().to_numpy()
            if ok.any():
                ax.fill_between(c["step"][ok], c["lo"][ok], c["hi"][ok], color=st["color"], alpha=0.13, lw=0)
            values.setdefault(column, {})[f"{algo}|k={tk}|{sched}|n={n}|{reward}|{model}"] = {
                "step": c["step"].tolist(), "mean": c["mean"].tolist(), "n_seeds": int(c["n_seeds"].max())}
        ax.set_xlabel("training step")
        ax.set_ylabel(column)
    figure_legend(fig, axes)
    annotate_missing(fig, missing)
    meta = {"source": fam["source"], "cells_used": cells_used(rows), "missing_cells": list(missing),
            "smoothing": {"rolling_mean_window": sorted(windows)}, "band": "95% t-interval across seeds",
            "values": values}
    return fig, meta
