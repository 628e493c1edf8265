"""The project's own `--profile slurm` through a real Slurm: the micro config (tests/workflow/micro/config.yaml, local
reference trainer) from data to figures, every job (but the local rule effective_config) an sbatch job on the one-node
cluster of conftest.py.

While the run goes, the test reads Slurm's own records (`scontrol -o show job`, every ~0.3 s, first and last record
of each job kept) and does two things a cluster does to long jobs:
- the `pg` cell's training job is `scancel`ed once its first checkpoint exists (CANCELLED);
- the `rspo_pass` cell's training job exceeds its time limit: once its first checkpoint exists its trainer is stopped
  (SIGSTOP, a stalled cell) and its limit lowered to 1 min (`scontrol update TimeLimit=1`); Slurm's own time-limit
  enforcement ends it (TIMEOUT, "Time limit exhausted" in slurmctld's log).
Then it asserts: each rule's jobs asked Slurm for what the profile and the config say (partition, CPUs, memory, time
limit); both failures were reported by Snakemake and retried once (profile `retries: 2`) by a new sbatch job that
resumed from the cell's checkpoint; the tables equal those of a plain local `--cores 2` run of the same config, run
at the same time beside it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MICRO = REPO / "tests" / "workflow" / "micro" / "config.yaml"
CANCEL_CELL = "model~tiny/algo~pg/k~1/n~4/reward~pass/seed~0"
TIMEOUT_CELL = "model~tiny/algo~rspo_pass/k~2/n~4/reward~pass/seed~0"
STEPS = 20  # micro config train.args.steps
RUN_LIMIT_S = 1500  # `timeout -k` bound of the Slurm run (a stuck status loop never ends by itself)



def _profile_env(cpu: str, gpu: str) -> dict[str, str]:
    """Site settings of the test cluster, through the profile's documented environment variables."""
    return {
        "RSPO_CPU_PARTITION": cpu,
        "RSPO_GPU_PARTITION": gpu,
        "RSPO_EVAL_CPUS": "1",  # the node has 2 CPUs (the profile's default is 8 for grading)
        "RSPO_EVAL_MEM_GB": "2",  # the node has ~21 GB (the profile's default is 64)
        "RSPO_MAX_JOBS": "4",
    }


def _expected(cpu: str, gpu: str) -> dict[str, tuple]:
    """What each rule's Slurm job must ask for: (partition, CPUs per task, memory, time limit). Partitions and the
    eval sizes come from _profile_env; train from the micro config (train.threads 1; train.mem_mb / runtime_min
    defaults 8000 / 60); the other sizes from the rules' resources (workflow/rules/*.smk), or the profile's
    default-resources (8000 MB, 60 min) where a rule has none."""
    return {
        "arithmetic": (cpu, 1, "8000M", "01:00:00"),
        "bandit": (cpu, 1, "8000M", "01:00:00"),
        "pretrain_model": (cpu, 2, "4000M", "01:00:00"),
        "train": (gpu, 1, "8000M", "01:00:00"),
        "generate": (gpu, 1, "2000M", "04:00:00"),
        "verify": (gpu, 1, "2000M", "02:00:00"),
        "score": (cpu, 1, "2000M", "00:30:00"),
        "aggregate": (cpu, 1, "4000M", "00:30:00"),
        "claims": (cpu, 1, "2000M", "00:10:00"),
        "base_models_table": (cpu, 1, "1000M", "00:05:00"),
        "figure": (cpu, 1, "2000M", "00:10:00"),
        "report": (cpu, 1, "2000M", "00:10:00"),
    }


TABLES = ("passk.csv", "maxk.csv", "train_curves.csv")
TIMING_COLUMNS = {"tokens_per_s", "wall_time"}  # measured, not computed: differ between any two runs


def _snakemake(wd: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "--directory", str(wd), *args, "--configfile", str(MICRO)]


def _scontrol_jobs() -> dict[str, dict[str, str]]:
    """Every job slurmctld knows (running, pending, or ended less than MinJobAge ago): JobId -> its KEY=VALUE record."""
    out = subprocess.run(["timeout", "-k", "2", "10", "scontrol", "-o", "show", "job"], capture_output=True,
                         text=True).stdout
    jobs = {}
    for line in out.splitlines():
        rec = dict(kv.split("=", 1) for kv in re.findall(r"(\S+?=\S*)", line))
        if "JobId" in rec:
            jobs[rec["JobId"]] = rec
    return jobs


def _rule(rec: dict) -> str:
    """The rule name the plugin put in the job's comment: rule_<name>[_wildcards_<values>]."""
    return re.match(r"rule_(.+?)(?:_wildcards_|$)", rec.get("Comment", "")).group(1)


def _is_cell(rec: dict, cell: str) -> bool:
    return _rule(rec) == "train" and cell.replace("/", "_") in rec.get("Comment", "")


def _checkpoints(wd: Path, cell: str) -> list[Path]:
    d = wd / "results" / "ckpt" / cell
    return sorted(d.glob("step_*")) if d.is_dir() else []


def _trainer_pid(jobid: str) -> int | None:
    """The reference trainer's PID among the job's processes (`scontrol listpids`)."""
    out = subprocess.run(["timeout", "-k", "2", "10", "scontrol", "listpids", jobid], capture_output=True,
                         text=True).stdout
    for pid in re.findall(r"^\s*(\d+)\s", out, flags=re.M):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "analysis.train_and_prefill" in cmd and not cmd.startswith(("/bin/sh", "bash", "/bin/bash")):
            return int(pid)
    return None


def _read_table(path: Path) -> list[dict]:
    import csv

    with open(path) as fh:
        return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in csv.DictReader(fh)]


@pytest.mark.timeout(2400)
def test_micro_workflow_through_real_slurm(slurm_cluster, tmp_path):
    wd, ref = tmp_path / "slurm", tmp_path / "local"
    wd.mkdir()
    ref.mkdir()
    t0 = time.monotonic()
    # the reference: a plain local run of the same config to its tables, beside the Slurm run (Slurm's jobs wait on
    # status polls most of the time; the two share the 2 cores)
    with open(tmp_path / "local.log", "w") as out:
        local = subprocess.Popen(["timeout", "-k", "10", str(RUN_LIMIT_S),
                                  *_snakemake(ref, "--cores", "2", *[f"results/tables/{t}" for t in TABLES])],
                                 cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    cpu, gpu = slurm_cluster.cpu_partition, slurm_cluster.gpu_partition
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")} | _profile_env(cpu, gpu)
    # what a user runs (`snakemake --cores all --profile slurm`), with a 2 s first status check instead of 40 s
    cmd = ["timeout", "-k", "30", str(RUN_LIMIT_S),
           *_snakemake(wd, "--cores", "all", "--profile", "slurm", "--slurm-init-seconds-before-status-checks", "2")]
    first, last = {}, {}  # JobId -> first / last record seen
    cancelled = timed_out = None
    stopped_pid = None
    with open(tmp_path / "slurm.log", "w") as out:
        run = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            while run.poll() is None:
                jobs = _scontrol_jobs()
                for jid, rec in jobs.items():
                    first.setdefault(jid, rec)
                    last[jid] = rec
                running = {jid: rec for jid, rec in jobs.items() if rec.get("JobState") == "RUNNING"}
                for jid, rec in running.items():
                    if cancelled is None and _is_cell(rec, CANCEL_CELL) and _checkpoints(wd, CANCEL_CELL):
                        subprocess.run(["timeout", "-k", "2", "10", "scancel", jid], check=True)
                        cancelled = jid
                    if timed_out is None and _is_cell(rec, TIMEOUT_CELL) and _checkpoints(wd, TIMEOUT_CELL):
                        stopped_pid = _trainer_pid(jid)
                        if stopped_pid is not None:
                            os.kill(stopped_pid, signal.SIGSTOP)
                            subprocess.run(["timeout", "-k", "2", "10", "scontrol", "update", f"JobId={jid}",
                                            "TimeLimit=1"], check=True)
                            timed_out = jid
                time.sleep(0.3)
        finally:
            if run.poll() is None:
                run.kill()
            if stopped_pid is not None:
                try:
                    os.kill(stopped_pid, signal.SIGCONT)  # normally long gone (Slurm killed it)
                except ProcessLookupError:
                    pass
    slurm_s = time.monotonic() - t0
    for jid, rec in _scontrol_jobs().items():
        first.setdefault(jid, rec)
        last[jid] = rec
    log = (tmp_path / "slurm.log").read_text()
    assert run.returncode == 0, log[-6000:]
    local.wait(timeout=RUN_LIMIT_S)
    assert local.returncode == 0, (tmp_path / "local.log").read_text()[-4000:]
    wall_s = time.monotonic() - t0

    # ---- every job went through Slurm and asked for what the profile and the config say -----------------------------
    by_rule: dict[str, list[str]] = {}
    for jid, rec in first.items():
        by_rule.setdefault(_rule(rec), []).append(jid)
    jobs_per_rule = {rule: len(ids) for rule, ids in sorted(by_rule.items())}
    assert jobs_per_rule == {"aggregate": 1, "arithmetic": 1, "bandit": 1, "base_models_table": 1, "claims": 1,
                             "figure": 16, "generate": 3,
                             "pretrain_model": 1, "report": 1, "score": 3, "train": 4, "verify": 3}, jobs_per_rule
    expected, asked = _expected(cpu, gpu), {}
    for rule, ids in by_rule.items():
        for jid in ids:
            rec = first[jid]
            got = (rec["Partition"], int(rec["CPUs/Task"]), rec["MinMemoryNode"], rec["TimeLimit"])
            assert got == expected[rule], f"{rule} job {jid} asked for {got}, expected {expected[rule]}"
            asked[rule] = got
            assert last[jid]["JobState"] in ("COMPLETED", "CANCELLED", "TIMEOUT"), (jid, last[jid]["JobState"])
            assert rec["Requeue"] == "1", rec  # the profile's slurm-requeue: true
    # the node has no GPU and the micro config asks for none: no GPU request was rendered
    assert not any("gpu" in (rec.get("TresPerNode", "") + rec.get("TresPerJob", "")) for rec in first.values())

    # ---- the cancelled and the timed-out training jobs: reported, retried once, resumed from the checkpoint ----------
    assert cancelled and timed_out, f"the scenarios did not trigger: cancelled={cancelled} timed_out={timed_out}"
    assert last[cancelled]["JobState"] == "CANCELLED", last[cancelled]
    assert last[timed_out]["JobState"] == "TIMEOUT", last[timed_out]
    assert f"Time limit exhausted for JobId={timed_out}" in slurm_cluster.ctld_log.read_text()
    for jid, state, cell in ((cancelled, "CANCELLED", CANCEL_CELL), (timed_out, "TIMEOUT", TIMEOUT_CELL)):
        assert f"SLURM-job '{jid}' failed, SLURM status is: '{state}'" in log, log[-4000:]
        cell_jobs = sorted((jid2 for jid2 in by_rule["train"] if _is_cell(first[jid2], cell)), key=int)
        assert len(cell_jobs) == 2 and cell_jobs[0] == jid, cell_jobs  # one failure, one retry
        assert last[cell_jobs[1]]["JobState"] == "COMPLETED", last[cell_jobs[1]]
        train_out = (wd / "results" / "logs" / "train" / f"{cell}.log").read_text()  # the retry's log
        m = re.search(r"resumed from (\S+) \(step (\d+)\)", train_out)
        assert m and f"results/ckpt/{cell}/step_" in m.group(1) and 0 < int(m.group(2)) < STEPS, train_out[-2000:]
        steps = [json.loads(line)["step"] for line in
                 (wd / "results" / "train" / cell / "train_log.jsonl").read_text().splitlines() if line.strip()]
        assert steps == list(range(1, STEPS + 1)), steps

    # ---- the same tables as the local run; every figure and the report ---------------------------------------------
    for table in TABLES:
        assert _read_table(wd / "results" / "tables" / table) == _read_table(ref / "results" / "tables" / table), table
    pdfs = [p for p in (wd / "results" / "figures").glob("*.pdf") if p.stat().st_size > 0]
    assert len(pdfs) == jobs_per_rule["figure"], sorted(p.name for p in pdfs)
    assert (wd / "results" / "report.html").stat().st_size > 0

    print(json.dumps({"bring_up": slurm_cluster.up, "bring_up_wall_s": round(slurm_cluster.wall_s, 1),
                      "slurm_run_s": round(slurm_s, 1), "test_wall_s": round(wall_s, 1), "jobs": jobs_per_rule,
                      "asked": asked, "cancelled": cancelled, "timed_out": timed_out}, indent=1))
