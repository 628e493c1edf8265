"""Checkpoints of the OpenRLHF train rule on CPU, on the paper's layout in miniature (2 DeepSpeed ranks writing ZeRO-2
optimizer shards, 2 vLLM engines, colocated: e2e_helpers.PAPER_LAYOUT), through snakemake and OpenRLHF's real trainer:

1. a train job killed (SIGKILL, whole process group) after its first sharded checkpoint is rerun by snakemake
   (rerun-incomplete) and RESUMES from it: every rank loads the checkpoint (DeepSpeed's optimizer step count comes
   back on both), the ranks continue from the saved rollout step, and every step is logged once;
2. the same checkpoint asked to resume with another rank count is refused in one line before Ray starts (DeepSpeed
   0.19.6 would raise ZeRORuntimeException inside every actor), and is left untouched;
3. after a change of the cell's settings (train.args, which the profile's params trigger reruns on) the rerun does
   NOT continue the stale checkpoint: the launcher moves it aside naming the change, and both ranks start at step 1.

Test 3 fails on code that resumes whatever is in results/ckpt/{cell} (measured before the checkpoint fix: the rerun
loaded the stale step-4 checkpoint and trained 0 steps).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from e2e_helpers import (CELL, RANKS, REPO, SKIP_WITHOUT_STACK, STEPS, fit_layout, read_jsonl, run_watched, shim_env,
                         snakemake_cmd, write_layout_config)

pytestmark = [SKIP_WITHOUT_STACK, pytest.mark.timeout(1800)]

TARGET = f"results/train/{CELL}/train_log.jsonl"
SAVE_STEPS = 2  # ckpt.save_steps of the micro config: the first checkpoint is global_step2


def _first_save_complete(wd) -> bool:
    """Every rank returned from the first save: our trainer's completion marker is in the tag (DeepSpeed's `latest`
    comes earlier, right after rank 0's own files)."""
    return (wd / "results" / "ckpt" / CELL / "_actor" / f"global_step{SAVE_STEPS}" / "rspo_complete.json").is_file()


def _train_stdout(wd) -> str:
    return (wd / "results" / "logs" / "train" / f"{CELL}.log").read_text()


def _listing(path):
    return sorted((str(p.relative_to(path)), p.stat().st_size) for p in path.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def killed_and_resumed(tiny_model, tmp_path_factory):
    """Run the train job until its first complete checkpoint, SIGKILL it, unlock, rerun (watched):
    (workdir, rerun, probe rows of the rerun)."""
    wd = tmp_path_factory.mktemp("wf-ckpt")
    config = write_layout_config(wd / "config.yaml", tiny_model)
    with open(wd / "run1.log", "w") as out:
        proc = subprocess.Popen(snakemake_cmd(wd, config, TARGET), cwd=REPO, env=shim_env(), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 1200
        try:
            while not _first_save_complete(wd):
                assert proc.poll() is None, (wd / "run1.log").read_text()[-3000:]
                assert time.time() < deadline, "no checkpoint written in time"
                time.sleep(0.2)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert not (wd / TARGET).exists(), "killed too late: the job had finished"
    subprocess.run(snakemake_cmd(wd, config, "--unlock"), cwd=REPO, env=shim_env(), check=True,
                   capture_output=True)
    probe = wd / "probe_rerun.jsonl"
    rerun = run_watched(snakemake_cmd(wd, config, TARGET), env=shim_env(RSPO_CPU_PROBE_FILE=str(probe)), workdir=wd,
                        probe=probe, watch=(wd / "results" / "logs" / "train" / f"{CELL}.log",))
    return wd, rerun, read_jsonl(probe) if probe.exists() else []


def test_killed_train_job_resumes_every_rank_from_its_sharded_checkpoint(killed_and_resumed):
    wd, rerun, probe = killed_and_resumed
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:] + _train_stdout(wd)[-3000:]
    log = _train_stdout(wd)
    assert "Loading the checkpoint" in log, log[-3000:]
    loaded = [r for r in probe if r.get("event") == "loaded"]
    print("loaded:", loaded)
    assert sorted(r["rank"] for r in loaded) == list(range(RANKS)), loaded
    # every rank resumed at the saved rollout step with DeepSpeed's optimizer step count of that save
    assert {r["global_step"] for r in loaded} == {SAVE_STEPS}, loaded
    assert len({r["opt_steps"] for r in loaded}) == 1 and loaded[0]["opt_steps"] > 0, loaded
    layout = fit_layout(probe)
    assert sorted(layout) == list(range(SAVE_STEPS + 1, STEPS + 1)), layout
    first = layout[SAVE_STEPS + 1]
    assert all(v["micro_batches"] == first[0]["micro_batches"] for v in first.values()), first
    steps = [r["step"] for r in read_jsonl(wd / TARGET)]
    assert steps == list(range(1, STEPS + 1)), steps


def test_a_checkpoint_of_another_rank_count_is_refused_in_one_line(killed_and_resumed, tiny_model):
    """Ask the 2-rank checkpoint to resume on 1 rank (1 engine, so OpenRLHF's colocation accepts the layout): the
    launcher stops before Ray with one line naming both counts, and the checkpoint stays as it was."""
    wd, rerun, _ = killed_and_resumed
    assert rerun.returncode == 0
    ckpt = wd / "results" / "ckpt" / CELL
    before = _listing(ckpt)
    one_rank = write_layout_config(wd / "config_1rank.yaml", tiny_model,
                                   {"actor.num_gpus_per_node": 1, "vllm.num_engines": 1})
    t0 = time.time()
    again = subprocess.run(snakemake_cmd(wd, one_rank, TARGET), cwd=REPO, env=shim_env(), capture_output=True,
                           text=True)
    seconds = time.time() - t0
    log = _train_stdout(wd)
    print(f"refused in {seconds:.0f} s: {[line for line in log.splitlines() if 'error' in line.lower()]}")
    assert again.returncode != 0, "the 2-rank checkpoint was resumed by 1 rank"
    errors = [line for line in log.splitlines() if "rspo_patch.openrlhf.launch: error:" in line]
    assert len(errors) == 1, log[-3000:]
    assert f"shards of {RANKS} data-parallel rank(s), this run has 1" in errors[0], errors
    assert "Traceback" not in log and "ZeRORuntimeException" not in log, log[-3000:]
    assert _listing(ckpt) == before


def test_rerun_after_a_params_change_does_not_resume_the_stale_checkpoint(killed_and_resumed, tiny_model):
    """The changed run is watched until both ranks entered their first update, then killed: by then the launcher has
    decided (moved the old checkpoint aside, naming the changed setting) and the ranks have started from step 1 with
    no optimizer step taken, which is all this test is about (a fresh run to the end is the DAG test's)."""
    wd, rerun, _ = killed_and_resumed
    assert rerun.returncode == 0
    changed = write_layout_config(wd / "config_lr.yaml", tiny_model, {"actor.adam.lr": 1.0e-3})
    probe = wd / "probe_changed.jsonl"
    with open(wd / "changed.log", "w") as out:
        proc = subprocess.Popen(snakemake_cmd(wd, changed, TARGET), cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                env=shim_env(RSPO_CPU_PROBE_FILE=str(probe)), start_new_session=True)
        deadline = time.time() + 900
        try:
            while not (probe.exists() and sum(r.get("event") == "fit_start" for r in read_jsonl(probe)) >= RANKS):
                assert proc.poll() is None, (wd / "changed.log").read_text()[-3000:] + _train_stdout(wd)[-3000:]
                assert time.time() < deadline, "the changed run never reached its first update"
                time.sleep(0.5)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    log = _train_stdout(wd)
    assert "Nothing to be done" not in (wd / "changed.log").read_text(), "snakemake did not rerun on the params change"
    assert "not resuming" in log and "settings.actor.adam.lr" in log, log[-3000:]
    assert "Loading the checkpoint" not in log, "the rerun resumed the checkpoint of the old settings"
    starts = [r for r in read_jsonl(probe) if r.get("event") == "fit_start"]
    assert sorted(r["rank"] for r in starts) == list(range(RANKS)), starts
    assert {(r["step"], r["opt_steps"]) for r in starts} == {(1, 0)}, starts
    assert not any(r.get("event") == "loaded" for r in read_jsonl(probe))
