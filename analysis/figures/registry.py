"""The figure registry and the writer of a figure's three files (PDF, PNG, JSON sidecar).

A figure script defines ``build(ctx: FigureContext) -> (Figure, meta: dict)`` and registers it::

    @register_figure("fig06_passk_main", needs="tables", caption="...", paper_figure=6, families=("main",))
    def build(ctx): ...

``run_figure(name, ctx)`` calls it and writes ``{out}/{name}.pdf``, ``.png`` and the sidecar ``.json`` (inputs with
their sha256, cells used, missing cells, CI method, the numbers drawn), each atomically. ``meta["missing_cells"]``
lists the expected cells (or cell x benchmark x k points) that the tables lack; a figure never draws a line it has no
rows for.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from rspo_core.atomic import atomic_path, write_text_atomic  # noqa: E402

log = logging.getLogger("analysis.figures")
logging.getLogger("fontTools").setLevel(logging.ERROR)  # PDF font subsetting: per-glyph INFO, timestamp WARNINGs

STYLE_PATH = Path(__file__).with_name("rspo.mplstyle")
NEEDS = ("analytic", "tables", "bandit")
FIGURES: dict[str, dict] = {}


def register_figure(name: str, *, needs: str, caption: str, paper_figure: int | None = None,
                    families: tuple[str, ...] = ()) -> Callable:
    """Decorator adding ``build`` to FIGURES[name] = {function, needs, caption, paper_figure, families, outputs}.

    needs: "analytic" (no inputs), "tables" (results/tables CSVs and the cell manifest results/cells.json), or
    "bandit" (the toy policy lab JSON). families: the manifest families the figure draws (first present wins).
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
    return str(o)


def run_figure(name: str, ctx) -> dict:
    """Build FIGURES[name] with ctx (a FigureContext) and write {name}.pdf/.png/.json into ctx.out_dir; return the
    sidecar dict."""
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
        "cells": str(ctx.cells_path) if ctx.cells_path else None,
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
