"""Issue 13.2 through the real workflow: a `generate` job killed with Snakemake (SIGKILL of the whole process group,
no clean-up) resumes from results/partial/generate/... on the rerun and ends byte-identical to an uninterrupted run.

The micro config (tests/workflow/micro/config.yaml) with the base model's arithmetic benchmark at n=64 samples per
problem and --batch-size 64 (config eval.n_per_benchmark, eval.generate_args): one problem per backend call and per
append to the partial file, ~0.1 s each on 2 cores, so a kill lands mid-job; pre-training cut to 2 steps (the base
model's quality does not matter here). Real modules and processes, no mocks: data, pre-training, then three generate
runs (killed, resumed, forced uninterrupted).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from wf_helpers import MICRO, REPO, kill_when, load_yaml, snakemake_cmd

BASE = "model~tiny/algo~base/k~1/n~1/reward~pass/seed~0"  # the base model's cell: only pre-training comes before
BENCH = "arithmetic"
PROBLEMS = 40  # micro config data.arithmetic.n_test
N = 64  # samples per problem of BENCH in this test's config
KILL_AT = 8  # problems in the partial file when the kill is sent


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def _generate_log(wd: Path) -> str:
    return (wd / "results" / "logs" / "eval" / BASE / BENCH / "generate.log").read_text()


def _run(cmd: list[str]) -> None:
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]


@pytest.mark.timeout(900)
def test_generate_killed_with_snakemake_resumes_from_its_partial_file_and_ends_identical(tmp_path):
    cfg = load_yaml(MICRO)
    # any base model will do: pre-train 2 steps of 16 sequences, one held-out check on 4 problems at the end
    cfg["models"]["tiny"]["pretrain_args"].update(steps=2, eval_every=0, eval_problems=4, batch_size=16)
    cfg["eval"]["n_per_benchmark"] = {BENCH: N}
    cfg["eval"]["generate_args"] = {"batch_size": N}  # N rows per call: one problem per call and per append
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    wd = tmp_path / "wd"
    wd.mkdir()
    samples = wd / "results" / "eval" / BASE / BENCH / "samples.jsonl"
    partial = wd / "results" / "partial" / "generate" / BASE / f"{BENCH}.jsonl"
    target = str(samples.relative_to(wd))

    # --- 1. data, pre-training, then generate until KILL_AT problems are in the partial file: SIGKILL everything ---
    kill_when(snakemake_cmd(wd, target, configfile=config), tmp_path / "run1.log",
              lambda: _lines(partial) >= KILL_AT * N, timeout=600, poll=0.01, what="the generation's kill point")
    at_kill = partial.read_bytes()
    (tmp_path / "partial_at_kill.jsonl").write_bytes(at_kill)  # kept for a post-mortem
    kept = at_kill.count(b"\n") // N  # complete problems (a problem is appended whole; a torn tail is dropped)
    assert KILL_AT <= kept < PROBLEMS, f"killed too late: {kept} of {PROBLEMS} problems"
    assert not samples.exists()

    # --- 2. unlock, rerun (profiles/default: rerun-incomplete): the job resumes from the kept problems ------------
    _run(snakemake_cmd(wd, "--unlock", configfile=config))
    _run(snakemake_cmd(wd, target, configfile=config))
    log = _generate_log(wd)
    assert f"{BENCH}: {PROBLEMS} problems, {kept} done, {PROBLEMS - kept} to generate" in log, log[-2000:]
    resumed = samples.read_bytes()
    assert resumed.count(b"\n") == PROBLEMS * N
    kept_bytes = b"".join(at_kill.splitlines(keepends=True)[: kept * N])
    assert resumed.startswith(kept_bytes)  # the lines written before the kill are the ones kept
    assert not partial.exists()

    # --- 3. the same job uninterrupted (forced rerun, nothing to resume): the same bytes ----------------------------
    _run(snakemake_cmd(wd, target, "--forcerun", target, configfile=config))
    log = _generate_log(wd)
    assert f"{BENCH}: {PROBLEMS} problems, 0 done, {PROBLEMS} to generate" in log, log[-2000:]
    assert samples.read_bytes() == resumed
