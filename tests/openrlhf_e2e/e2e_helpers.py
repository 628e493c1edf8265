"""Helpers of the OpenRLHF CPU tier (imported by name: conftest.py puts this folder on sys.path)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SHIM_DIR = HERE / "cpu_shim"
MICRO = HERE / "micro_openrlhf.yaml"
CELL = "model~tiny/algo~rspo_pass/k~2/n~4/reward~pass/seed~0"
BASE_CELL = "model~tiny/algo~base/k~1/n~1/reward~pass/seed~0"
STEPS = 4  # data.max_samples 8 / rollout.batch_size 2

_MISSING = [m for m in ("openrlhf", "vllm", "deepspeed", "ray", "snakemake") if importlib.util.find_spec(m) is None]
SKIP_WITHOUT_STACK = pytest.mark.skipif(bool(_MISSING), reason=f"OpenRLHF CPU tier needs {_MISSING} "
                                                       "(bash .ci/install_openrlhf_cpu.sh)")


def shim_env(**extra: str) -> dict:
    """Environment of every subprocess of the tier: the CPU shim first on PYTHONPATH (its sitecustomize runs in every
    Python process started below, Ray workers and vLLM's engine included), offline, vLLM on both cores with a
    bounded KV cache."""
    env = dict(os.environ)
    env.update({
        "RSPO_CPU_SHIM": "1",
        "PYTHONPATH": os.pathsep.join([str(SHIM_DIR), str(REPO)]),
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    })
    env.update(extra)
    return env


def write_config(path: Path, model: Path, train_args: dict | None = None) -> Path:
    """The micro config with models.tiny.path = ``model`` and ``train_args`` merged over train.args."""
    import yaml

    cfg = yaml.safe_load(MICRO.read_text())
    cfg["models"]["tiny"]["path"] = str(model)
    cfg["train"]["args"].update(train_args or {})
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def snakemake_cmd(workdir: Path, configfile: Path, *targets: str, extra: tuple = ()) -> list[str]:
    """``snakemake`` on the repository's Snakefile from the repository root (its default profile applies, as for a
    user), results under ``workdir``."""
    return [sys.executable, "-m", "snakemake", "--directory", str(workdir), "--cores", "2", *extra, *targets,
            "--configfile", str(configfile)]  # last: --configfile takes several values


def run_snakemake(workdir: Path, configfile: Path, *targets: str, env: dict | None = None,
                  timeout: float = 1500) -> subprocess.CompletedProcess:
    return subprocess.run(snakemake_cmd(workdir, configfile, *targets), cwd=REPO, env=env or shim_env(),
                          capture_output=True, text=True, timeout=timeout)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def sync_gap(probe_rows: list[dict]) -> float:
    """Token-weighted mean |log p_vLLM - log p_actor| over every policy-loss micro-batch the probe saw."""
    tokens = sum(r["tokens"] for r in probe_rows)
    if tokens == 0:
        raise ValueError("the log-prob probe saw no tokens; expected rollout log-probs from vLLM "
                         "(algo.advantage.is_correction_level token)")
    return sum(r["mean_abs"] * r["tokens"] for r in probe_rows) / tokens


SYNC_TOLERANCE = 0.01  # bf16 actor vs bf16 vLLM on the same weights: ~1e-3 measured


def weights_in_sync(probe_rows: list[dict]) -> bool:
    """The weight-sync check: vLLM's rollout log-probs equal the actor's to SYNC_TOLERANCE on average."""
    return sync_gap(probe_rows) < SYNC_TOLERANCE
