"""Suite-wide: how pytest-xdist shares the tests out over its workers (``-n 2 --dist loadgroup``, pyproject addopts).

Every test file is one group, so its module-scoped fixtures (a whole Snakemake run, a training run) run once, on one
worker. The files of tests/openrlhf_e2e that start OpenRLHF or vLLM form one group: each of their runs starts a Ray
cluster, two DeepSpeed ranks and two vLLM engines, as many processes as the 2-core CI machine can run at a time; two
of them side by side would only slow each other down (the tier's resolver check, pip's dependency resolver over the
cluster pins, is not one of them); so do files that share a session fixture (SHARED). Nothing else is shared between
the workers: each runs its own session fixtures (tiny models, the one-node Slurm of tests/slurm), and every run writes
under its own tmp_path. The longest groups are collected first (LONGEST_FIRST), so that both workers start on them.

The markers must be set before xdist's worker reads them (its hook is registered after this file: tryfirst).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SERIAL_FOLDERS = ("openrlhf_e2e",)
PARALLEL_FILES = ("openrlhf_e2e/test_cluster_install_on_cpu.py",)  # no Ray, no vLLM: pip's resolver
# files sharing a session fixture: one group, so the fixture runs once (the micro run and Snakemake's report of it)
SHARED = {"workflow/test_e2e_micro_on_cpu.py": "workflow/micro-e2e",
          "workflow/test_snakemake_report_on_cpu.py": "workflow/micro-e2e"}
# the longest groups first (pytest --durations on the 2-core CI kind of machine): xdist hands groups out in collection
# order, so the two workers start with the long ones and the short ones fill in behind them
LONGEST_FIRST = ("openrlhf_e2e", "slurm/test_profile_slurm_on_cpu.py", "workflow/micro-e2e",
                 "openrlhf_e2e/test_cluster_install_on_cpu.py", "workflow/test_plugin_micro_on_cpu.py",
                 "train/test_cpu_math_on_cpu.py", "workflow/test_generate_kill_micro_on_cpu.py",
                 "estimators/test_plugins.py", "train/test_train_local_on_cpu.py", "train/test_charlm_on_cpu.py")


def xdist_group(path: Path) -> str:
    """The worker group of a test file: its folder for SERIAL_FOLDERS (but PARALLEL_FILES), else the file itself
    (relative to tests/)."""
    rel = Path(path).resolve().relative_to(HERE)
    if rel.parts[0] in SERIAL_FOLDERS and rel.as_posix() not in PARALLEL_FILES:
        return rel.parts[0]
    return SHARED.get(rel.as_posix(), rel.as_posix())


def group_rank(group: str) -> int:
    """Position of a group in LONGEST_FIRST; the others after them, in collection order."""
    return LONGEST_FIRST.index(group) if group in LONGEST_FIRST else len(LONGEST_FIRST)


@pytest.hookimpl(tryfirst=True)  # before xdist's worker hook, which reads the markers (it is registered later)
def pytest_collection_modifyitems(config, items):
    groups = {}
    for item in items:
        groups[item] = xdist_group(Path(str(item.fspath)))
        item.add_marker(pytest.mark.xdist_group(groups[item]))
    items.sort(key=lambda item: group_rank(groups[item]))  # stable: collection order within a group and after


def user_venv(root: Path) -> Path:
    """A virtualenv at ``root`` that sees this environment's packages (a .pth file adds this Python's site directories
    after the venv's own, so it works whether this Python is a venv or not: ``--system-site-packages`` would see only
    the base interpreter's); returns its python. What a user's environment with rspo-bench installed looks like."""
    import site
    import venv

    venv.EnvBuilder(with_pip=False).create(root)
    python = root / "bin" / "python"
    own_site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              capture_output=True, text=True, check=True).stdout.strip()
    dirs = ([site.getusersitepackages()] if site.ENABLE_USER_SITE else []) + site.getsitepackages()
    Path(own_site, "_rspo_outer_env.pth").write_text(
        "import site; " + "; ".join(f"site.addsitedir({d!r})" for d in dirs) + "\n")
    return python


def pip_install_editable(python: Path, package: Path) -> None:
    """``pip install -e package`` into the virtualenv of ``python``, as a user would: offline with this environment's
    setuptools first; if that cannot build an editable wheel (a setuptools without it), with pip's build isolation,
    which fetches a current setuptools from PyPI as a fresh user environment does."""
    import sys

    base = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps"]
    proc = subprocess.run([*base, "--no-build-isolation", "--no-index", "-e", str(package)], capture_output=True,
                          text=True, timeout=300)
    if proc.returncode != 0:
        proc = subprocess.run([*base, "-e", str(package)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.fixture(scope="session")
def make_user_venv():
    """(root, package) -> python of a fresh virtualenv on top of this environment with ``package`` pip-installed in
    editable mode (user_venv, pip_install_editable)."""
    def make(root: Path, package: Path) -> Path:
        python = user_venv(root)
        pip_install_editable(python, package)
        return python

    return make
