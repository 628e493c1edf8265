"""pytest setup of the workflow tests: this folder (wf_helpers) and workflow/lib (cells, checks) on sys.path."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
for p in (HERE, HERE.parents[1] / "workflow" / "lib"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from wf_helpers import (FAKE_SBATCH, FAKE_TOOL, MICRO_CELL, MICRO_STEPS, REPO, kill_when,  # noqa: E402
                        snakemake_cmd)


def _checkpoints(wd: Path) -> list[Path]:
    ckpt = wd / "results" / "ckpt" / MICRO_CELL
    return sorted(p for p in ckpt.glob("step_*") if p.is_dir()) if ckpt.is_dir() else []


@pytest.fixture(scope="session")
def micro_run_killed_and_resumed(tmp_path_factory) -> tuple[Path, list[int]]:
    """The ONE real end-to-end micro run of the suite, shared by test_e2e_micro_on_cpu (what it produced) and
    test_snakemake_report_on_cpu (Snakemake's report of it): (workdir, checkpoint steps present at the kill).

    1. `snakemake` on one training cell, SIGKILL of the whole process group as soon as the trainer has written its
       first checkpoint (a crash in the middle of training: no clean-up by Snakemake);
    2. `snakemake --unlock`, then `snakemake --cores 2` (default target) to the end."""
    import subprocess

    tmp = tmp_path_factory.mktemp("micro-e2e")
    wd = tmp / "wd"
    wd.mkdir()
    train_log = wd / "results" / "train" / MICRO_CELL / "train_log.jsonl"
    kill_when(snakemake_cmd(wd, str(train_log.relative_to(wd))), tmp / "run1.log", lambda: bool(_checkpoints(wd)),
              timeout=900, what="the cell's first checkpoint")
    killed_at = [int(p.name.split("_")[1]) for p in _checkpoints(wd)]
    assert killed_at and max(killed_at) < MICRO_STEPS, f"killed too late: checkpoints {killed_at}"
    assert not train_log.exists()
    subprocess.run(snakemake_cmd(wd, "--unlock"), cwd=REPO, check=True, capture_output=True)
    run2 = subprocess.run(snakemake_cmd(wd), cwd=REPO, capture_output=True, text=True)
    assert run2.returncode == 0, run2.stdout[-4000:] + run2.stderr[-4000:]
    return wd, killed_at


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    """Fake sbatch/sacct/sacctmgr/squeue/sinfo/scontrol on PATH; returns the file their calls are logged to."""
    bin_dir = tmp_path / "fake-slurm-bin"
    bin_dir.mkdir()
    log = tmp_path / "slurm-calls.log"
    scripts = {"sbatch": FAKE_SBATCH}
    for name in ("sacct", "squeue", "sinfo", "scontrol"):
        scripts[name] = FAKE_TOOL.format(name=name, body="exit 0")
    scripts["sacctmgr"] = FAKE_TOOL.format(name="sacctmgr", body="echo testaccount")
    for name, text in scripts.items():
        p = bin_dir / name
        p.write_text(text)
        p.chmod(p.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM_LOG", str(log))
    return log
