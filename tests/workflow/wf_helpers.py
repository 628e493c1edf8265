"""Helpers of the workflow tests (imported by name: conftest.py puts this folder and workflow/lib on sys.path)."""

from __future__ import annotations

import functools
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SNAKEFILE = REPO / "Snakefile"
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
LIB = REPO / "workflow" / "lib"
MICRO = REPO / "tests" / "workflow" / "micro" / "config.yaml"  # the micro config of the real Snakemake runs
MICRO_CELL = "model~tiny/algo~rspo_pass/k~2/n~4/reward~pass/seed~0"  # the cell killed mid-training by the e2e run
MICRO_STEPS = 20  # micro config train.args.steps
if str(LIB) not in sys.path:
    sys.path.insert(0, str(LIB))


def load_yaml(path: Path) -> dict:
    import yaml

    with open(path) as fh:
        return yaml.safe_load(fh)


@dataclass(frozen=True)
class DryRun:
    """What a dry run planned: jobs per rule, and each job's (wildcards, shell command) per rule."""

    jobs: Counter
    commands: dict  # rule -> list of (wildcards dict, shell command or None)


def _dry_run(configfile: Path, workdir: Path, targets: tuple[str, ...]) -> DryRun:
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import (ConfigSettings, DAGSettings, OutputSettings, Quietness, ResourceSettings,
                                          StorageSettings)

    with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
        wf = api.workflow(
            snakefile=SNAKEFILE,
            workdir=workdir,
            resource_settings=ResourceSettings(cores=2),
            config_settings=ConfigSettings(configfiles=[Path(configfile)]),
            storage_settings=StorageSettings(),
        )
        dag = wf.dag(DAGSettings(targets=set(targets)))
        dag.execute_workflow(executor="dryrun")
        jobs = list(wf._workflow.dag.jobs)
        commands: dict[str, list] = {}
        for job in jobs:
            cmd = job.shellcmd if job.rule.shellcmd else None
            commands.setdefault(job.rule.name, []).append((dict(job.wildcards), cmd))
        return DryRun(jobs=Counter(job.rule.name for job in jobs), commands=commands)


@functools.lru_cache(maxsize=None)
def dry_run(configfile: str, targets: tuple[str, ...] = ()) -> DryRun:
    """Dry-run a shipped config in-process (Snakemake API) in a fresh temporary workdir; cached per session, so the
    tests that read the same plan share one dry run."""
    return _dry_run(Path(configfile), Path(tempfile.mkdtemp(prefix="rspo-dryrun-")), tuple(targets))


def dryrun_jobs(configfile: Path, workdir: Path, targets: set[str] | None = None) -> Counter:
    """Dry-run the workflow in-process (uncached); return the number of jobs per rule."""
    return _dry_run(Path(configfile), Path(workdir), tuple(sorted(targets or ()))).jobs


def snakemake_cmd(wd: Path, *args: str, configfile: Path = MICRO) -> list[str]:
    """`python -m snakemake` on the working directory ``wd`` with 2 cores. Run it with cwd=REPO: profiles/default
    (rerun-incomplete, rerun-triggers) is picked up from there, as for a user. --configfile comes last (it takes
    every value up to the next option, targets included)."""
    return [sys.executable, "-m", "snakemake", "--directory", str(wd), "--cores", "2", *args,
            "--configfile", str(configfile)]


FAKE_SBATCH = """#!/bin/sh
# fake sbatch: record the full call, then refuse the submission (nothing runs)
echo "sbatch $*" >> "$FAKE_SLURM_LOG"
echo "sbatch: error: fake cluster, nothing submitted" >&2
exit 1
"""
FAKE_TOOL = """#!/bin/sh
echo "{name} $*" >> "$FAKE_SLURM_LOG"
{body}
"""


def kill_when(cmd: list[str], log: Path, done, *, timeout: float, poll: float = 0.05, what: str = "the kill point"):
    """Run ``cmd`` (cwd REPO, output to ``log``) in its own process group and SIGKILL the whole group as soon as
    ``done()`` is true: a crash at that point, with no clean-up by Snakemake. Fails (with the log's tail) if the
    process ends first or ``timeout`` seconds pass."""
    import os
    import signal
    import subprocess
    import time

    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + timeout
        try:
            while not done():
                assert proc.poll() is None, log.read_text()[-3000:]
                assert time.time() < deadline, f"{what} not reached in {timeout:.0f} s"
                time.sleep(poll)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
