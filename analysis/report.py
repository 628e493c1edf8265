"""One self-contained HTML page with every figure (embedded PNG), its caption and sidecar facts, and the tables.

    python -m analysis.report --figures results/figures --tables results/tables --out results/report.html
                              [--config results/config.yaml]

Figures appear in the order of the analysis.figures registry (then any other PNG with a sidecar in the folder); a
registered figure that was not built is listed as such. Each figure shows its caption, the cells it lacks (from the
sidecar's ``missing_cells``), its CI method and grader versions. Tables: the claims of the paper's §5 with their
verdicts (claims.csv, analysis.claims, rule in docs/claims.md), evaluation points missing from the tables (gaps.csv),
the per-benchmark Pass@k / Max@k summaries (mean over seeds, 95% CI; written by analysis.aggregate) and the last
training step of every cell.
"""

from __future__ import annotations

import argparse
import base64
import datetime as _dt
import html
import json
import logging
from pathlib import Path

import pandas as pd

from rspo_core.atomic import write_text_atomic

log = logging.getLogger("analysis.report")

SUMMARY_TABLES = (("passk_summary.csv", "Pass@k per benchmark (mean over seeds, 95% CI)"),
                  ("maxk_summary.csv", "Max@k per benchmark (mean over seeds, 95% CI)"))
# shown when the run wrote them (else left out): the RL starting points (analysis.base_models) and the paired
# differences over seeds (analysis.paired)
OPTIONAL_TABLES = (("base_models.csv", "Starting points: the pre-trained models (held-out pass@1 at the start of RL)"),
                   ("paired.csv", "Paired differences over seeds (per-seed values, mean difference, 95% t-interval)"))
TRAIN_COLUMNS = ("reward_mean", "pass_rate", "entropy", "frac_zero_weight", "tokens_per_s", "wall_time")

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1200px;color:#222}
h1{font-size:1.6em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
figure{margin:1.5em 0;padding:1em;border:1px solid #eee;border-radius:6px}
figure img{max-width:100%;height:auto} figcaption{font-size:.92em;line-height:1.4}
.meta{color:#555;font-size:.85em} .missing{color:#b00020;font-size:.85em}
table{border-collapse:collapse;font-size:.8em;margin:.5em 0 1.5em} th,td{border:1px solid #ddd;padding:3px 6px}
th{background:#f5f5f5} tr:nth-child(even) td{background:#fafafa} nav a{margin-right:.8em}
code{background:#f3f3f3;padding:0 3px}
"""


def _registry_order() -> list[tuple[str, str]]:
    """(name, caption) of every registered figure, in registry order; [] if analysis.figures cannot be imported."""
    try:
        from analysis.figures import FIGURES
    except ImportError as e:  # the report still renders whatever PNGs exist
        log.warning("analysis.figures not importable (%s); using the figures folder only", e)
        return []
    return [(name, spec["caption"]) for name, spec in FIGURES.items()]


def collect_figures(fig_dir: Path) -> list[dict]:
    """One dict per figure: name, caption, png (bytes or None), sidecar (dict), built (bool).

    Registered figures first (in registry order), then unregistered PNGs found in fig_dir.
    """
    fig_dir = Path(fig_dir)
    if not fig_dir.is_dir():
        raise ValueError(f"figures folder {str(fig_dir)!r} is not a directory")
    entries, seen = [], set()
    registered = _registry_order()
    extra = sorted(p.stem for p in fig_dir.glob("*.png") if p.stem not in {n for n, _ in registered})
    for name, caption in registered + [(n, "") for n in extra]:
        seen.add(name)
        png, side = fig_dir / f"{name}.png", fig_dir / f"{name}.json"
        sidecar = json.loads(side.read_text()) if side.is_file() else {}
        entries.append({
            "name": name,
            "caption": sidecar.get("caption") or caption,
            "png": png.read_bytes() if png.is_file() else None,
            "pdf": (fig_dir / f"{name}.pdf").is_file(),
            "sidecar": sidecar,
            "built": png.is_file(),
        })
    return entries


def train_summary(tables_dir: Path) -> pd.DataFrame | None:
    """Last logged step of every trained cell (train_curves.csv), or None when the table is absent or empty."""
    path = Path(tables_dir) / "train_curves.csv"
    if not path.is_file():
        return None
    df = pd.read_csv(path)
    if df.empty:
        return None
    last = df.sort_values("step").groupby("cell", sort=True).tail(1)
    cols = ["model", "algo", "train_k", "k_schedule", "n", "reward", "seed", "step"] + \
        [c for c in TRAIN_COLUMNS if c in last.columns]
    return last[[c for c in cols if c in last.columns]].sort_values(["model", "algo", "train_k", "n", "seed"])


CLAIMS_RULE = ("Verdict rule (docs/claims.md, fixed before any result): a per-seed paired statistic, its 95% "
               "t-interval over seeds; reproduced if the interval lies above 0 (C10: inside [-0.05, 0.05]), not "
               "reproduced if it lies below 0 (C10: outside), inconclusive otherwise or with one seed, not run when "
               "the config has no cells for the claim. A family on several base models: one row per model and a "
               "pooled row (per training seed, the mean over models). mde: the smallest effect the seeds detect "
               "with 80% power.")


def claims_html(tables_dir: Path) -> str:
    """The claims section: claims.csv as a table (verdict, per-seed statistics, interval), or why it is absent."""
    path = Path(tables_dir) / "claims.csv"
    if not path.is_file():
        return ('<h2 id="claims">Claims of the paper</h2>'
                '<p class="missing">no claims.csv (python -m analysis.claims)</p>')
    df = pd.read_csv(path, keep_default_na=False, na_values=[""])
    ci = [("" if pd.isna(lo) else f"[{lo:+.4f}, {hi:+.4f}]") for lo, hi in zip(df["ci_low"], df["ci_high"])]
    extra = {col: df[col] for col in ("models", "mde") if col in df}  # claims.csv of before the base-model axis lacks them
    show = pd.DataFrame({"claim": df["claim"], "what": df["text"], "family": df["family"],
                         **({"models": extra["models"]} if "models" in extra else {}), "verdict": df["verdict"],
                         "mean": df["mean"], "95% CI": ci, **({"mde": extra["mde"]} if "mde" in extra else {}),
                         "seeds": df["n_seeds"], "per seed": df["per_seed"], "statistic": df["statistic"],
                         "note": df["note"]})
    counts = ", ".join(f"{n} {v}" for v, n in show["verdict"].value_counts().items())
    return (f'<h2 id="claims">Claims of the paper</h2><p>{html.escape(counts)}.</p>'
            f'<p class="meta">{html.escape(CLAIMS_RULE)}</p>'
            + show.to_html(index=False, escape=True, na_rep="", border=0, float_format=lambda x: f"{x:+.4f}"))


def gaps_html(tables_dir: Path) -> str:
    """Evaluation points a cell lacks although the other cells of its benchmark have them (gaps.csv), or ''."""
    path = Path(tables_dir) / "gaps.csv"
    if not path.is_file():
        return ""
    df = pd.read_csv(path)
    if df.empty:
        return ""
    return (f'<h3 id="gaps" class="missing">{len(df)} evaluation point(s) missing (gaps.csv): fewer samples for some '
            f"problem?</h3>" + df.to_html(index=False, escape=True, border=0))


def _figure_html(e: dict) -> str:
    name, side = e["name"], e["sidecar"]
    title = f"Figure {side['paper_figure']} of the paper" if side.get("paper_figure") else "Beyond the paper"
    if not e["built"]:
        return (f'<figure id="{html.escape(name)}"><h3>{html.escape(name)}</h3>'
                f'<p class="missing">not built (no {html.escape(name)}.png in the figures folder)</p>'
                f"<figcaption>{html.escape(e['caption'])}</figcaption></figure>")
    img = base64.b64encode(e["png"]).decode("ascii")
    facts = []
    if side.get("source"):
        facts.append(f"cells from {side['source']}")
    if side.get("cells_used"):
        facts.append(f"{len(side['cells_used'])} cells")
    if side.get("ci_methods"):
        facts.append("CI: " + ", ".join(side["ci_methods"]))
    if side.get("grader_versions"):
        facts.append("grader " + ", ".join(side["grader_versions"]))
    if side.get("smoothing"):
        facts.append(f"smoothing {side['smoothing']}")
    missing = side.get("missing_cells") or []
    miss_html = ""
    if missing:
        items = "".join(f"<li><code>{html.escape(m)}</code></li>" for m in missing[:50])
        more = f"<li>... and {len(missing) - 50} more</li>" if len(missing) > 50 else ""
        miss_html = (f'<details class="missing"><summary>{len(missing)} missing cell(s): this figure does not show '
                     f"them</summary><ul>{items}{more}</ul></details>")
    return (f'<figure id="{html.escape(name)}"><h3>{html.escape(name)} <span class="meta">({title}; '
            f'{"PDF beside it" if e["pdf"] else "no PDF"})</span></h3>'
            f'<img alt="{html.escape(name)}" src="data:image/png;base64,{img}">'
            f"<figcaption>{html.escape(e['caption'])}<div class=\"meta\">{html.escape('; '.join(facts))}</div>"
            f"{miss_html}</figcaption></figure>")


def _table_html(df: pd.DataFrame, title: str, anchor: str) -> str:
    return (f'<h3 id="{anchor}">{html.escape(title)}</h3>'
            + df.to_html(index=False, escape=True, na_rep="", border=0, float_format=lambda x: f"{x:.4g}"))


def render(fig_dir: Path, tables_dir: Path, *, config: Path | None = None) -> str:
    """The report page as a string (figures embedded as base64 PNG)."""
    figures = collect_figures(fig_dir)
    tables_dir = Path(tables_dir)
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>rspo-bench report</title>"
             f"<style>{CSS}</style></head><body>",
             "<h1>rspo-bench: RSPO reproduction report</h1>",
             f"<p class=\"meta\">Generated {_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds')}; "
             f"figures from <code>{html.escape(str(fig_dir))}</code>, tables from "
             f"<code>{html.escape(str(tables_dir))}</code>"
             + (f", config <code>{html.escape(str(config))}</code>" if config else "") + ".</p>"]
    built = sum(e["built"] for e in figures)
    n_missing = sum(bool(e["sidecar"].get("missing_cells")) for e in figures)
    parts.append(f"<p>{built} of {len(figures)} figures built; {n_missing} with missing cells.</p>")
    parts.append('<nav><a href="#claims">claims</a>' + "".join(
        f'<a href="#{html.escape(e["name"])}">{html.escape(e["name"])}</a>' for e in figures)
        + '<a href="#tables">tables</a></nav>')
    parts.append(claims_html(tables_dir))
    parts.append("<h2>Figures</h2>")
    parts += [_figure_html(e) for e in figures]
    parts.append('<h2 id="tables">Tables</h2>')
    parts.append(gaps_html(tables_dir))
    any_table = False
    tables = [(*t, False) for t in OPTIONAL_TABLES] + [(*t, True) for t in SUMMARY_TABLES]
    for fname, title, required in tables:  # a required table that is missing or empty says so
        path = tables_dir / fname
        df = pd.read_csv(path) if path.is_file() and path.stat().st_size else None
        if df is not None and not df.empty:
            parts.append(_table_html(df, title, fname.replace(".csv", "")))
            any_table = True
        elif required:
            parts.append(f"<h3>{html.escape(title)}</h3><p class=\"missing\">no rows ({html.escape(fname)} "
                         f"{'is empty' if path.is_file() else 'not found'})</p>")
    ts = train_summary(tables_dir)
    if ts is not None:
        parts.append(_table_html(ts, "Training: last logged step of every cell", "train_summary"))
        any_table = True
    if not any_table:
        parts.append("<p class=\"missing\">no tables found.</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(fig_dir: Path, tables_dir: Path, out: Path, *, config: Path | None = None) -> Path:
    """render() written atomically to out; returns out."""
    text = render(fig_dir, tables_dir, config=config)
    out = Path(out)
    write_text_atomic(out, text)
    log.info("wrote %s (%.1f kB)", out, len(text) / 1024)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m analysis.report", description="Build results/report.html.")
    p.add_argument("--figures", type=Path, required=True, help="folder with figNN_*.png and their .json sidecars")
    p.add_argument("--tables", type=Path, required=True, help="folder with the aggregate tables")
    p.add_argument("--out", type=Path, required=True, help="the HTML file to write")
    p.add_argument("--config", type=Path, default=None, help="the config the results came from (named in the page)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    write_report(args.figures, args.tables, args.out, config=args.config)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
