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

from wf_helpers import FAKE_SBATCH, FAKE_TOOL  # noqa: E402


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
