"""Collect every cell's evaluation metrics and training logs into tidy tables.

Inputs (the layout written by the workflow, docs/interfaces.md):

    {eval_root}/{cell}/{benchmark}/metrics.csv    columns METRIC_COLUMNS, metric in {"pass@k", "max@k"}
    {train_root}/{cell}/train_log.jsonl           one JSON object per training step

where ``cell = model~M/algo~A/k~K/n~N/reward~R/seed~S`` (the base model is ``algo~base/k~1/n~1/reward~pass/seed~0``).

Outputs, each written atomically (temp file + os.replace) into ``out_dir``:

    passk.csv         one row per (cell, benchmark, k) for metric pass@k
    maxk.csv          the same for max@k
    train_curves.csv  one row per (cell, step)
    gaps.csv          (cell, benchmark, metric, k) points a cell lacks although other cells of its benchmark have them
                      (each also a WARNING in the log, a line of the report and a missing_cells entry of the figures)
    passk_summary.csv / .tex, maxk_summary.csv / .tex
                      per-benchmark tables: mean over seeds at k = 1, 2, 4, 8, ... with 95% CIs

Cell columns prepended to every row: ``cell, model, algo, train_k, n, reward, seed`` (``train_k`` is the cell's k,
kept apart from the evaluation ``k`` of pass@k).

CLI::

    python -m analysis.aggregate --eval-root results/eval --train-root results/train --out-dir results/tables
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from rspo_core.atomic import write_text_atomic
from rspo_core.cells import TABLE_COLUMNS, parse_cell

from analysis.stats import CI_CHOICES, seed_mean

log = logging.getLogger("analysis.aggregate")

CELL_COLUMNS = TABLE_COLUMNS  # cell, model, algo, train_k, k_schedule, n, reward, seed (rspo_core.cells)
METRIC_COLUMNS = ("benchmark", "metric", "k", "value", "ci_low", "ci_high", "n_problems", "n_samples", "grader_version")
TRAIN_LOG_FIELDS = (
    "step", "k", "reward_mean", "pass_rate", "entropy", "weight_mean", "weight_std", "weight_min", "weight_max",
    "frac_zero_weight", "tokens_per_s", "wall_time",
)
TRAIN_COLUMNS = CELL_COLUMNS + tuple("step_k" if f == "k" else f for f in TRAIN_LOG_FIELDS)
METRIC_FILES = {"pass@k": "passk.csv", "max@k": "maxk.csv"}
TRAIN_FILE = "train_curves.csv"
GAPS_FILE = "gaps.csv"
GAP_COLUMNS = ("cell", "benchmark", "metric", "k")


def cell_columns(path: str) -> dict:
    """'model~M/algo~A/k~8-linear/n~16/reward~pass/seed~0' -> {cell, model, algo, train_k: 8, k_schedule: "linear",
    n: 16, reward, seed: 0} (rspo_core.cells' grammar); ValueError naming the path when it is not a cell path."""
    return parse_cell(path).columns()


# ----------------------------------------------------------------------------------------------------------------------
# atomic writers


def write_csv_atomic(df: pd.DataFrame, path: Path) -> None:
    """Write df as CSV (no index) via a temp file in the same folder + os.replace."""
    write_text_atomic(Path(path), df.to_csv(index=False))


# ----------------------------------------------------------------------------------------------------------------------
# readers


def read_metrics(eval_root: Path) -> pd.DataFrame:
    """Every {eval_root}/{cell}/{benchmark}/metrics.csv stacked, cell columns prepended.

    Files whose path is not a cell path are skipped with a warning; a file whose ``benchmark`` column disagrees
    with its folder, or that lacks a METRIC_COLUMNS column, raises ValueError. Returns an empty frame with the
    right columns when nothing is found.
    """
    eval_root = Path(eval_root)
    if not eval_root.is_dir():
        raise ValueError(f"eval root {str(eval_root)!r} is not a directory")
    frames = []
    for path in sorted(eval_root.rglob("metrics.csv")):
        rel = path.relative_to(eval_root).as_posix()
        parts = rel.rsplit("/", 2)
        if len(parts) != 3:
            log.warning("skipping %s: not {cell}/{benchmark}/metrics.csv", rel)
            continue
        cell_str, bench, _ = parts
        try:
            cell = cell_columns(cell_str)
        except ValueError as e:
            log.warning("skipping %s: %s", rel, e)
            continue
        df = pd.read_csv(path)
        missing = [c for c in METRIC_COLUMNS if c not in df.columns]
        if missing:
            raise ValueError(f"{path}: missing columns {missing}; expected {list(METRIC_COLUMNS)}")
        bad = set(df["benchmark"].astype(str)) - {bench}
        if bad:
            raise ValueError(f"{path}: benchmark column has {sorted(bad)} but the folder says {bench!r}")
        df = df[list(METRIC_COLUMNS)].copy()
        for key in CELL_COLUMNS:
            df[key] = cell[key]
        frames.append(df)
    cols = list(CELL_COLUMNS) + list(METRIC_COLUMNS)
    if not frames:
        return pd.DataFrame(columns=cols)
    out = pd.concat(frames, ignore_index=True)[cols]
    out["k"] = out["k"].astype(int)
    order = ["model", "algo", "train_k", "k_schedule", "n", "reward", "seed", "benchmark", "metric", "k"]
    return out.sort_values(order, kind="stable").reset_index(drop=True)


def read_train_logs(train_root: Path) -> pd.DataFrame:
    """Every {train_root}/{cell}/train_log.jsonl as rows (cell columns + TRAIN_LOG_FIELDS; absent fields NaN).

    The training-step k is renamed ``step_k`` (the cell's k is ``train_k``). A resumed run may log a step twice:
    the last record of each step wins. Blank or truncated last lines (a run still writing) are skipped.
    """
    train_root = Path(train_root)
    if not train_root.is_dir():
        raise ValueError(f"train root {str(train_root)!r} is not a directory")
    rows = []
    for path in sorted(train_root.rglob("train_log.jsonl")):
        rel = path.relative_to(train_root).parent.as_posix()
        try:
            cell = cell_columns(rel)
        except ValueError as e:
            log.warning("skipping %s: %s", path, e)
            continue
        by_step: dict[int, dict] = {}
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    log.warning("%s:%d: unparseable line skipped", path, lineno)
                    continue
                if "step" not in rec:
                    continue
                by_step[int(rec["step"])] = rec
        for step in sorted(by_step):
            rec = by_step[step]
            row = {key: cell[key] for key in CELL_COLUMNS}
            for field in TRAIN_LOG_FIELDS:
                row["step_k" if field == "k" else field] = rec.get(field, np.nan)
            rows.append(row)
    return pd.DataFrame(rows, columns=list(TRAIN_COLUMNS))


# ----------------------------------------------------------------------------------------------------------------------
# summaries


def metric_gaps(metrics: pd.DataFrame) -> pd.DataFrame:
    """Evaluation points missing from a tidy metrics table: (cell, benchmark, metric, k) for every cell evaluated on a
    benchmark whose rows lack a k that another cell of the same (benchmark, metric) has.

    Every cell of a benchmark is scored at the same ks, so a missing k means the scorer dropped it: analysis.metrics
    reports k only up to the smallest number of samples of any problem, so one lost line of a verified.jsonl silently
    removes the top k of that cell. Columns GAP_COLUMNS, sorted; empty when nothing is missing.
    """
    if metrics.empty:
        return pd.DataFrame(columns=list(GAP_COLUMNS))
    out = []
    for (bench, metric), g in metrics.groupby(["benchmark", "metric"], sort=True):
        ks = set(int(k) for k in g["k"])
        for cell, c in g.groupby("cell", sort=True):
            out += [(cell, bench, metric, k) for k in sorted(ks - set(int(k) for k in c["k"]))]
    return pd.DataFrame(out, columns=list(GAP_COLUMNS))


def summary_table(metrics: pd.DataFrame, *, ks: list[int] | None = None, ci: str = "auto") -> pd.DataFrame:
    """Per-benchmark wide table: one row per (benchmark, model, algo, train_k, n, reward), one column per k.

    Cells are formatted "0.412 [0.380, 0.445]" (mean over seeds, 95% CI as in seed_mean). ks default to the powers
    of two present in the data (1, 2, 4, 8, ...). An empty input gives an empty frame.
    """
    keys = ["benchmark", "metric", "model", "algo", "train_k", "k_schedule", "n", "reward"]
    if metrics.empty:
        return pd.DataFrame(columns=keys)
    present = sorted(set(int(k) for k in metrics["k"]))
    if ks is None:
        ks = [k for k in present if k & (k - 1) == 0]
    sub = metrics[metrics["k"].isin(ks)]
    agg = seed_mean(sub, keys + ["k"], ci=ci)
    agg["cell_text"] = [
        f"{v:.3f}" if np.isnan(lo) else f"{v:.3f} [{lo:.3f}, {hi:.3f}]"
        for v, lo, hi in zip(agg["value"], agg["ci_low"], agg["ci_high"])
    ]
    seeds = agg.groupby(keys, dropna=False)["n_seeds"].max().rename("seeds")
    wide = agg.pivot_table(index=keys, columns="k", values="cell_text", aggfunc="first")
    wide.columns = [f"{agg['metric'].iloc[0].replace('@k', '')}@{int(k)}" for k in wide.columns]
    wide = wide.join(seeds).reset_index()
    return wide


def _latex_escape(s: str) -> str:
    return (str(s).replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("%", r"\%")
            .replace("&", r"\&").replace("#", r"\#").replace("~", r"\textasciitilde{}"))


def summary_latex(table: pd.DataFrame, caption: str) -> str:
    """A booktabs LaTeX rendering of summary_table's output, one tabular per benchmark."""
    if table.empty:
        return f"% {caption}: no data\n"
    kcols = [c for c in table.columns if "@" in c]
    out = []
    for bench, g in table.groupby("benchmark", sort=True):
        out.append("\\begin{table}[t]\n\\centering\\small")
        out.append(f"\\caption{{{_latex_escape(caption)} --- {_latex_escape(bench)}}}")
        out.append("\\begin{tabular}{l" + "r" * (3 + len(kcols)) + "}\n\\toprule")
        out.append(" & ".join(["model / algo", "$k_{train}$", "$n$", "seeds"] + [_latex_escape(c) for c in kcols])
                   + " \\\\\n\\midrule")
        for _, r in g.iterrows():
            cells = [_latex_escape(f"{r['model']} / {r['algo']}"), str(r["train_k"]), str(r["n"]), str(r["seeds"])]
            cells += [_latex_escape(r[c]) if isinstance(r[c], str) else "--" for c in kcols]
            out.append(" & ".join(cells) + " \\\\")
        out.append("\\bottomrule\n\\end{tabular}\n\\end{table}\n")
    return "\n".join(out)


# ----------------------------------------------------------------------------------------------------------------------
# driver


def aggregate(eval_root: Path | None, train_root: Path | None, out_dir: Path, *, ci: str = "auto") -> dict:
    """Write passk.csv, maxk.csv, train_curves.csv, gaps.csv and the summaries into out_dir; return row counts.

    Either root may be None (then its tables are written empty with their header, so the downstream figures still
    build and report their missing cells).
    """
    out_dir = Path(out_dir)
    if ci not in CI_CHOICES:
        raise ValueError(f"ci={ci!r}; expected 'auto', 'metrics' or 'seeds'")
    metrics = read_metrics(eval_root) if eval_root is not None else pd.DataFrame(
        columns=list(CELL_COLUMNS) + list(METRIC_COLUMNS))
    curves = read_train_logs(train_root) if train_root is not None else pd.DataFrame(columns=list(TRAIN_COLUMNS))
    unknown = set(metrics["metric"]) - set(METRIC_FILES) if not metrics.empty else set()
    if unknown:
        raise ValueError(f"unknown metric names {sorted(unknown)}; expected {sorted(METRIC_FILES)}")
    counts = {}
    gaps = metric_gaps(metrics)
    for r in gaps.itertuples(index=False):
        log.warning("%s [%s]: %s at k=%d is missing (other cells of the benchmark have it: fewer samples for some "
                    "problem?)", r.cell, r.benchmark, r.metric, r.k)
    write_csv_atomic(gaps, out_dir / GAPS_FILE)
    counts[GAPS_FILE] = len(gaps)
    for metric, fname in METRIC_FILES.items():
        sub = metrics[metrics["metric"] == metric] if not metrics.empty else metrics
        write_csv_atomic(sub, out_dir / fname)
        counts[fname] = len(sub)
        table = summary_table(sub, ci=ci)
        stem = fname.replace(".csv", "_summary")
        write_csv_atomic(table, out_dir / f"{stem}.csv")
        write_text_atomic(out_dir / f"{stem}.tex",
                           summary_latex(table, f"{metric.replace('@k', '@$k$')}: mean over seeds, 95\\% CI"))
        counts[f"{stem}.csv"] = len(table)
    write_csv_atomic(curves, out_dir / TRAIN_FILE)
    counts[TRAIN_FILE] = len(curves)
    log.info("wrote %s", counts)
    return counts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m analysis.aggregate", description=__doc__.split("\n\n")[0])
    p.add_argument("--eval-root", type=Path, default=None, help="results/eval (cells/benchmark/metrics.csv)")
    p.add_argument("--train-root", type=Path, default=None, help="results/train (cells/train_log.jsonl)")
    p.add_argument("--out-dir", type=Path, required=True, help="where passk.csv, maxk.csv, train_curves.csv go")
    p.add_argument("--ci", default="auto", choices=["auto", "metrics", "seeds"],
                   help="interval of the seed mean in the summary tables")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    counts = aggregate(args.eval_root, args.train_root, args.out_dir, ci=args.ci)
    print(json.dumps(counts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
