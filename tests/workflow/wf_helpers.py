"""Helpers of the workflow tests (imported by name: conftest.py puts this folder and workflow/lib on sys.path)."""

from __future__ import annotations

import os
import stat
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SNAKEFILE = REPO / "Snakefile"
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
LIB = REPO / "workflow" / "lib"
if str(LIB) not in sys.path:
    sys.path.insert(0, str(LIB))


def load_yaml(path: Path) -> dict:
    import yaml

    with open(path) as fh:
        return yaml.safe_load(fh)


def dryrun_jobs(configfile: Path, workdir: Path, targets: set[str] | None = None) -> Counter:
    """Dry-run the workflow in-process (Snakemake API); return the number of jobs per rule."""
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
        dag = wf.dag(DAGSettings(targets=set(targets or ())))
        dag.execute_workflow(executor="dryrun")
        return Counter(job.rule.name for job in wf._workflow.dag.jobs)


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

