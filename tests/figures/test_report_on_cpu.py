"""analysis.report: one self-contained page with every figure embedded and the tables."""

from __future__ import annotations

import base64
import re

from analysis.figures import FIGURES
from analysis.report import main, render


def test_report_contains_every_figure_and_table(built, synthetic_results, tmp_path):
    fig_dir, sidecars = built
    out = tmp_path / "report.html"
    assert main(["--figures", str(fig_dir), "--tables", str(synthetic_results / "tables"), "--out", str(out),
                 "--config", str(synthetic_results / "config.yaml")]) == 0
    page = out.read_text()
    imgs = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([^"]+)"', page)
    assert [name for name, _ in imgs] == list(FIGURES)  # every figure, in registry order
    for name, b64 in imgs:
        assert base64.b64decode(b64) == (fig_dir / f"{name}.png").read_bytes()
    for name, spec in FIGURES.items():
        assert spec["caption"].replace("'", "&#x27;")[:40] in page
    assert "Pass@k per benchmark" in page and "Max@k per benchmark" in page and "last logged step" in page
    assert "pass@4" in page and "<table" in page
    assert "src=\"http" not in page and "<script" not in page  # self-contained
    assert "0 with missing cells" in page
    assert page.index('id="claims"') < page.index("<h2>Figures</h2>")  # the verdicts first
    for i in range(1, 11):
        assert f"<td>C{i}</td>" in page
    assert "gaps.csv" not in page  # the complete fixture has no gaps


def test_report_lists_missing_cells_and_unbuilt_figures(tmp_path):
    import json

    figs = tmp_path / "figs"
    figs.mkdir()
    (figs / "fig06_passk_main.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (figs / "fig06_passk_main.json").write_text(json.dumps({
        "caption": "cap", "missing_cells": ["model~m/algo~pg/k~1/n~8/reward~pass/seed~0 [aime24]"]}))
    page = render(figs, tmp_path / "no_tables")
    assert "1 missing cell(s)" in page and "model~m/algo~pg/k~1/n~8/reward~pass/seed~0 [aime24]" in page
    assert page.count("not built") == len(FIGURES) - 1
    assert "no tables found" in page and "no claims.csv" in page
