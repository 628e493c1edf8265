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


def step_drop_counts(log_row: dict, samples: int) -> tuple[int, int]:
    """(sequences the actor trains on, non-zero-weight sequences) of one rollout step of ``samples`` responses, from
    the step's row of train_log.jsonl: with --rspo.drop_zero_weight the ``rollout/rspo_*`` fractions of the whole
    rollout (samples * (1 - dropped_fraction), samples * (1 - zero_weight_fraction)); without it every response is
    trained and ``rspo_zero_weight`` (mean over the trained samples) is the zero fraction."""
    if "rollout/rspo_dropped_fraction" in log_row:
        trained = samples * (1 - log_row["rollout/rspo_dropped_fraction"])
        weighted = samples * (1 - log_row["rollout/rspo_zero_weight_fraction"])
    else:
        trained, weighted = samples, samples * (1 - log_row["rspo_zero_weight"])
    return round(trained), round(weighted)


def probe_per_step(probe_rows: list[dict], trained_per_step: list[int]) -> list[dict]:
    """The probe's policy-loss rows (one per actor micro-batch, in order; one actor rank) cut into consecutive rollout
    steps of ``trained_per_step[s]`` sequences, summed per step: {rows, weighted_rows, zero_rows_tokens, tokens}.
    ValueError when the micro-batches do not cut into exactly those counts (the actor trained other sequences)."""
    out, it = [], iter(probe_rows)
    for step, want in enumerate(trained_per_step, start=1):
        acc = {"rows": 0, "weighted_rows": 0, "zero_rows_tokens": 0, "tokens": 0}
        while acc["rows"] < want:
            row = next(it, None)
            if row is None:
                raise ValueError(f"step {step}: the actor's loss saw {acc['rows']} sequences, expected {want}")
            for key in acc:
                acc[key] += row[key]
        if acc["rows"] != want:
            raise ValueError(f"step {step}: micro-batches of {acc['rows']} sequences do not cut at {want}")
        out.append(acc)
    rest = sum(r["rows"] for r in it)
    if rest:
        raise ValueError(f"the actor's loss saw {rest} sequences after the last step")
    return out
