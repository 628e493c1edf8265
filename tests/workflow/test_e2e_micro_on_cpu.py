"""The ONE real end-to-end run: the micro config (tests/workflow/micro/config.yaml) through the whole DAG.

1. start `snakemake` on one training cell, SIGKILL the whole process group as soon as the trainer has written its
   first checkpoint (a crash in the middle of training: no clean-up by Snakemake);
2. `snakemake --unlock`, then `snakemake --cores 2` (default target): the interrupted cell is rerun because the
   default profile sets rerun-incomplete, RESUMES from its undeclared checkpoint, and the run finishes with every
   figure of analysis.figures, the tables and the report.

Real modules, real processes, no mocks: a few minutes on 2 idle cores.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from wf_helpers import REPO, snakemake_cmd

CELL = "model~tiny/algo~rspo_pass/k~2/n~4/reward~pass/seed~0"
STEPS = 20  # micro config train.args.steps


def _checkpoints(wd: Path) -> list[Path]:
    ckpt = wd / "results" / "ckpt" / CELL
    return sorted(p for p in ckpt.glob("step_*") if p.is_dir()) if ckpt.is_dir() else []


@pytest.mark.timeout(1200)
def test_micro_run_killed_mid_training_resumes_and_builds_every_figure(tmp_path):
    wd = tmp_path / "wd"
    wd.mkdir()
    train_log = wd / "results" / "train" / CELL / "train_log.jsonl"

    # --- 1. run until the first checkpoint of the cell, then kill everything (SIGKILL: no clean-up) ----------------
    with open(tmp_path / "run1.log", "w") as out:
        proc = subprocess.Popen(snakemake_cmd(wd, str(train_log.relative_to(wd))), cwd=REPO, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 900
        try:
            while not _checkpoints(wd):
                assert proc.poll() is None, (tmp_path / "run1.log").read_text()[-3000:]
                assert time.time() < deadline, "no checkpoint written in time"
                time.sleep(0.05)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    killed_at = [int(p.name.split("_")[1]) for p in _checkpoints(wd)]
    assert killed_at and max(killed_at) < STEPS, f"killed too late: checkpoints {killed_at}"
    assert not train_log.exists()

    # --- 2. unlock, rerun everything ------------------------------------------------------------------------------
    subprocess.run(snakemake_cmd(wd, "--unlock"), cwd=REPO, check=True, capture_output=True)
    run2 = subprocess.run(snakemake_cmd(wd), cwd=REPO, capture_output=True, text=True)
    assert run2.returncode == 0, run2.stdout[-4000:] + run2.stderr[-4000:]

    # the killed cell resumed from its checkpoint instead of starting over, and its log has every step once
    train_stdout = (wd / "results" / "logs" / "train" / f"{CELL}.log").read_text()
    assert f"(step {max(killed_at)})" in train_stdout and "resumed from" in train_stdout, train_stdout[-2000:]
    steps = [json.loads(line)["step"] for line in train_log.read_text().splitlines() if line.strip()]
    assert steps == list(range(1, STEPS + 1)), steps

    # every figure analysis.figures knows, with its PNG and sidecar; the tables; the report
    from analysis.figures import FIGURES

    figures = wd / "results" / "figures"
    for name in FIGURES:
        if FIGURES[name]["needs"] == "bandit":
            continue
        for ext in ("pdf", "png", "json"):
            assert (figures / f"{name}.{ext}").stat().st_size > 0, f"{name}.{ext}"
    for table in ("passk.csv", "maxk.csv", "train_curves.csv"):
        assert (wd / "results" / "tables" / table).stat().st_size > 0
    import pandas as pd

    passk = pd.read_csv(wd / "results" / "tables" / "passk.csv")
    assert set(passk["algo"]) == {"base", "pg", "rspo_pass"}
    assert set(passk["k"]) == {1, 2, 4}
    assert (wd / "results" / "report.html").stat().st_size > 0

    # a second run has nothing to do
    dry = subprocess.run(snakemake_cmd(wd, "-n"), cwd=REPO, capture_output=True, text=True)
    assert "Nothing to be done" in dry.stdout + dry.stderr, dry.stdout[-2000:]
