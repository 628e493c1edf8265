"""Which table rows a figure draws: the cells the manifest (results/cells.json) lists for a family, on its benchmarks.

One function, :func:`family_rows`, for every figure: nothing is guessed from the tables. Everything the family expects
and the tables lack is listed in ``missing``: a (cell, benchmark) pair with no rows (``"<cell> [<bench>]"``), a cell
whose rows lack some evaluation k that other cells of the benchmark have (``"<cell> [<bench>] k=8"``: e.g. a problem
with fewer samples than the others, see analysis.aggregate.metric_gaps), and, for training curves, a trained cell
with no log (``"<cell>"``).
"""

from __future__ import annotations

import pandas as pd

from analysis.aggregate import metric_gaps


def _empty(table: pd.DataFrame, source: str) -> dict:
    return {"rows": table.iloc[0:0], "benchmarks": [], "missing": [], "family": None, "source": source}


def family_rows(ctx, names: tuple[str, ...], table: pd.DataFrame, *, benchmarks: list[str] | None = None,
                trained_only: bool = False) -> dict:
    """Rows of ``table`` for the first manifest family of ``names`` that exists, and what is missing.

    table: passk / maxk rows (per cell, benchmark, k) or, with ``trained_only``, train_curves rows (per cell, step;
    base cells left out: they are not trained). benchmarks: overrides the family's list (the contamination figure).
    Returns {rows, benchmarks, missing, family (name or None), source (one line for the sidecar)}; without a manifest
    or without any of the families, empty rows and a source that says why.
    """
    if ctx.manifest is None:
        return _empty(table, "no cell manifest given (results/cells.json)")
    chosen = next((nm for nm in names if ctx.family(nm) is not None), None)
    if chosen is None:
        return _empty(table, f"the manifest has no family {' / '.join(names)}")
    fam = ctx.family(chosen)
    cells = [c["cell"] for c in fam["cells"] if not (trained_only and c["algo"] == "base")]
    out = {"family": chosen, "source": f"manifest family {chosen!r}"}
    if trained_only:
        present = set(table["cell"]) if not table.empty else set()
        out["rows"] = table[table["cell"].isin(cells)] if not table.empty else table
        out["missing"] = [c for c in cells if c not in present]
        out["benchmarks"] = []
        return out
    benches = [str(b) for b in (benchmarks if benchmarks is not None else fam["benchmarks"])]
    present = set(zip(table["cell"], table["benchmark"])) if not table.empty else set()
    missing = [f"{c} [{b}]" for c in cells for b in benches if (c, b) not in present]
    rows = table[table["cell"].isin(cells) & table["benchmark"].isin(benches)] if not table.empty else table
    gaps = metric_gaps(table[table["benchmark"].isin(benches)]) if not table.empty else None
    if gaps is not None and not gaps.empty:
        wanted = set(cells)
        gaps = gaps[gaps["cell"].isin(wanted)]
        order = {(c, b): i for i, (c, b) in enumerate((c, b) for c in cells for b in benches)}
        for (cell, bench), g in sorted(gaps.groupby(["cell", "benchmark"]), key=lambda kv: order.get(kv[0], 0)):
            missing += [f"{cell} [{bench}] k={int(k)}" for k in sorted(g["k"])]
    out.update(rows=rows, benchmarks=benches, missing=missing)
    return out


def grader_versions(rows: pd.DataFrame) -> list[str]:
    """Sorted grader versions of the rows drawn ([] without a grader_version column)."""
    if rows.empty or "grader_version" not in rows.columns:
        return []
    return sorted(set(str(v) for v in rows["grader_version"].dropna()))


def cells_used(rows: pd.DataFrame) -> list[str]:
    """Sorted cell paths of the rows drawn."""
    return sorted(set(rows["cell"])) if not rows.empty else []
