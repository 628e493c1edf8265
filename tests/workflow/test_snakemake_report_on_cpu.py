"""Snakemake's own report (`snakemake --report report.html` / `report.zip`) of a finished micro run.

The micro config (tests/workflow/micro/config.yaml) runs through the whole DAG once (a few minutes on 2 cores; set
RSPO_MICRO_WORKDIR to the folder of a finished micro run to reuse it), then the real `snakemake --report` writes the
HTML and the zip report. Read back as the report's own page reads them (the JSON objects `results`, `categories` and
`workflow_desc` embedded in report.html), every figure of analysis.figures (PNG and PDF), every table of results/tables
and the claims table must be an item with its caption, its bytes those of the file on disk.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import subprocess
import zipfile
from pathlib import Path

import pytest
from wf_helpers import REPO, snakemake_cmd


# reference, written here: each table the report must carry -> (category, a phrase its caption must contain)
TABLES = {
    "passk.csv": ("Tables", "Pass@k of every evaluated cell"),
    "maxk.csv": ("Tables", "Max@k of every evaluated cell"),
    "passk_summary.csv": ("Tables", "Pass@k summary"),
    "maxk_summary.csv": ("Tables", "Max@k summary"),
    "train_curves.csv": ("Tables", "Training curves"),
    "gaps.csv": ("Tables", "Gaps"),
    "claims.csv": ("Claims", "one row per claim C1–C10 of the paper's §5"),
    "paired.csv": ("Claims", "each seed's two values"),
    "base_models.csv": ("Tables", "Starting points of RL"),
}
FIGURE_KINDS = {"tables": "From the runs", "analytic": "Analytic", "bandit": "Toy policy lab"}
BANDS = "mean over seeds of each method"  # the statistics sentence of a figure drawn from the runs


@pytest.fixture(scope="module")
def micro_run(request) -> Path:
    """The folder of a finished micro run: RSPO_MICRO_WORKDIR if set, else the suite's one end-to-end micro run
    (conftest's micro_run_killed_and_resumed, shared with test_e2e_micro_on_cpu)."""
    given = os.environ.get("RSPO_MICRO_WORKDIR")
    if given:
        return Path(given)
    return request.getfixturevalue("micro_run_killed_and_resumed")[0]


def _make_report(wd: Path, out: Path) -> None:
    run = subprocess.run(snakemake_cmd(wd, "--report", str(out)), cwd=REPO, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert out.stat().st_size > 0


def _embedded(page: str, name: str):
    """The JSON value (object or string) of `var NAME = ...;` in the report page, one line as Snakemake's template
    writes it (the page's bundled scripts have other `var results = ...` lines, not JSON)."""
    m = re.search(rf"^\s*var {name} = ([{{\"].*);\s*$", page, flags=re.MULTILINE)
    assert m, f"no `var {name}` in the report"
    return json.loads(m.group(1))


def _text(caption_html: str) -> str:
    """A caption's HTML as plain text: tags removed, entities decoded, whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", caption_html)).split())


def _plain(text: str) -> str:
    return " ".join(text.split())


def _check_items(wd: Path, page: str, read_item) -> None:
    """Every figure (PNG, PDF) and table is an item of the page with its caption; read_item(path, item) -> bytes."""
    from analysis.figures import FIGURES

    results = _embedded(page, "results")
    categories = _embedded(page, "categories")
    res = wd / "results"
    by_name = {Path(p).name: (p, item) for p, item in results.items()}

    for name, spec in FIGURES.items():
        for ext in ("png", "pdf"):
            path, item = by_name[f"{name}.{ext}"]
            assert path in categories["Figures"][FIGURE_KINDS[spec["needs"]]], (name, ext)
            caption = _text(item["caption"])
            assert _plain(spec["caption"]) in caption, (name, caption)
            if spec["paper_figure"]:
                assert f"reproduces Figure {spec['paper_figure']} of the RSPO paper" in caption, caption
                assert item["labels"]["paper figure"] == f"Fig. {spec['paper_figure']}"
            else:
                assert "beyond the paper" in caption, caption
            assert (BANDS in caption) == (spec["needs"] == "tables"), caption
            assert item["labels"]["format"] == ext.upper()
            assert read_item(path, item) == (res / "figures" / f"{name}.{ext}").read_bytes(), (name, ext)

    for table, (category, phrase) in TABLES.items():
        path, item = by_name[table]
        assert any(path in paths for paths in categories[category].values()), table
        assert phrase in _text(item["caption"]), (table, item["caption"])
        assert item["labels"]["table"] == table
        assert read_item(path, item) == (res / "tables" / table).read_bytes(), table

    # nothing else is an item; the workflow description names the run's families
    assert set(by_name) == {f"{n}.{e}" for n in FIGURES for e in ("png", "pdf")} | set(TABLES)
    desc = _text(_embedded(page, "workflow_desc"))
    assert "rspo-bench" in desc and "Experiment families of this run: main" in desc, desc


def test_html_report_embeds_every_figure_and_table_with_its_caption(micro_run, tmp_path):
    out = tmp_path / "report.html"
    _make_report(micro_run, out)

    def embedded_bytes(path, item):
        head, data = item["data_uri"].split(",", 1)
        assert head.endswith(";base64"), head
        return base64.b64decode(data)

    _check_items(micro_run, out.read_text(encoding="utf-8"), embedded_bytes)
    # the project's own one-page report is still built by the DAG
    assert (micro_run / "results" / "report.html").stat().st_size > 0


def test_zip_report_stores_every_figure_and_table_with_its_caption(micro_run, tmp_path):
    out = tmp_path / "report.zip"
    _make_report(micro_run, out)
    with zipfile.ZipFile(out) as z:
        names = set(z.namelist())
        assert "report/report.html" in names, sorted(names)[:10]
        page = z.read("report/report.html").decode("utf-8")

        def stored_bytes(path, item):
            member = f"report/{item['data_uri']}"
            assert member in names, member
            return z.read(member)

        _check_items(micro_run, page, stored_bytes)
