"""What ``--rspo.drop_zero_weight`` saves in OpenRLHF 0.11.2's real training loop, on CPU: the same train job twice
(drop off / on, same seed and settings) through the CPU tier's own machinery (tests/openrlhf_e2e: its tiny Llama, its
micro config, ``snakemake`` on the workflow's train rule with the CPU shim and the read-only policy-loss probe).

Run from the repository root (needs the stack of ``.ci/install_openrlhf_cpu.sh``; ~1.5 min per run on 2 cores)::

    python benchmarks/bench_openrlhf_drop.py [--algo rspo_pass --k 4 --n 8] [--prompts-per-step 4] [--steps 4]
        [--train-batch 8] [--repeats 1] [--hidden 128 --layers 2] [--warmup-steps 120] [--set KEY=VALUE ...]
        [--workdir DIR] [--json F]

Per run and rollout step, from what the loop itself logs (train_log.jsonl, i.e. OpenRLHF's TensorBoard scalars):
the zero-weight fraction of the rollout (``rollout/rspo_zero_weight_fraction``, or ``rspo_zero_weight`` without
dropping), the fraction removed from the actor's update (``rollout/rspo_dropped_fraction``), and OpenRLHF's own
``timing/ppo_train`` (the actor's ``fit``: forward, backward and optimizer steps of that rollout step, plus the Ray
round trip) and ``timing/step_total``. From the probe: the sequences and loss tokens the actor's policy loss really
saw (checked against the logged counts). Per run: the wall time of the whole train job (snakemake -> launcher -> Ray,
vLLM and DeepSpeed start-up, the steps, the final save). Runs alternate drop off / on so that load drift on a shared
machine hits both.

Dropping keeps whole ``--train.batch_size`` optimizer steps (rspo_patch/openrlhf/experience.py), so it can remove
something only when a rollout step (prompts x n) spans several optimizer steps: the default 4 prompts x n 8 = 32
responses in optimizer steps of 8 (as the paper's 2048 responses in mini-batches of 256).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "openrlhf_e2e"))

from e2e_helpers import (probe_per_step, read_jsonl, run_snakemake, shim_env, step_drop_counts,  # noqa: E402
                         write_config)
from rspo_core.cells import Cell  # noqa: E402
from tiny_llama import build_tiny_llama  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--algo", default="rspo_pass", help="registry estimator of the cell")
    p.add_argument("--k", type=int, default=4)
    p.add_argument("--n", type=int, default=8, help="samples per prompt")
    p.add_argument("--prompts-per-step", type=int, default=4, help="--rollout.batch_size")
    p.add_argument("--steps", type=int, default=4, help="rollout steps (data.max_samples = steps x prompts)")
    p.add_argument("--train-batch", type=int, default=8, help="--train.batch_size (responses per optimizer step)")
    p.add_argument("--repeats", type=int, default=1, help="off/on pairs")
    p.add_argument("--hidden", type=int, default=128, help="tiny Llama width (the tier's: 128)")
    p.add_argument("--layers", type=int, default=2, help="tiny Llama depth (the tier's: 2)")
    p.add_argument("--warmup-steps", type=int, default=120,
                   help="supervised warm-up steps of the tiny Llama (the tier's: 120; 0 = random weights: no answer is "
                        "right and responses run to --rollout.max_new_tokens, a compute-bound stress case)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="more OpenRLHF dotted flags over the micro config's train.args (YAML values)")
    p.add_argument("--workdir", default=None, help="where runs go (default: a new temp folder)")
    p.add_argument("--json", default=None, help="also write per-run results to this JSON file")
    args = p.parse_args(argv)
    if min(args.k, args.n, args.prompts_per_step, args.steps, args.train_batch, args.repeats) < 1 or args.k > args.n:
        p.error("--k, --n, --prompts-per-step, --steps, --train-batch, --repeats must be >= 1 and k <= n")
    if args.prompts_per_step * args.n % args.train_batch:
        p.error(f"--train-batch {args.train_batch} must divide a rollout step of "
                f"{args.prompts_per_step} x {args.n} responses")
    for item in args.set:
        if "=" not in item:
            p.error(f"--set {item!r}: expected KEY=VALUE")
    return args


def train_args(args: argparse.Namespace, drop: bool) -> dict:
    """The micro config's train.args overrides of one run (identical but for rspo.drop_zero_weight)."""
    import yaml

    samples = args.prompts_per_step * args.n
    out = {
        "data.max_samples": args.steps * args.prompts_per_step,
        "rollout.batch_size": args.prompts_per_step,
        "rollout.micro_batch_size": min(samples, 8),
        "train.batch_size": args.train_batch,
        "train.micro_batch_size": min(args.train_batch, 4),
        "ckpt.save_steps": 10 ** 6,  # no intermediate checkpoint inside the timed steps
        "rspo.drop_zero_weight": drop,
    }
    out.update({key: yaml.safe_load(value) for key, value in (item.split("=", 1) for item in args.set)})
    return out


def write_bench_config(path: Path, model: Path, cell: Cell, overrides: dict) -> Path:
    """The tier's micro config (``write_config``) with its one family switched to ``cell``."""
    import yaml

    write_config(path, model, overrides)
    cfg = yaml.safe_load(path.read_text())
    cfg["data"]["arithmetic"]["n_train"] = max(cfg["data"]["arithmetic"]["n_train"], overrides["data.max_samples"])
    family = cfg["families"]["main"]
    family.update({"n": cell.n, "seed": cell.seed, "reward": cell.reward,
                   "grid": [{"algo": cell.algo, "k": cell.k}]})
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def run_once(workdir: Path, model: Path, cell: Cell, overrides: dict, samples: int) -> dict:
    """One train job through snakemake; per-step numbers from train_log.jsonl and the probe."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = write_bench_config(workdir / "config.yaml", model, cell, overrides)
    probe = workdir / "probe.jsonl"
    target = f"results/train/{cell.path}/train_log.jsonl"
    t0 = time.time()
    proc = run_snakemake(workdir, config, target, env=shim_env(RSPO_CPU_PROBE_FILE=str(probe)))
    wall = time.time() - t0
    if proc.returncode != 0:
        log = workdir / "results" / "logs" / "train" / f"{cell.path}.log"
        tail = log.read_text()[-4000:] if log.exists() else ""
        raise SystemExit(f"train job failed ({workdir}):\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}{tail}")
    rows = read_jsonl(workdir / target)
    counts = [step_drop_counts(r, samples) for r in rows]
    seen = probe_per_step(read_jsonl(probe), [trained for trained, _ in counts])
    steps = []
    for r, (trained, weighted), s in zip(rows, counts, seen):
        if s["weighted_rows"] != weighted:
            raise SystemExit(f"step {r['step']}: the actor's loss saw {s['weighted_rows']} weighted sequences, the log "
                             f"says {weighted} ({workdir})")
        steps.append({"step": r["step"], "zero_frac": 1 - weighted / samples, "dropped_frac": 1 - trained / samples,
                      "trained": trained, "weighted": weighted, "loss_rows": s["rows"],
                      "loss_weighted_rows": s["weighted_rows"], "loss_tokens": s["tokens"],
                      "ppo_train_s": r["timing/ppo_train"], "step_total_s": r["timing/step_total"]})
    return {"drop": overrides["rspo.drop_zero_weight"], "wall_s": wall, "steps": steps}


def print_table(runs: list[dict]) -> None:
    """Per step, then per mode (over runs; steps 2+ exclude the first step's warm-up; the median resists the load
    spikes of a shared machine)."""
    print("\nrun | drop | step | zero-weight | dropped | seqs trained | loss tokens | actor fit s | step s")
    for i, run in enumerate(runs):
        for s in run["steps"]:
            print(f"{i} | {'on' if run['drop'] else 'off'} | {s['step']} | {s['zero_frac']:.3f} | "
                  f"{s['dropped_frac']:.3f} | {s['loss_rows']} | {s['loss_tokens']} | {s['ppo_train_s']:.2f} | "
                  f"{s['step_total_s']:.2f}")
    print("\ndrop | runs | zero-weight | dropped | seqs trained/step | loss tokens/step | actor fit s/step "
          "(mean all; mean, median steps 2+) | job wall s")
    for drop in (False, True):
        sel = [r for r in runs if r["drop"] == drop]
        if not sel:
            continue
        steps = [s for r in sel for s in r["steps"]]
        later = [s for r in sel for s in r["steps"][1:]] or steps
        mean = lambda key, xs=steps: statistics.mean(s[key] for s in xs)  # noqa: E731
        print(f"{'on' if drop else 'off'} | {len(sel)} | {mean('zero_frac'):.3f} | {mean('dropped_frac'):.3f} | "
              f"{mean('loss_rows'):.1f} | {mean('loss_tokens'):.1f} | {mean('ppo_train_s'):.2f}; "
              f"{mean('ppo_train_s', later):.2f}, {statistics.median(s['ppo_train_s'] for s in later):.2f} | "
              f"{statistics.mean(r['wall_s'] for r in sel):.0f}")


def main(argv=None) -> int:
    import tempfile

    args = parse_args(argv)
    root = Path(args.workdir or tempfile.mkdtemp(prefix="bench-drop-")).resolve()
    cell = Cell(model="tiny", algo=args.algo, k=args.k, n=args.n, reward="pass", seed=0)
    samples = args.prompts_per_step * args.n
    t0 = time.time()
    model = root / "tiny-llama"
    if not (model / "config.json").exists():
        build_tiny_llama(model, hidden=args.hidden, layers=args.layers, warmup_steps=args.warmup_steps)
    print(f"tiny Llama (hidden {args.hidden}, {args.layers} layers, {args.warmup_steps} warm-up steps) in "
          f"{time.time() - t0:.0f} s; cell {cell.path}; "
          f"{args.steps} steps of {args.prompts_per_step} prompts x n {args.n} = {samples} responses, optimizer steps "
          f"of {args.train_batch}; runs under {root}", flush=True)
    runs = []
    for rep in range(args.repeats):
        order = (False, True) if rep % 2 == 0 else (True, False)
        for drop in order:
            run = run_once(root / f"r{rep}-drop-{'on' if drop else 'off'}", model, cell, train_args(args, drop),
                           samples)
            print(f"repeat {rep} drop {'on' if drop else 'off'}: job wall {run['wall_s']:.0f} s", flush=True)
            runs.append(run)
    print_table(runs)
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "cell": cell.path, "runs": runs}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
