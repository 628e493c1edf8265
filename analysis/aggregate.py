"""Collect every cell's evaluation metrics and training logs into tidy tables.

Inputs (the layout written by the workflow, docs/interfaces.md):

    {eval_root}/{cell}/{benchmark}/metrics.csv    columns METRIC_COLUMNS, metric in {"pass@k", "max@k"}
    {train_root}/{cell}/train_log.jsonl           one JSON object per training step

where ``cell = model~M/algo~A/k~K/n~N/reward~R/seed~S`` (the base model is ``algo~base/k~1/n~1/reward~pass/seed~0``).

Outputs, each written atomically (temp file + os.replace) into ``out_dir``:

    passk.csv         one row per (cell, benchmark, k) for metric pass@k
    maxk.csv          the same for max@k
    train_curves.csv  one row per (cell, step)
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
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from rspo_core.atomic import write_text_atomic

log = logging.getLogger("analysis.aggregate")

CELL_KEYS = ("model", "algo", "train_k", "k_schedule", "n", "reward", "seed")
CELL_COLUMNS = ("cell",) + CELL_KEYS
METRIC_COLUMNS = ("benchmark", "metric", "k", "value", "ci_low", "ci_high", "n_problems", "n_samples", "grader_version")
TRAIN_LOG_FIELDS = (
    "step", "k", "reward_mean", "pass_rate", "entropy", "weight_mean", "weight_std", "weight_min", "weight_max",
    "frac_zero_weight", "tokens_per_s", "wall_time",
)
METRIC_FILES = {"pass@k": "passk.csv", "max@k": "maxk.csv"}
TRAIN_FILE = "train_curves.csv"

# the same grammar as workflow/lib/cells.py: a k schedule other than constant is written "k~8-linear"
_CELL_RE = re.compile(
    r"^model~(?P<model>[^/~]+)/algo~(?P<algo>[^/~]+)/k~(?P<train_k>\d+)(?:-(?P<k_schedule>[a-z]+))?"
    r"/n~(?P<n>\d+)/reward~(?P<reward>[^/~]+)/seed~(?P<seed>\d+)$"
)


# ----------------------------------------------------------------------------------------------------------------------
# cells


def parse_cell(cell: str) -> dict:
    """'model~M/algo~A/k~4/n~16/reward~pass/seed~0' -> {cell, model, algo, train_k: 4, k_schedule: "constant",
    n: 16, reward, seed: 0}; 'k~8-linear' gives train_k 8, k_schedule "linear".

    Raises ValueError naming the string and the expected pattern when it does not match.
    """
    cell = str(cell).strip("/").replace(os.sep, "/")
    m = _CELL_RE.match(cell)
    if m is None:
        raise ValueError(
            f"cell path {cell!r} does not match 'model~M/algo~A/k~K/n~N/reward~R/seed~S' (K, N, S integers)"
        )
    d = m.groupdict()
    return {
        "cell": cell, "model": d["model"], "algo": d["algo"], "train_k": int(d["train_k"]),
        "k_schedule": d["k_schedule"] or "constant", "n": int(d["n"]),
        "reward": d["reward"], "seed": int(d["seed"]),
    }


def cell_path(model: str, algo: str, train_k: int, n: int, reward: str, seed: int,
              k_schedule: str = "constant") -> str:
    """Inverse of parse_cell: the cell's relative path."""
    k = f"{int(train_k)}" if k_schedule == "constant" else f"{int(train_k)}-{k_schedule}"
    return f"model~{model}/algo~{algo}/k~{k}/n~{int(n)}/reward~{reward}/seed~{int(seed)}"


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
            cell = parse_cell(cell_str)
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
            cell = parse_cell(rel)
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
    cols = list(CELL_COLUMNS) + ["step_k" if f == "k" else f for f in TRAIN_LOG_FIELDS]
    return pd.DataFrame(rows, columns=cols)


# ----------------------------------------------------------------------------------------------------------------------
# summaries


def _t_quantile(df: int) -> float:
    """0.975 quantile of Student's t with df degrees of freedom."""
    from scipy.stats import t

    return float(t.ppf(0.975, df))


def seed_mean(df: pd.DataFrame, by: list[str], *, ci: str = "auto",
              bounds: tuple[float, float] | None = (0.0, 1.0)) -> pd.DataFrame:
    """Mean over seeds of ``value`` with a 95% interval, one row per group of ``by``.

    ci = "metrics": mean of the per-seed bootstrap bounds (ci_low, ci_high) from analysis.metrics;
    ci = "seeds":   t-interval across seeds, mean +- t_{0.975, S-1} * sd / sqrt(S) (NaN for S = 1);
    ci = "auto":    "seeds" widened to at least the "metrics" interval when S >= 2, else "metrics".
    The interval is clipped to ``bounds`` (pass@k and max@k lie in [0, 1]; a t-interval over few seeds may not);
    None leaves it as computed. Output columns: by + [value, ci_low, ci_high, n_seeds, ci_method].
    """
    if ci not in ("auto", "metrics", "seeds"):
        raise ValueError(f"ci={ci!r}; expected 'auto', 'metrics' or 'seeds'")
    cols = list(by) + ["value", "ci_low", "ci_high", "n_seeds", "ci_method"]
    if df.empty:
        return pd.DataFrame(columns=cols)
    d = df.assign(_lo=pd.to_numeric(df.get("ci_low", np.nan), errors="coerce"),
                  _hi=pd.to_numeric(df.get("ci_high", np.nan), errors="coerce"),
                  _v=pd.to_numeric(df["value"], errors="coerce"))
    g = d.groupby(list(by), sort=True, dropna=False).agg(value=("_v", "mean"), sd=("_v", "std"), s=("_v", "size"),
                                                         m_lo=("_lo", "mean"), m_hi=("_hi", "mean")).reset_index()
    from scipy.stats import t as student_t

    s_ = g["s"].to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        tq = np.where(s_ >= 2, student_t.ppf(0.975, np.maximum(s_ - 1, 1)), np.nan)
        h = tq * g["sd"].to_numpy(float) / np.sqrt(s_)
    mean = g["value"].to_numpy(float)
    s_lo, s_hi = mean - h, mean + h
    m_lo, m_hi = g["m_lo"].to_numpy(float), g["m_hi"].to_numpy(float)
    if ci == "metrics":
        lo, hi = m_lo, m_hi
        method = np.full(len(g), "bootstrap (metrics)", dtype=object)
    elif ci == "seeds":
        lo, hi = s_lo, s_hi
        method = np.full(len(g), "t across seeds", dtype=object)
    else:  # auto: the wider of the two where there are several seeds, else the bootstrap
        multi = s_ >= 2
        lo = np.where(multi, np.fmin(s_lo, m_lo), m_lo)
        hi = np.where(multi, np.fmax(s_hi, m_hi), m_hi)
        method = np.where(multi, "max(t across seeds, bootstrap)", "bootstrap (metrics)").astype(object)
    if bounds is not None:
        lo, hi = np.clip(lo, *bounds), np.clip(hi, *bounds)
    out = g[list(by)].copy()
    out["value"], out["ci_low"], out["ci_high"] = mean, lo, hi
    out["n_seeds"], out["ci_method"] = s_.astype(int), method
    return out[cols]


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
    """Write passk.csv, maxk.csv, train_curves.csv and the summaries into out_dir; return row counts per file.

    Either root may be None (then its tables are written empty with their header, so the downstream figures still
    build and report their missing cells).
    """
    out_dir = Path(out_dir)
    if ci not in ("auto", "metrics", "seeds"):
        raise ValueError(f"ci={ci!r}; expected 'auto', 'metrics' or 'seeds'")
    metrics = read_metrics(eval_root) if eval_root is not None else pd.DataFrame(
        columns=list(CELL_COLUMNS) + list(METRIC_COLUMNS))
    curves = read_train_logs(train_root) if train_root is not None else pd.DataFrame(
        columns=list(CELL_COLUMNS) + ["step_k" if f == "k" else f for f in TRAIN_LOG_FIELDS])
    unknown = set(metrics["metric"]) - set(METRIC_FILES) if not metrics.empty else set()
    if unknown:
        raise ValueError(f"unknown metric names {sorted(unknown)}; expected {sorted(METRIC_FILES)}")
    counts = {}
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
