"""Beyond the paper: RSPO, the baseline and peer Pass@k methods compared at matched k.

For a method trained with k, the point at x = k is its Pass@k with the evaluation k equal to the training k. k-free
methods (policy gradient, GRPO, the base model) are drawn at every x as their Pass@x. Cells: the config families
``peers`` and ``main`` together (a k-annealed cell is drawn at its starting k, dotted).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.figures.colors import label_for, sort_key, style_for, uses_k
from analysis.figures.drawing import (BENCH_TITLES, annotate_missing, figure_legend, log2_k_axis, lone_panel_width,
                                      panel_grid, placeholder)
from analysis.figures.registry import register_figure
from analysis.figures.selection import family_rows
from analysis.stats import method_curves

METHOD_KEYS = ["model", "algo", "k_schedule", "n", "reward"]  # one line per method, across training k


def k_free(algo: str) -> bool:
    """The base model and estimators whose weights ignore k (``uses_k`` False: pg, grpo, grpo_passk, rs_grpo; a
    plugin's from the manifest, colors.uses_k)."""
    return algo == "base" or not uses_k(algo)


def dodge_steps(n_methods: int) -> tuple[float, float]:
    """(step, centre) of the x dodge 2 ** (step * (i - centre)) of a panel's i-th method: 0.06 log2 units from the
    third method for up to 8 methods; more are squeezed into +-0.25 log2 units around their k (never near k/2, 2k)."""
    if n_methods <= 8:
        return 0.06, 2.0
    return 0.5 / n_methods, (n_methods - 1) / 2


def matched_points(curves: pd.DataFrame) -> pd.DataFrame:
    """Rows of seed-mean curves where eval k == train k for k-using methods; k-free methods keep every k."""
    if curves.empty:
        return curves
    kfree = curves["algo"].map(k_free).astype(bool)
    return curves[kfree | (curves["k"] == curves["train_k"])]


@register_figure("fig13_peers_matched_k", needs="tables", families=("peers", "main"),
                 caption="Pass@k at matched k: each k-method's Pass@k evaluated at its own training k, against RSPO, "
                         "the baseline, peers (PKPO, Chen et al., RS-GRPO, ...) and the k-free policy gradient / GRPO "
                         "(drawn at every k). Mean over seeds, 95% CI error bars; methods are dodged slightly along x.")
def build(ctx):
    table = ctx.table("passk")
    peers = family_rows(ctx, ("peers",), table)
    main = family_rows(ctx, ("main",), table)
    rows = pd.concat([peers["rows"], main["rows"]]).drop_duplicates() if not table.empty else table
    benches = [b for b in dict.fromkeys(list(peers["benchmarks"]) + list(main["benchmarks"]))]
    missing = list(dict.fromkeys(peers["missing"] + main["missing"]))
    curves = matched_points(method_curves(rows, ctx.ci))
    meta = {"source": f"{peers['source']} + {main['source']}", "benchmarks": benches,
            "cells_used": sorted(set(rows["cell"])) if not rows.empty else [], "missing_cells": missing,
            "ci_methods": sorted(set(curves["ci_method"])) if not curves.empty else [], "values": []}
    if not benches or curves.empty:
        fig, axes = panel_grid(1, panel_w=3.3, panel_h=2.2)
        placeholder(axes[0], "no peer / main cells in the tables", missing)
        return fig, meta
    n_lines = curves.groupby(METHOD_KEYS, dropna=False).ngroups
    fig, axes = panel_grid(len(benches), panel_w=lone_panel_width(n_lines) if len(benches) == 1 else 2.1)
    trained_ks = sorted(set(int(k) for k in curves.loc[~curves["algo"].map(k_free).astype(bool), "train_k"]))
    for ax, bench in zip(axes, benches):
        ax.set_title(BENCH_TITLES.get(bench, bench))
        sub = curves[curves["benchmark"] == bench]
        if sub.empty:
            placeholder(ax, f"no rows for {bench}", [m for m in missing if m.endswith(f"[{bench}]")])
            continue
        order: dict = {}
        step, centre = dodge_steps(sub.drop_duplicates(["algo", "k_schedule"]).shape[0])
        for key, g in sorted(sub.groupby(METHOD_KEYS, dropna=False), key=lambda kv: sort_key(kv[0][1], 4)):
            model, algo, sched, n, reward = key
            if k_free(algo):
                st = style_for(algo, 1)
                g = g[g["k"].isin(trained_ks)] if trained_ks else g
                x = g["k"].to_numpy(float)
            else:
                st = style_for(algo, 4)  # a mid shade: the line spans several training k
                st["label"] = label_for(algo)  # no k: the line spans the training ks
                if sched != "constant":
                    st["linestyle"] = ":"
                    st["label"] += f" [{sched}]"
                x = g["train_k"].to_numpy(float)
            g = g.assign(_x=x).sort_values("_x")
            if g.empty:
                continue
            y = g["value"].to_numpy(float)
            lo = np.clip(g["ci_low"].to_numpy(float), 0.0, 1.0)
            hi = np.clip(g["ci_high"].to_numpy(float), 0.0, 1.0)
            err = np.where(np.isnan(np.vstack([lo, hi])), 0.0, np.vstack([y - lo, hi - y]))
            dodge = 2.0 ** (step * (order.setdefault((algo, sched), len(order)) - centre))  # keep error bars apart
            ax.errorbar(g["_x"] * dodge, y, yerr=err, color=st["color"], ls=st["linestyle"],
                        lw=min(st["linewidth"], 1.6), marker=st["marker"] or "o", ms=3, capsize=1.5,
                        elinewidth=0.6, label=st["label"])
            for r, xx, yy in zip(g.itertuples(index=False), g["_x"], y):
                meta["values"].append({"benchmark": bench, "algo": algo, "train_k": int(r.train_k),
                                       "k_schedule": sched, "n": int(n), "k": int(xx), "value": float(yy)})
        log2_k_axis(ax, trained_ks or sub["k"])
        ax.set_xlabel("k (training = evaluation)")
        ax.set_ylabel("Pass@k")
    figure_legend(fig, axes)
    annotate_missing(fig, missing)
    return fig, meta
