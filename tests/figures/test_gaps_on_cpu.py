"""Issue 13 item 4: a problem with fewer samples than the others is an error in scoring (given the expected n), and
otherwise a visible gap in the tables (gaps.csv), the figure (footnote) and its sidecar (missing_cells)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from fig_fixtures import make_results

from analysis.aggregate import aggregate
from analysis.figures import FigureContext, run_figure
from analysis.metrics import score, score_rows

N, PROBLEMS, KS = 8, 10, [1, 2, 4, 8]
CONFIG = {"families": {"main": {"model": "m", "n": N, "reward": "pass", "seed": 0, "base": False,
                                "grid": [{"algo": "pg"}, {"algo": "rspo_pass", "k": 4}], "benchmarks": ["toy"]}}}
PG = "model~m/algo~pg/k~1/n~8/reward~pass/seed~0"
RSPO = "model~m/algo~rspo_pass/k~4/n~8/reward~pass/seed~0"


def _verified(seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"benchmark": "toy", "problem_id": f"p{p}", "sample_idx": i, "correct": bool(c), "reward_max": float(c),
             "grader_version": "g"}
            for p in range(PROBLEMS) for i, c in enumerate(rng.random(N) < 0.2)]


def _write(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_short_problem_is_an_error_when_n_is_known(tmp_path):
    rows = _verified(0)
    del rows[3 * N + 5]  # one line of problem p3 lost
    with pytest.raises(ValueError, match=r"problem 'p3' has 7 samples, expected 8"):
        score_rows(rows, ks=KS, n_boot=0, n_expected=N)
    _write(tmp_path / "v.jsonl", rows)
    with pytest.raises(ValueError, match="expected 8"):
        score(tmp_path / "v.jsonl", tmp_path / "m.json", tmp_path / "m.csv", ks=KS, n_boot=0, n_expected=N)
    assert not (tmp_path / "m.csv").exists()  # nothing half-written
    score_rows(_verified(0), ks=KS, n_boot=0, n_expected=N)  # complete: fine


def test_lost_line_is_a_visible_gap_in_table_figure_and_sidecar(tmp_path):
    root = make_results(tmp_path / "r", CONFIG, drop={PG, RSPO})  # no synthetic cells: only config + manifest
    for cell, seed in ((PG, 1), (RSPO, 2)):
        rows = _verified(seed)
        if cell == RSPO:
            del rows[3 * N + 5]  # p3 has 7 samples: k = 8 can no longer be scored for this cell
        _write(root / "verified" / cell / "verified.jsonl", rows)
        d = root / "eval" / cell / "toy"
        d.mkdir(parents=True)
        score(root / "verified" / cell / "verified.jsonl", d / "metrics.json", d / "metrics.csv", ks=KS, n_boot=20)
    (root / "train").mkdir()
    counts = aggregate(root / "eval", root / "train", root / "tables")
    passk = pd.read_csv(root / "tables/passk.csv")
    assert sorted(passk.loc[passk["cell"] == RSPO, "k"]) == [1, 2, 4]  # the scorer dropped k = 8 ...
    gaps = pd.read_csv(root / "tables/gaps.csv")  # ... and the tables say so
    assert counts["gaps.csv"] == 2
    assert gaps.to_dict("records") == [{"cell": RSPO, "benchmark": "toy", "metric": "max@k", "k": 8},
                                       {"cell": RSPO, "benchmark": "toy", "metric": "pass@k", "k": 8}]
    ctx = FigureContext(out_dir=tmp_path / "f", tables_dir=root / "tables", cells_path=root / "cells.json",
                        png_dpi=40)
    side = run_figure("fig06_passk_main", ctx)
    assert side["missing_cells"] == [f"{RSPO} [toy] k=8"]
    assert sorted(side["cells_used"]) == [PG, RSPO]
