"""pytest setup of the figure tests: this folder on sys.path (fig_fixtures), session-wide synthetic results."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from fig_fixtures import make_results  # noqa: E402


@pytest.fixture(scope="session")
def synthetic_results(tmp_path_factory):
    """A full synthetic results tree (eval + train + config.yaml + cells.json) aggregated into tables/ (with the
    claims table)."""
    from analysis.aggregate import aggregate
    from analysis.claims import main as claims_main

    root = make_results(tmp_path_factory.mktemp("results"))
    aggregate(root / "eval", root / "train", root / "tables")
    claims_main(["--tables", str(root / "tables"), "--cells", str(root / "cells.json"),
                 "--out", str(root / "tables" / "claims.csv")])
    return root


@pytest.fixture(scope="session")
def bandit_json(tmp_path_factory):
    """The toy policy lab JSON from the real rspo_patch.bandit (small settings), or None where it is absent."""
    try:
        from fig_fixtures import run_bandit
    except ImportError:
        return None
    return run_bandit(tmp_path_factory.mktemp("bandit") / "bandit.json")


@pytest.fixture(scope="session")
def built(synthetic_results, tmp_path_factory, bandit_json):
    """Build every figure once into one folder (low PNG dpi to keep the suite fast)."""
    from analysis.figures import FIGURES, FigureContext, run_figure

    out = tmp_path_factory.mktemp("figures")
    ctx = FigureContext(out_dir=out, tables_dir=synthetic_results / "tables", bandit_path=bandit_json,
                        cells_path=synthetic_results / "cells.json", png_dpi=60)
    sidecars = {name: run_figure(name, ctx) for name in FIGURES}
    return out, sidecars
