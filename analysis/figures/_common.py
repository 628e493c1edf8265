"""Shared machinery of the figure scripts: registry, context (tables, bandit JSON, config), saving, panels.

A figure script defines ``build(ctx: FigureContext) -> (Figure, meta: dict)`` and registers it::

    @register_figure("fig06_passk_main", needs="tables", caption="...", paper_figure=6)
    def build(ctx): ...

``run_figure(name, ctx)`` calls it and writes ``{out}/{name}.pdf``, ``.png`` and the sidecar ``.json`` (config,
grader versions, inputs, cells used, missing cells, CI method), each atomically. ``meta["missing_cells"]`` lists the
expected cells that the tables lack; a figure never draws a line it has no rows for.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from rspo_core.atomic import atomic_path, write_text_atomic  # noqa: E402

from analysis.aggregate import CELL_COLUMNS, METRIC_COLUMNS, TRAIN_FILE, TRAIN_LOG_FIELDS, seed_mean  # noqa: E402
from analysis.figures.colors import label_for, sort_key, style_for  # noqa: E402
from rspo_core import cells as cells_lib  # noqa: E402

log = logging.getLogger("analysis.figures")
logging.getLogger("fontTools").setLevel(logging.ERROR)  # PDF font subsetting: per-glyph INFO, timestamp WARNINGs

STYLE_PATH = Path(__file__).with_name("rspo.mplstyle")
NEEDS = ("analytic", "tables", "bandit")
FIGURES: dict[str, dict] = {}
MAIN_BENCHMARKS = ("aime24", "amc23", "math500", "minerva", "olympiadbench")
CLEAN_BENCHMARKS = ("aime25", "livemathbench")
BENCH_TITLES = {"aime24": "AIME24", "amc23": "AMC23", "math500": "MATH500", "minerva": "Minerva",
                "olympiadbench": "OlympiadBench", "aime25": "AIME25", "livemathbench": "LiveMathBench"}
GROUP_KEYS = ["model", "algo", "train_k", "k_schedule", "n", "reward"]
TABLE_FILES = {"passk": "passk.csv", "maxk": "maxk.csv", "train_curves": TRAIN_FILE}
TABLE_COLUMNS = {
    "passk": list(CELL_COLUMNS) + list(METRIC_COLUMNS),
    "maxk": list(CELL_COLUMNS) + list(METRIC_COLUMNS),
    "train_curves": list(CELL_COLUMNS) + ["step_k" if f == "k" else f for f in TRAIN_LOG_FIELDS],
}


# ----------------------------------------------------------------------------------------------------------------------
# registry


def register_figure(name: str, *, needs: str, caption: str, paper_figure: int | None = None,
                    families: tuple[str, ...] = ()) -> Callable:
    """Decorator adding ``build`` to FIGURES[name] = {function, needs, caption, paper_figure, families, outputs}.

    needs: "analytic" (no inputs), "tables" (results/tables CSVs), or "bandit" (the toy policy lab JSON).
    Re-registering a different function under a taken name raises ValueError.
    """
    if needs not in NEEDS:
        raise ValueError(f"figure {name!r}: needs={needs!r}; expected one of {NEEDS}")

    def deco(fn: Callable) -> Callable:
        if name in FIGURES and FIGURES[name]["function"].__qualname__ != fn.__qualname__:
            raise ValueError(f"figure {name!r} is already registered by {FIGURES[name]['function'].__qualname__}")
        FIGURES[name] = {"function": fn, "needs": needs, "caption": caption, "paper_figure": paper_figure,
                         "families": tuple(families), "outputs": [f"{name}.pdf", f"{name}.png", f"{name}.json"]}
        return fn

    return deco


# ----------------------------------------------------------------------------------------------------------------------
# context


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _uses_k(algo: str) -> bool:
    try:
        from rspo_patch.estimators import ESTIMATORS
    except ImportError:  # the registry is optional here: every algo but the three k-free ones uses k
        return algo not in ("pg", "grpo", "rs_grpo")
    return ESTIMATORS[algo].uses_k if algo in ESTIMATORS else True


@dataclass
class FigureContext:
    """What a figure may read. Every accessor records the files it read into ``inputs`` for the sidecar."""

    out_dir: Path
    tables_dir: Path | None = None
    bandit_path: Path | None = None
    config_path: Path | None = None
    ci: str = "auto"
    png_dpi: int | None = None  # None: the style's savefig.dpi (200)
    inputs: dict = field(default_factory=dict)
    _cache: dict = field(default_factory=dict)

    def table(self, name: str) -> pd.DataFrame:
        """passk / maxk / train_curves as a DataFrame; a missing file gives an empty frame with its columns."""
        if name not in TABLE_FILES:
            raise ValueError(f"unknown table {name!r}; expected one of {sorted(TABLE_FILES)}")
        if name in self._cache:
            df, record = self._cache[name]
            self.inputs.update(record)  # run_figure resets inputs per figure; the cache must not hide a read
            return df
        df, record = pd.DataFrame(columns=TABLE_COLUMNS[name]), {}
        if self.tables_dir is not None:
            path = Path(self.tables_dir) / TABLE_FILES[name]
            if path.is_file():
                df = pd.read_csv(path)
                record[str(path)] = {"sha256": _sha256(path), "rows": len(df)}
            else:
                record[str(path)] = {"missing": True}
        for c in ("model", "algo", "reward", "cell", "k_schedule", "benchmark", "metric"):
            if c in df.columns:
                df[c] = df[c].astype(object).where(df[c].notna(), None)
        if "k_schedule" in df.columns:
            df["k_schedule"] = df["k_schedule"].fillna("constant")
        self._cache[name] = (df, record)
        self.inputs.update(record)
        return df

    @property
    def bandit(self) -> dict | None:
        """The toy policy lab JSON (rspo_patch.bandit --out), or None when not given."""
        if "bandit" not in self._cache:
            data, record = None, {}
            if self.bandit_path is not None:
                path = Path(self.bandit_path)
                if path.is_file():
                    data = json.loads(path.read_text())
                    record[str(path)] = {"sha256": _sha256(path)}
                else:
                    record[str(path)] = {"missing": True}
            self._cache["bandit"] = (data, record)
        data, record = self._cache["bandit"]
        self.inputs.update(record)
        return data

    @property
    def config(self) -> dict | None:
        """The workflow config YAML as a dict, or None."""
        if "config" not in self._cache:
            data, record = None, {}
            if self.config_path is not None:
                import yaml

                path = Path(self.config_path)
                if not path.is_file():
                    raise ValueError(f"config {str(path)!r} does not exist")
                data = yaml.safe_load(path.read_text()) or {}
                record[str(path)] = {"sha256": _sha256(path)}
            self._cache["config"] = (data, record)
        data, record = self._cache["config"]
        self.inputs.update(record)
        return data

    def family(self, name: str) -> dict | None:
        """Expected cells and benchmarks of config family ``name``: {cells: [dict], benchmarks: [str], spec}.

        None when no config was given or the config has no such family (the figure then falls back to what the
        tables hold). Cells are dicts with the aggregate's column names (cell, model, algo, train_k, k_schedule, n,
        reward, seed), base cells included where the family sets ``base`` (default true).
        """
        cfg = self.config
        fams = (cfg or {}).get("families") or {}
        if name not in fams:
            return None
        per = cells_lib.family_cells({name: fams[name]}, uses_k=_uses_k)
        cells = [{"cell": c.path, "model": c.model, "algo": c.algo, "train_k": c.k, "k_schedule": c.k_schedule,
                  "n": c.n, "reward": c.reward, "seed": c.seed} for c in per[name]]
        benches = fams[name].get("benchmarks", [])
        benches = [str(b) for b in (benches if isinstance(benches, (list, tuple)) else [benches])]
        return {"cells": cells, "benchmarks": benches, "spec": fams[name]}


# ----------------------------------------------------------------------------------------------------------------------
# saving


def _atomic_savefig(fig, path: Path, **kw) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, **kw)


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, (np.ndarray,)):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    return str(o)


def run_figure(name: str, ctx: FigureContext) -> dict:
    """Build FIGURES[name] with ctx and write {name}.pdf/.png/.json into ctx.out_dir; return the sidecar dict."""
    if name not in FIGURES:
        raise ValueError(f"unknown figure {name!r}; registered: {', '.join(sorted(FIGURES))}")
    spec = FIGURES[name]
    out_dir = Path(ctx.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ctx.inputs = {}
    with plt.style.context(str(STYLE_PATH)):
        fig, meta = spec["function"](ctx)
        _atomic_savefig(fig, out_dir / f"{name}.pdf")
        _atomic_savefig(fig, out_dir / f"{name}.png", **({"dpi": ctx.png_dpi} if ctx.png_dpi else {}))
    plt.close(fig)
    sidecar = {
        "figure": name,
        "paper_figure": spec["paper_figure"],
        "caption": spec["caption"],
        "needs": spec["needs"],
        "families": list(spec["families"]),
        "config": str(ctx.config_path) if ctx.config_path else None,
        "tables_dir": str(ctx.tables_dir) if ctx.tables_dir else None,
        "bandit": str(ctx.bandit_path) if ctx.bandit_path else None,
        "inputs": dict(ctx.inputs),
        "ci": ctx.ci,
        "matplotlib": matplotlib.__version__,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "missing_cells": [],
        **meta,
    }
    text = json.dumps(sidecar, indent=2, default=_json_default, sort_keys=False)
    write_text_atomic(out_dir / f"{name}.json", text + "\n")
    log.info("%s: wrote pdf/png/json (%d missing cells)", name, len(sidecar["missing_cells"]))
    return sidecar


# ----------------------------------------------------------------------------------------------------------------------
# drawing helpers


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


# ----------------------------------------------------------------------------------------------------------------------
# data selection


def _as_list(v):
    return list(v) if isinstance(v, (list, tuple, set)) else [v]


def select(df: pd.DataFrame, **filters) -> pd.DataFrame:
    """Rows of df whose columns equal the given values (a list means 'any of')."""
    mask = pd.Series(True, index=df.index)
    for col, val in filters.items():
        if val is None:
            continue
        if col not in df.columns:
            raise ValueError(f"no column {col!r} in table (columns: {list(df.columns)})")
        mask &= df[col].isin(_as_list(val))
    return df[mask]


def main_model(df: pd.DataFrame) -> str | None:
    """The model with the most trained cells (ties: the alphabetically first); None for an empty frame."""
    trained = df[df["algo"] != "base"] if not df.empty else df
    src = trained if not trained.empty else df
    if src.empty:
        return None
    counts = src.groupby("model")["cell"].nunique()
    return sorted(counts.index, key=lambda m: (-counts[m], str(m)))[0]


def resolve_family(ctx: FigureContext, family: str, table: pd.DataFrame, *, fallback_filter: Callable,
                   benchmarks_fallback: Callable) -> dict:
    """Expected cells, the rows that realise them, the missing cells and the benchmarks for one family.

    With a config that defines ``family``: expected = its cells x its benchmarks; a (cell, benchmark) pair absent from
    ``table`` is missing. Without: the rows ``fallback_filter(table)`` selects, benchmarks ``benchmarks_fallback(rows)``
    and no expected list (only the family's complete absence is reported, by the figure).
    Returns {rows, benchmarks, missing, source}.
    """
    fam = ctx.family(family)
    if fam is not None:
        exp_cells = fam["cells"]
        benches = fam["benchmarks"] or (sorted(set(table["benchmark"])) if not table.empty else [])
        present = set(zip(table["cell"], table["benchmark"])) if not table.empty else set()
        missing = [f"{c['cell']} [{b}]" for c in exp_cells for b in benches if (c["cell"], b) not in present]
        rows = table[table["cell"].isin([c["cell"] for c in exp_cells]) & table["benchmark"].isin(benches)] \
            if not table.empty else table
        return {"rows": rows, "benchmarks": list(benches), "missing": missing, "source": f"config family {family!r}"}
    rows = fallback_filter(table) if not table.empty else table
    benches = benchmarks_fallback(rows) if not rows.empty else []
    rows = rows[rows["benchmark"].isin(benches)] if not rows.empty else rows
    return {"rows": rows, "benchmarks": list(benches), "missing": [], "source": "table columns (no config family)"}


def family_for(ctx: FigureContext, names: tuple[str, ...], table: pd.DataFrame, *, fallback_filter: Callable,
               benchmarks_fallback: Callable | None = None, benchmarks: list[str] | None = None) -> dict:
    """resolve_family for the first of ``names`` the config defines (aliases, e.g. ("n_scaling", "nscale")).

    ``benchmarks`` overrides the family's benchmark list (e.g. the contamination figure). The returned dict also has
    ``family``: the config family used, or None.
    """
    chosen = next((nm for nm in names if ctx.family(nm) is not None), None)
    bf = benchmarks_fallback or default_benchmarks
    if chosen is None and ctx.config is not None:
        # a config that does not plan this experiment: draw nothing rather than guess cells from the tables
        return {"rows": table.iloc[0:0], "benchmarks": [], "missing": [], "family": None,
                "source": f"the config defines no family {' / '.join(names)}"}
    if chosen is None:
        fam = resolve_family(ctx, names[0], table, fallback_filter=fallback_filter, benchmarks_fallback=bf)
    else:
        fam = resolve_family(ctx, chosen, table, fallback_filter=fallback_filter, benchmarks_fallback=bf)
    fam["family"] = chosen
    if benchmarks is not None:
        benchmarks = list(benchmarks)
        if chosen is not None:  # recompute the missing pairs against the overriding benchmark list
            exp = ctx.family(chosen)["cells"]
            present = set(zip(table["cell"], table["benchmark"])) if not table.empty else set()
            fam["missing"] = [f"{c['cell']} [{b}]" for c in exp for b in benchmarks if (c["cell"], b) not in present]
            rows = table[table["cell"].isin([c["cell"] for c in exp])] if not table.empty else table
        else:
            rows = fallback_filter(table) if not table.empty else table
        fam["rows"] = rows[rows["benchmark"].isin(benchmarks)] if not rows.empty else rows
        fam["benchmarks"] = benchmarks
    return fam


def most_common(series: pd.Series):
    """The most frequent value (ties: the smallest); None for an empty series."""
    if series.empty:
        return None
    counts = series.value_counts()
    top = counts[counts == counts.max()].index
    return sorted(top)[0]


def default_benchmarks(rows: pd.DataFrame, *, prefer=MAIN_BENCHMARKS, exclude=CLEAN_BENCHMARKS) -> list[str]:
    """The paper's benchmarks present in rows, in the paper's order; else every benchmark present but `exclude`."""
    present = set(rows["benchmark"]) if not rows.empty else set()
    chosen = [b for b in prefer if b in present]
    if chosen:
        return chosen
    return sorted(b for b in present if b not in exclude) or sorted(present)


def grader_versions(rows: pd.DataFrame) -> list[str]:
    if rows.empty or "grader_version" not in rows.columns:
        return []
    return sorted(set(str(v) for v in rows["grader_version"].dropna()))


def cells_used(rows: pd.DataFrame) -> list[str]:
    return sorted(set(rows["cell"])) if not rows.empty else []


def metric_curves(rows: pd.DataFrame, ci: str) -> pd.DataFrame:
    """Seed-mean of value per (GROUP_KEYS, benchmark, k) with CI columns (analysis.aggregate.seed_mean)."""
    if rows.empty:
        return pd.DataFrame(columns=GROUP_KEYS + ["benchmark", "k", "value", "ci_low", "ci_high", "n_seeds",
                                                  "ci_method"])
    return seed_mean(rows, GROUP_KEYS + ["benchmark", "k"], ci=ci)


def draw_metric_panels(ctx: FigureContext, fam: dict, *, ylabel: str, title_suffix: str = "",
                       color_by: str = "method", family_name: str = "", ncols: int | None = None,
                       what: str = "cells"):
    """The Pass@k / Max@k figure: one panel per benchmark, one line (+ CI band) per method group.

    color_by "method" uses style_for(algo, train_k); "n" shades one method by n (the n-scaling figure).
    Returns (fig, meta) where meta has cells_used, missing_cells, ci_methods, grader_versions, source, benchmarks,
    values (the plotted numbers).
    """
    rows, benches, missing = fam["rows"], fam["benchmarks"], fam["missing"]
    curves = metric_curves(rows, ctx.ci)
    if not benches:
        fig, axes = panel_grid(1, panel_w=3.3, panel_h=2.2)
        why = fam["source"] if fam["source"].startswith("the config defines no") else \
            f"no {what} for family '{family_name}' in the tables"
        placeholder(axes[0], why, missing)
        return fig, _meta(rows, curves, fam)
    # a lone panel gets room for its legend beside it (figure_legend puts long legends there)
    n_lines = curves.groupby(GROUP_KEYS, dropna=False).ngroups if not curves.empty else 0
    lone_w = 4.2 if n_lines > 3 else 2.8
    fig, axes = panel_grid(len(benches), ncols=ncols, sharey=False, panel_w=lone_w if len(benches) == 1 else 2.1)
    ns = sorted(set(curves["n"])) if not curves.empty else []
    for ax, bench in zip(axes, benches):
        sub = curves[curves["benchmark"] == bench] if not curves.empty else curves
        ax.set_title(BENCH_TITLES.get(bench, bench) + title_suffix)
        if sub.empty:
            placeholder(ax, f"no rows for {bench}", [m for m in missing if m.endswith(f"[{bench}]")])
            continue
        groups = sorted(sub.groupby(GROUP_KEYS, dropna=False), key=lambda kv: sort_key(kv[0][1], kv[0][2]))
        for key, g in groups:
            model, algo, tk, sched, n, reward = key
            g = g.sort_values("k")
            st = style_for(algo, tk)
            if color_by == "n":
                st = _n_style(algo, tk, n, ns)
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


def _n_style(algo: str, tk: int, n: int, ns: list[int]) -> dict:
    """The method's hue, darker and thicker as n grows (n-scaling figure)."""
    from matplotlib import colormaps

    st = style_for(algo, tk)
    if algo == "base":
        return st
    ns = [m for m in ns if m > 1] or ns
    i = ns.index(n) if n in ns else 0
    t = (i + 1) / max(len(ns), 1)
    cmap = colormaps["Reds" if algo.startswith("rspo") else "Blues" if algo == "baseline" else "Greys"]
    st["color"] = tuple(cmap(0.35 + 0.6 * t)[:3])
    st["linewidth"] = 0.9 + 1.4 * t
    st["linestyle"] = "-"
    st["label"] = label_for(algo, tk, n=n)
    return st


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


# ----------------------------------------------------------------------------------------------------------------------
# training curves


def train_family(ctx: FigureContext, names: tuple[str, ...], *, fallback_filter: Callable) -> dict:
    """Rows of train_curves.csv for a family's trained cells (base cells are not trained) and the missing cells."""
    table = ctx.table("train_curves")
    chosen = next((nm for nm in names if ctx.family(nm) is not None), None)
    if chosen is not None:
        exp = [c["cell"] for c in ctx.family(chosen)["cells"] if c["algo"] != "base"]
        present = set(table["cell"]) if not table.empty else set()
        rows = table[table["cell"].isin(exp)] if not table.empty else table
        return {"rows": rows, "missing": [c for c in exp if c not in present], "family": chosen,
                "source": f"config family {chosen!r}"}
    if ctx.config is not None:
        return {"rows": table.iloc[0:0], "missing": [], "family": None,
                "source": f"the config defines no family {' / '.join(names)}"}
    rows = fallback_filter(table) if not table.empty else table
    rows = rows[rows["algo"] != "base"] if not rows.empty else rows
    return {"rows": rows, "missing": [], "family": None, "source": "table columns (no config family)"}


def smooth_window(n_steps: int) -> int:
    """Centred rolling-mean window for a curve of n_steps points: ~1/25 of the run, at least 1 (no smoothing)."""
    return max(1, int(n_steps) // 25)


def seed_curve(g: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per step: mean over seeds of `column` and a 95% t-interval across seeds (NaN with one seed).

    Each seed's curve is first smoothed with a centred rolling mean of smooth_window(steps) points.
    Columns: step, mean, lo, hi, n_seeds, window.
    """
    from scipy.stats import t as student_t

    per_seed = []
    window = smooth_window(g["step"].nunique())
    for _, s in g.groupby("seed"):
        s = s.sort_values("step")
        v = pd.to_numeric(s[column], errors="coerce").rolling(window, center=True, min_periods=1).mean()
        per_seed.append(pd.Series(v.to_numpy(), index=s["step"].to_numpy()))
    wide = pd.concat(per_seed, axis=1)
    mean = wide.mean(axis=1)
    cnt = wide.count(axis=1)
    sd = wide.std(axis=1, ddof=1)
    c_ = cnt.to_numpy()
    tq = np.where(c_ >= 2, student_t.ppf(0.975, np.maximum(c_ - 1, 1)), np.nan)
    h = tq * sd.to_numpy(float) / np.sqrt(c_)
    return pd.DataFrame({"step": wide.index.to_numpy(), "mean": mean.to_numpy(), "lo": mean.to_numpy() - h,
                         "hi": mean.to_numpy() + h, "n_seeds": c_, "window": window})


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
            why = fam["source"] if fam["source"].startswith("the config defines no") else \
                "no training logs for this panel's methods"
            placeholder(ax, why, missing)
            continue
        if column not in sub.columns or pd.to_numeric(sub[column], errors="coerce").isna().all():
            placeholder(ax, f"the training logs have no '{column}' values")
            continue
        groups = sorted(sub.groupby(GROUP_KEYS, dropna=False), key=lambda kv: sort_key(kv[0][1], kv[0][2]))
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
