"""The cluster install (scripts/install_cluster.sh) resolves: .ci/check_cluster_install.py runs pip's resolver in
--dry-run --report mode over everything but flash-attn and checks OpenRLHF 0.11.2's requirements against the result
(see that script). Needs the package index, as CI has it."""

from __future__ import annotations

import subprocess
import sys

import pytest
from e2e_helpers import REPO

pytestmark = pytest.mark.timeout(1200)


def test_cluster_install_resolves_without_conflicts():
    proc = subprocess.run([sys.executable, str(REPO / ".ci" / "check_cluster_install.py")], cwd=REPO,
                          capture_output=True, text=True, timeout=1100)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "cluster install resolves" in proc.stdout


def test_environment_yml_installs_nothing_with_pip():
    """conda's pip section would build flash-attn (OpenRLHF's dependency) under build isolation, without torch."""
    import yaml

    env = yaml.safe_load((REPO / "environment.yml").read_text())
    assert not [d for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    script = (REPO / "scripts" / "install_cluster.sh").read_text()
    order = [script.index(s) for s in ('pip install "torch==2.13.0" --index-url', 'pip install -e ".[gpu]"',
                                       'pip install --no-deps "openrlhf==0.11.2"',
                                       'pip install --no-build-isolation "flash-attn==2.8.3"')]
    assert order == sorted(order), "install order: torch, gpu extra, openrlhf --no-deps, flash-attn last"
