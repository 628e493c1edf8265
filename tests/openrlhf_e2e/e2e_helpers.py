"""Helpers of the OpenRLHF CPU tier (imported by name: conftest.py puts this folder on sys.path)."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
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


# ---------------------------------------------------------------------------------------------------------------------
# several actor ranks: the paper's layout (config/paper.yaml: 8 ranks, 8 engines, colocated) at 2 x 2

#: train.args of the tier's multi-rank runs: 2 DeepSpeed actor ranks (ZeRO-2 over gloo: optimizer states sharded)
#: and 2 vLLM engines, colocated in one placement group as config/paper.yaml has them (vLLM / DeepSpeed sleep mode,
#: which colocation uses on GPUs to share memory, is CUDA-only and stays off); 4 prompts x n 4 = 16 responses per
#: rollout step, optimizer steps of 2 responses = 1 micro-batch of 1 per rank, so a rollout step is 8 optimizer steps
#: without dropping and 1-8 with it (every rank the same number)
PAPER_LAYOUT = {
    "actor.num_gpus_per_node": 2,
    "vllm.num_engines": 2,
    "train.colocate_all": True,
    "data.max_samples": 16,
    "rollout.batch_size": 4,
    "rollout.micro_batch_size": 4,
    "train.batch_size": 2,
    "train.micro_batch_size": 1,
}
RANKS = 2
ENGINES = 2
LAYOUT_SAMPLES = 16  # rollout.batch_size 4 x n 4
#: arithmetic tiers of the multi-rank runs: mul1 next to add1, which the tier's tiny model was warmed up on, so groups
#: are all-wrong, mixed or (rarely) all-right and the ranks' non-zero-weight counts differ before dealing
LAYOUT_TIERS = "add1,mul1"


def write_layout_config(path: Path, model: Path, train_args: dict | None = None) -> Path:
    """The micro config on the paper's layout (PAPER_LAYOUT, LAYOUT_TIERS), ``train_args`` merged last."""
    import yaml

    write_config(path, model, {**PAPER_LAYOUT, **(train_args or {})})
    cfg = yaml.safe_load(path.read_text())
    cfg["data"]["arithmetic"]["tiers"] = LAYOUT_TIERS
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def fit_layout(probe_rows: list[dict]) -> dict[int, dict[int, dict]]:
    """{rollout step: {rank: {"micro_batches", "opt_steps" (optimizer steps of that step), "buffer"}}} from the
    probe's fit_start / fit_end rows (one pair per rank and ``ActorPPOTrainer.ppo_train`` call; the step number
    continues from a resumed checkpoint). ValueError if a rank started a step twice or never ended one."""
    starts, out = {}, {}
    for row in probe_rows:
        if row.get("event") == "fit_start":
            key = (row["pid"], row["call"])
            if key in starts:
                raise ValueError(f"rank {row['rank']} started call {row['call']} twice")
            starts[key] = row
        elif row.get("event") == "fit_end":
            start = starts.pop((row["pid"], row["call"]), None)
            if start is None:
                raise ValueError(f"fit_end without fit_start: {row}")
            step = out.setdefault(row["step"], {})
            if row["rank"] in step:
                raise ValueError(f"step {row['step']} trained twice on rank {row['rank']}")
            step[row["rank"]] = {"micro_batches": row["micro_batches"], "buffer": start["buffer"],
                                 "opt_steps": row["opt_steps"] - start["opt_steps"]}
    if starts:
        raise ValueError("unfinished updates: " + ", ".join(f"rank {r['rank']} step {r['step']}" for r in starts.values()))
    return out


def describe_hang(probe_rows: list[dict]) -> str:
    """Where the actor ranks stood when a run stopped making progress, from the probe: the last rollout step any
    rank entered, and per rank whether it left that step's update and after how many micro-batches."""
    starts = [r for r in probe_rows if r.get("event") == "fit_start"]
    if not starts:
        return "before the first actor update (start-up: Ray, vLLM engines, DeepSpeed, or the first rollout)"
    step = max(r["step"] for r in starts)
    ranks = sorted({r["rank"] for r in starts})
    parts = []
    for rank in ranks:
        began = [r for r in starts if r["rank"] == rank and r["step"] == step]
        if not began:
            parts.append(f"rank {rank} never entered it")
            continue
        pid, call, buffer = began[-1]["pid"], began[-1]["call"], began[-1]["buffer"]
        micro = sum(1 for r in probe_rows if "event" not in r and r.get("pid") == pid and r.get("call") == call)
        ended = any(r.get("event") == "fit_end" and r["pid"] == pid and r["call"] == call for r in probe_rows)
        parts.append(f"rank {rank} {'left it' if ended else 'is stuck inside it'} after {micro} micro-batch(es) "
                     f"({buffer} responses to train)")
    return f"rollout step {step}: " + "; ".join(parts)


class TrainingHang(AssertionError):
    """A watched run made no progress for its stall limit (or passed its deadline); the message names step and rank."""


def run_watched(cmd: list[str], *, env: dict, workdir: Path, probe: Path, stall_s: float = 300,
                deadline_s: float = 1500, watch: tuple = ()) -> subprocess.CompletedProcess:
    """Run ``cmd`` (a snakemake call) in its own process group; kill the group and raise TrainingHang, naming the
    rollout step and the ranks (``describe_hang``), when none of ``probe``, ``watch`` and the command's own output
    grew for ``stall_s`` seconds or ``deadline_s`` passed. A collective that waits for a rank which will never join
    (one micro-batch more on one rank) blocks until gloo's / NCCL's timeout (OpenRLHF sets 60 min): the watchdog
    turns that into a failure within ``stall_s``."""
    out_path, err_path = workdir / "watched.stdout", workdir / "watched.stderr"
    paths = [probe, out_path, err_path, *watch]
    t0 = last = time.time()
    seen = None
    with open(out_path, "w") as out, open(err_path, "w") as err:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=err, start_new_session=True)
        try:
            while proc.poll() is None:
                time.sleep(2)
                now = time.time()
                sizes = tuple(p.stat().st_size if p.exists() else -1 for p in paths)
                if sizes != seen:
                    seen, last = sizes, now
                if now - last > stall_s or now - t0 > deadline_s:
                    why = (f"no progress for {now - last:.0f} s" if now - last > stall_s
                           else f"still running after {now - t0:.0f} s")
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                    rows = read_jsonl(probe) if probe.exists() else []
                    raise TrainingHang(f"training hung ({why}; killed): {describe_hang(rows)}")
        except BaseException:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out_path.read_text(), err_path.read_text())


def engine_sync_gaps(probe_rows: list[dict]) -> dict[str, float]:
    """{engine pid: token-weighted mean |log p_vLLM - log p_actor|} over the policy-loss rows, split by the engine
    that sampled each row (the probe's ``engines``)."""
    acc: dict[str, list] = {}
    for row in probe_rows:
        for pid, (gap, tokens) in (row.get("engines") or {}).items():
            a = acc.setdefault(pid, [0.0, 0])
            a[0] += gap
            a[1] += tokens
    return {pid: gap / tokens for pid, (gap, tokens) in acc.items() if tokens}


def sync_gap(probe_rows: list[dict]) -> float:
    """Token-weighted mean |log p_vLLM - log p_actor| over every policy-loss micro-batch the probe saw."""
    probe_rows = [r for r in probe_rows if "event" not in r]
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
    """The probe's policy-loss rows (one per actor micro-batch; every rank's, by call) cut into consecutive rollout
    steps of ``trained_per_step[s]`` sequences, summed per step: {rows, weighted_rows, zero_rows_tokens, tokens}.
    ValueError when the micro-batches do not cut into exactly those counts (the actor trained other sequences)."""
    loss_rows = [r for r in probe_rows if "event" not in r]
    out, it = [], iter(sorted(loss_rows, key=lambda r: r.get("call", 0)))
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
