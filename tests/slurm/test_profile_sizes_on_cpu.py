"""The profile's training requests for config/paper.yaml, per model size (issue 11, item 11), as the real executor
plugin renders them into sbatch lines: a fake `sbatch` on PATH records each call and refuses it (nothing runs; the CI
node has neither GPUs nor 240 GB). The real submissions are checked by test_profile_slurm_on_cpu.py."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CELL_1P5B = "model~qwen25_math_1p5b/algo~rspo_pass/k~4/n~16/reward~pass/seed~0"
CELL_7B = "model~qwen25_math_7b/algo~rspo_pass/k~4/n~16/reward~pass/seed~0"
FAKE = {
    "sbatch": 'echo "sbatch $*" >> "$FAKE_SLURM_LOG"; echo "fake cluster, nothing submitted" >&2; exit 1',
    "sacctmgr": 'echo "sacctmgr $*" >> "$FAKE_SLURM_LOG"; echo siteacct',
    **{name: f'echo "{name} $*" >> "$FAKE_SLURM_LOG"' for name in ("sacct", "squeue", "sinfo", "scontrol")},
}


def test_paper_training_jobs_ask_for_their_model_size(tmp_path, monkeypatch):
    from snakemake.cli import main

    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    for name, body in FAKE.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    wd = tmp_path / "wd"
    for model in ("qwen25_math_1p5b", "qwen25_math_7b"):
        (wd / "results" / "models" / model).mkdir(parents=True)
        (wd / "results" / "models" / model / "config.json").write_text("{}")
    (wd / "results" / "data").mkdir(parents=True)
    (wd / "results" / "data" / "math_train.jsonl").write_text("")
    time.sleep(0.05)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM_LOG", str(log))
    monkeypatch.setenv("RSPO_GPU_PARTITION", "gpu-site")
    monkeypatch.setenv("RSPO_GPU_MODEL", "h100")
    monkeypatch.setenv("RSPO_SLURM_ACCOUNT", "siteacct")
    monkeypatch.chdir(REPO)  # `--profile slurm` resolves ./slurm -> profiles/slurm
    with pytest.raises(SystemExit):
        main(["--cores", "all", "--profile", "slurm", "--directory", str(wd), "--retries", "0", "--quiet", "all",
              "--slurm-init-seconds-before-status-checks", "1",
              f"results/train/{CELL_1P5B}/train_log.jsonl", f"results/train/{CELL_7B}/train_log.jsonl",
              "--configfile", "config/paper.yaml"])
    calls = [line for line in log.read_text().splitlines() if line.startswith("sbatch ")]
    by_model = {re.search(r"model~(\w+?)_algo", c).group(1): c for c in calls}
    assert set(by_model) == {"qwen25_math_1p5b", "qwen25_math_7b"}, calls
    for model, mem in (("qwen25_math_1p5b", 240000), ("qwen25_math_7b", 480000)):
        line = by_model[model]
        assert f"--mem {mem} " in line, line  # per model size (config models.<name>.train_resources over train.*)
        assert "--gpus=h100:8" in line and "--cpus-per-task=64" in line and "--nodes=1" in line, line
        assert "-t 1440" in line and "-p gpu-site" in line and "-A siteacct" in line, line
        assert "--requeue" in line and "--exclusive" not in line, line
