"""Checkpoints of the OpenRLHF train rule on CPU (issue 11 item 5), through snakemake and OpenRLHF's real trainer:

1. a train job killed (SIGKILL, whole process group) after its first checkpoint is rerun by snakemake
   (rerun-incomplete) and RESUMES from that checkpoint: every step is logged once;
2. after a change of the cell's settings (train.args, which the profile's params trigger reruns on) the rerun does
   NOT continue the stale checkpoint: it starts fresh, or refuses with a reason that names the checkpoint.

Test 2 fails on code that resumes whatever is in results/ckpt/{cell} (measured before the checkpoint fix: the rerun
loaded the stale step-4 checkpoint and trained 0 steps).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from e2e_helpers import CELL, REPO, SKIP_WITHOUT_STACK, STEPS, read_jsonl, shim_env, snakemake_cmd, write_config

pytestmark = [SKIP_WITHOUT_STACK, pytest.mark.timeout(1800)]

TARGET = f"results/train/{CELL}/train_log.jsonl"


def _ckpt_done(wd) -> bool:
    """DeepSpeed writes ``latest`` after a checkpoint's files: the first checkpoint is complete."""
    return (wd / "results" / "ckpt" / CELL / "_actor" / "latest").is_file()


def _train_stdout(wd) -> str:
    return (wd / "results" / "logs" / "train" / f"{CELL}.log").read_text()


@pytest.fixture(scope="module")
def killed_and_resumed(tiny_model, tmp_path_factory):
    """Run the train job until its first checkpoint, SIGKILL it, unlock, rerun: (workdir, config, rerun)."""
    wd = tmp_path_factory.mktemp("wf-ckpt")
    config = write_config(wd / "config.yaml", tiny_model)
    with open(wd / "run1.log", "w") as out:
        proc = subprocess.Popen(snakemake_cmd(wd, config, TARGET), cwd=REPO, env=shim_env(), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 1200
        try:
            while not _ckpt_done(wd):
                assert proc.poll() is None, (wd / "run1.log").read_text()[-3000:]
                assert time.time() < deadline, "no checkpoint written in time"
                time.sleep(0.2)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert not (wd / TARGET).exists(), "killed too late: the job had finished"
    subprocess.run(snakemake_cmd(wd, config, "--unlock"), cwd=REPO, env=shim_env(), check=True,
                   capture_output=True)
    rerun = subprocess.run(snakemake_cmd(wd, config, TARGET), cwd=REPO, env=shim_env(), capture_output=True,
                           text=True)
    return wd, config, rerun


def test_killed_train_job_resumes_from_its_checkpoint(killed_and_resumed):
    wd, _, rerun = killed_and_resumed
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:] + _train_stdout(wd)[-3000:]
    log = _train_stdout(wd)
    assert "Loading the checkpoint" in log, log[-3000:]
    steps = [r["step"] for r in read_jsonl(wd / TARGET)]
    assert steps == list(range(1, STEPS + 1)), steps


def test_rerun_after_a_params_change_does_not_resume_the_stale_checkpoint(killed_and_resumed, tiny_model):
    wd, _, rerun = killed_and_resumed
    assert rerun.returncode == 0
    changed = write_config(wd / "config_lr.yaml", tiny_model, {"actor.adam.lr": 1.0e-3})
    again = subprocess.run(snakemake_cmd(wd, changed, TARGET), cwd=REPO, env=shim_env(), capture_output=True,
                           text=True)
    log = _train_stdout(wd)
    assert "Nothing to be done" not in again.stdout + again.stderr, "snakemake did not rerun on the params change"
    if again.returncode != 0:  # refused: the reason must name the checkpoint
        assert str(wd / "results" / "ckpt" / CELL) in log or f"ckpt/{CELL}" in log, log[-3000:]
        return
    assert "Loading the checkpoint" not in log, "the rerun resumed the checkpoint of the old settings"
    steps = [r["step"] for r in read_jsonl(wd / TARGET)]
    assert steps == list(range(1, STEPS + 1)), steps
