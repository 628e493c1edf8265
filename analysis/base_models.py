"""The starting points of RL: ``results/tables/base_models.csv`` from each pre-trained model's summary.

    python -m analysis.base_models --models results/models/tiny results/models/small \
        --out results/tables/base_models.csv

One row per model folder written by ``rspo_patch.pretrain`` (its ``pretrain_summary.json``): model (folder name),
parameters, steps (the step where pre-training stopped), stop_at_pass1 (its threshold, empty without one),
reached_threshold, heldout_pass1 (held-out pass@1 at T = 1 at that step), expect_low / expect_high (the documented
range, config ``pretrain_args.expect_pass1``), in_expected_range, seed, threads, cpu_capability (the vector code
ATen ran, e.g. AVX2: config ``cpu_isa``, rspo_core.cpu_math), wall_time_s. The report
shows it, so a start that differs from the documented one is visible next to the results it produced.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from analysis.aggregate import write_csv_atomic

BASE_MODEL_COLUMNS = ("model", "parameters", "steps", "stop_at_pass1", "reached_threshold", "heldout_pass1",
                      "expect_low", "expect_high", "in_expected_range", "seed", "threads", "cpu_capability",
                      "wall_time_s")


def base_model_row(model_dir: Path) -> dict:
    """The table row of one pre-trained model folder; ValueError naming the folder if it has no summary."""
    path = Path(model_dir) / "pretrain_summary.json"
    if not path.is_file():
        raise ValueError(f"{str(path)!r} does not exist: {model_dir} is not a folder written by rspo_patch.pretrain")
    s = json.loads(path.read_text())
    lo, hi = s.get("expect_pass1") or (None, None)
    return {"model": Path(model_dir).name, "parameters": s["parameters"], "steps": s["steps"],
            "stop_at_pass1": s.get("stop_at_pass1"), "reached_threshold": s.get("reached_threshold"),
            "heldout_pass1": s["heldout_pass@1"], "expect_low": lo, "expect_high": hi,
            "in_expected_range": s.get("in_expected_range"), "seed": s["seed"], "threads": s.get("threads"),
            "cpu_capability": (s.get("cpu_math") or {}).get("cpu_capability"),
            "wall_time_s": round(float(s["wall_time"]), 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m analysis.base_models", description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", type=Path, required=True, help="pre-trained model folders")
    p.add_argument("--out", type=Path, required=True, help="base_models.csv to write")
    a = p.parse_args(argv)
    try:
        rows = [base_model_row(m) for m in a.models]
    except ValueError as e:
        p.error(str(e))
    write_csv_atomic(pd.DataFrame(rows, columns=list(BASE_MODEL_COLUMNS)), a.out)
    print(json.dumps({r["model"]: r["heldout_pass1"] for r in rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
