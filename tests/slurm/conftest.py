"""The Slurm tier's cluster: one real single-node Slurm 22.05 (slurmctld + slurmd + munge) started by .ci/slurm_up.sh
for the test module that uses it and stopped by PID (.ci/slurm_down.sh) after that module.

It skips, with the reason, only where Slurm cannot be started (not root, no apt-get, daemons already running); under
CI (CI=true) that is a failure instead, so CI always runs the tier.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CPU_PARTITION = "rspo-cpu"
GPU_PARTITION = "rspo-gpu"


@dataclass(frozen=True)
class Cluster:
    """A running one-node cluster: its state folder (logs in DIR/log) and what slurm_up.sh reported."""

    dir: Path
    cpu_partition: str  # the default partition
    gpu_partition: str  # same node, no GPU: what the profile's GPU rules are sent to
    up: str  # "install_s=... start_s=... node=... cpus=... real_memory_mb=... partitions=..."
    wall_s: float  # bring-up wall time measured here (install included when it ran)

    @property
    def ctld_log(self) -> Path:
        return self.dir / "log" / "slurmctld.log"


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    """Start the cluster for the module that asks for it; stop it by PID after that module (also when a test failed)."""
    state = tmp_path_factory.mktemp("slurm")
    env = {**os.environ, "RSPO_CI_CPU_PARTITION": CPU_PARTITION, "RSPO_CI_GPU_PARTITION": GPU_PARTITION}
    t0 = time.monotonic()
    up = subprocess.run(["timeout", "-k", "10", "900", "bash", str(REPO / ".ci" / "slurm_up.sh"), str(state)],
                        env=env, capture_output=True, text=True)
    wall = time.monotonic() - t0
    if up.returncode != 0:
        subprocess.run(["timeout", "-k", "5", "60", "bash", str(REPO / ".ci" / "slurm_down.sh"), str(state)])
        why = f"Slurm could not be started (slurm_up.sh exit {up.returncode}): {up.stderr.strip()[-1500:]}"
        if up.returncode == 2 and os.environ.get("CI") != "true":
            pytest.skip(why)
        pytest.fail(why)
    try:
        yield Cluster(dir=state, cpu_partition=CPU_PARTITION, gpu_partition=GPU_PARTITION, up=up.stdout.strip(),
                      wall_s=wall)
    finally:
        subprocess.run(["timeout", "-k", "5", "60", "bash", str(REPO / ".ci" / "slurm_down.sh"), str(state)])
