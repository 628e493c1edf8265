"""Every registered figure builds (PDF + PNG + sidecar) from synthetic results; missing cells are reported."""

from __future__ import annotations

import json

import pytest

from analysis.figures import FIGURES, FigureContext, run_figure
from analysis.figures.__main__ import main as figures_main
from analysis.figures.colors import method_color, style_for

TABLE_FIGS = [n for n, s in FIGURES.items() if s["needs"] == "tables"]


def test_registry_shape():
    assert {f"fig{i:02d}" for i in range(1, 13)} <= {n[:5] for n in FIGURES}
    for name, spec in FIGURES.items():
        assert spec["needs"] in ("analytic", "tables", "bandit")
        assert callable(spec["function"]) and spec["caption"]
        assert spec["outputs"] == [f"{name}.pdf", f"{name}.png", f"{name}.json"]
    assert all(FIGURES[f"fig0{i}" + n[5:]]["needs"] == "analytic" for i in range(1, 6)
               for n in FIGURES if n.startswith(f"fig0{i}"))


def test_every_figure_builds(built):
    out, sidecars = built
    for name in FIGURES:
        pdf, png = out / f"{name}.pdf", out / f"{name}.png"
        assert pdf.read_bytes()[:5] == b"%PDF-", name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        side = json.loads((out / f"{name}.json").read_text())
        assert side["figure"] == name and side["needs"] == FIGURES[name]["needs"]
        assert isinstance(side["missing_cells"], list)


def test_complete_fixture_has_no_missing_cells(built):
    _, sidecars = built
    for name in TABLE_FIGS:
        assert sidecars[name]["missing_cells"] == [], name
        assert sidecars[name]["cells_used"], name
        assert sidecars[name]["source"].startswith("manifest family"), name


def test_table_figures_plot_what_the_tables_say(built, synthetic_results):
    import pandas as pd

    _, sidecars = built
    passk = pd.read_csv(synthetic_results / "tables/passk.csv")
    side = sidecars["fig06_passk_main"]
    assert side["grader_versions"] == ["test-grader-1"]
    v = next(x for x in side["values"] if x["algo"] == "rspo_pass" and x["train_k"] == 4 and x["k"] == 8
             and x["benchmark"] == "aime24")
    rows = passk[(passk["model"] == "tiny") & (passk["algo"] == "rspo_pass") & (passk["train_k"] == 4)
                 & (passk["n"] == 8) & (passk["k"] == 8) & (passk["benchmark"] == "aime24")
                 & (passk["k_schedule"] == "constant")]
    assert v["n_seeds"] == 2 and v["value"] == pytest.approx(rows["value"].mean())
    assert {x["n"] for x in sidecars["fig08_nscale"]["values"] if x["algo"] != "base"} == {4, 8, 16}
    assert {x["benchmark"] for x in sidecars["fig10_contamination"]["values"]} == {"aime25"}
    assert {x["algo"] for x in sidecars["fig12_grpo"]["values"]} == {"base", "pg", "grpo"}
    assert {x["algo"] for x in sidecars["fig11_maxk"]["values"]} == {"base", "pg", "baseline", "rspo_max"}
    assert all(x["k"] == x["train_k"] for x in sidecars["fig13_peers_matched_k"]["values"]
               if x["algo"] not in ("pg", "grpo", "base"))


def test_missing_cells_are_listed_and_figures_still_build(tmp_path):
    from analysis.aggregate import aggregate
    from fig_fixtures import CONFIG, make_results

    gone = "model~tiny/algo~baseline/k~8/n~8/reward~pass/seed~1"
    root = make_results(tmp_path / "r", drop={gone, "model~big7b/algo~pg/k~1/n~8/reward~pass/seed~0",
                                              "model~big7b/algo~rspo_pass/k~4/n~8/reward~pass/seed~0",
                                              "model~big7b/algo~base/k~1/n~1/reward~pass/seed~0"})
    aggregate(root / "eval", root / "train", root / "tables")
    ctx = FigureContext(out_dir=tmp_path / "f", tables_dir=root / "tables", cells_path=root / "cells.json",
                        png_dpi=40)
    main = run_figure("fig06_passk_main", ctx)
    assert main["missing_cells"] == [f"{gone} [aime24]", f"{gone} [math500]"]
    assert gone not in main["cells_used"]
    big = run_figure("fig09_7b", ctx)  # every cell of the family missing: an annotated placeholder
    assert len(big["missing_cells"]) == 3 and big["cells_used"] == [] and big["values"] == []
    ent = run_figure("fig07_entropy", ctx)
    assert ent["missing_cells"] == [gone]
    assert (tmp_path / "f/fig09_7b.pdf").is_file()
    assert CONFIG["families"]["main"]["seed"] == [0, 1]


def test_no_tables_no_manifest(tmp_path, synthetic_results):
    """Empty tables (nothing evaluated yet): every table figure is a placeholder that claims nothing; without the
    manifest nothing is guessed from the tables."""
    (tmp_path / "t").mkdir()
    side = run_figure("fig06_passk_main", FigureContext(out_dir=tmp_path / "f", tables_dir=tmp_path / "t",
                                                        png_dpi=40))
    assert side["values"] == [] and side["cells_used"] == [] and side["source"].startswith("no cell manifest")
    assert side["inputs"][str(tmp_path / "t/passk.csv")] == {"missing": True}
    full = FigureContext(out_dir=tmp_path / "g", tables_dir=synthetic_results / "tables", png_dpi=40)
    side = run_figure("fig06_passk_main", full)  # full tables, no manifest: still nothing drawn
    assert side["values"] == [] and side["cells_used"] == [] and side["source"].startswith("no cell manifest")
    empty = FigureContext(out_dir=tmp_path / "h", tables_dir=tmp_path / "t", png_dpi=40,
                          cells_path=synthetic_results / "cells.json")
    side = run_figure("fig06_passk_main", empty)  # manifest, no rows: every expected cell is missing
    assert side["values"] == [] and len(side["missing_cells"]) == 15 * 2  # base, pg x 2 seeds, (baseline, rspo_pass)
    # x k in {2, 4, 8} x 2 seeds: 15 cells, on 2 benchmarks


def test_cli_only_and_errors(synthetic_results, tmp_path):
    assert figures_main(["--tables", str(synthetic_results / "tables"), "--out", str(tmp_path),
                         "--cells", str(synthetic_results / "cells.json"), "--only", "fig12_grpo"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig12_grpo.json", "fig12_grpo.pdf", "fig12_grpo.png"]
    assert json.loads((tmp_path / "fig12_grpo.json").read_text())["source"] == "manifest family 'grpo'"
    with pytest.raises(SystemExit):  # a tables figure needs the manifest too
        figures_main(["--tables", str(synthetic_results / "tables"), "--out", str(tmp_path), "--only", "fig12_grpo"])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"families": {"main": {"cells": ["model~m/algo~pg/k~1/n~8/reward~pass/seed~0"],
                                                      "benchmarks": ["x"]}}, "version": 2}))
    with pytest.raises(SystemExit):  # cells as bare paths (the old layout): one line, before any figure
        figures_main(["--tables", str(synthetic_results / "tables"), "--out", str(tmp_path), "--cells", str(bad),
                      "--only", "fig12_grpo"])
    with pytest.raises(SystemExit):
        figures_main(["--out", str(tmp_path), "--only", "fig99_nope"])
    with pytest.raises(SystemExit):
        figures_main(["--out", str(tmp_path), "--only", "fig06_passk_main"])  # needs --tables


def test_colour_map_conventions():
    assert style_for("pg")["color"] == (0.0, 0.0, 0.0) and style_for("pg")["linestyle"] != "-"
    r2, r8 = method_color("rspo_pass", 2), method_color("rspo_pass", 8)
    b2, b8 = method_color("baseline", 2), method_color("baseline", 8)
    assert r2[0] > r2[2] and b2[2] > b2[0]  # reds and blues
    assert sum(r8) < sum(r2) and sum(b8) < sum(b2)  # darker as k grows
    assert style_for("rspo_pass", 8)["linewidth"] > style_for("rspo_pass", 2)["linewidth"]
    base = method_color("base")
    assert base[0] == base[1] == base[2]  # grey
    peers = {method_color(a, 4) for a in ("grpo", "pkpo_s", "pkpo_sloo", "passk_chen", "grpo_passk", "rs_grpo",
                                          "rspo_max")}
    assert len(peers) == 7 and r2 not in peers


def test_bandit_figures_read_the_lab_json(built, bandit_json):
    _, sidecars = built
    ev = sidecars["fig14_estimator_variance"]
    lab = json.loads(bandit_json.read_text())
    assert ev["k"] == lab["estimator_variance"]["k"]
    lab_rspo = lab["estimator_variance"]["binary"]["estimators"]["rspo_pass"]
    assert ev["values"]["binary/rspo_pass"]["mse"] == lab_rspo["mse"]
    assert ev["values"]["binary/rspo_pass"]["unbiased"] is True
    assert ev["values"]["binary/passk_chen"]["unbiased"] is False
    pl = sidecars["fig16_policy_lab"]
    assert pl["missing_inputs"] == [] and pl["quick"] is True
    assert set(pl["values"]) == {"figure1", "hitchhiking k=2", "hitchhiking k=4", "k_matching"}
    assert pl["values"]["figure1"]["k=2"]["final_exact"] < 0.5 < pl["values"]["figure1"]["k=1"]["final_exact"]


def test_bandit_figures_without_json(tmp_path):
    ctx = FigureContext(out_dir=tmp_path, bandit_path=tmp_path / "absent.json", png_dpi=40)
    side = run_figure("fig16_policy_lab", ctx)
    assert side["missing_inputs"] == ["figure1", "hitchhiking", "k_matching"] and side["values"] == {}
    assert side["inputs"] == {str(tmp_path / "absent.json"): {"missing": True}}


def test_manifest_without_the_family_draws_nothing(synthetic_results, tmp_path):
    """A manifest that does not plan an experiment gets a placeholder, not cells guessed from the tables."""
    from fig_fixtures import CONFIG

    from analysis.manifest import manifest_for_config, write_manifest

    cells = write_manifest(manifest_for_config({"families": {"main": CONFIG["families"]["main"]}}),
                           tmp_path / "cells.json")
    ctx = FigureContext(out_dir=tmp_path / "f", tables_dir=synthetic_results / "tables", cells_path=cells, png_dpi=40)
    side = run_figure("fig08_nscale", ctx)
    assert side["source"] == "the manifest has no family n_scaling / nscale"
    assert side["cells_used"] == [] and side["values"] == []
    ent = run_figure("fig07_entropy", ctx)
    assert ent["source"] == "manifest family 'main'" and ent["missing_cells"] == []


def test_every_sidecar_names_its_inputs(built, synthetic_results, bandit_json):
    """Tables are read once per context and cached; every figure's sidecar still lists what it read."""
    _, sidecars = built
    table_of = {"fig07_entropy": "train_curves.csv", "fig15_train_curves": "train_curves.csv", "fig11_maxk": "maxk.csv"}
    for name, spec in FIGURES.items():
        inputs = sidecars[name]["inputs"]
        if spec["needs"] == "tables":
            table = str(synthetic_results / "tables" / table_of.get(name, "passk.csv"))
            assert table in inputs and len(inputs[table]["sha256"]) == 64, name
        if spec["needs"] == "bandit":
            assert str(bandit_json) in inputs, name
        if spec["needs"] == "tables":
            assert len(inputs[str(synthetic_results / "cells.json")]["sha256"]) == 64, name


def test_registry_estimators_are_drawn(built, bandit_json):
    """Issue 14: fig14 draws every estimator the policy lab reports (the registry's applicable ones), MaxPO and PKPO
    s-loo among them when the registry has them; fig13 draws every peer of the manifest's peers family."""
    from fig_fixtures import PEERS_FROM_REGISTRY

    from rspo_patch.estimators import ESTIMATORS

    _, sidecars = built
    lab = json.loads(bandit_json.read_text())["estimator_variance"]
    drawn = set(sidecars["fig14_estimator_variance"]["values"])
    assert drawn == {f"{key}/{name}" for key in ("binary", "graded")
                     for name, row in lab[key]["estimators"].items() if row["n"]}
    for name in [n for n in ("maxpo", "pkpo_sloo") if n in ESTIMATORS]:
        assert f"graded/{name}" in drawn and f"binary/{name}" in drawn, name
    peers = {x["algo"] for x in sidecars["fig13_peers_matched_k"]["values"]}
    assert {"rspo_pass", "pkpo_sloo", *PEERS_FROM_REGISTRY} <= peers
    assert "maxpo" in PEERS_FROM_REGISTRY or "maxpo" not in ESTIMATORS
    assert len({style_for(a, 4)["color"] for a in peers}) == len(peers)  # each method its own colour
