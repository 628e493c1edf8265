"""OpenRLHF TensorBoard scalars -> train_log.jsonl, the per-step training log every trainer of rspo-bench writes.

    python workflow/scripts/openrlhf_train_log.py --tensorboard results/ckpt/{cell}/tensorboard --out train_log.jsonl

OpenRLHF 0.11.2 logs ``train/<name>`` scalars per global step, averaged over the micro-batches the actor trained on
(its own: reward, entropy_loss, policy_loss, response_length, ...; the RSPO experience maker's ``experience.info``:
rspo_weight, rspo_zero_weight, rspo_k; the reward function's extra_logs: rspo_correct, ...) and ``train/rollout/<name>``
scalars over the whole rollout (OpenRLHF: reward_mean, ...; the plugin: rspo_correct, rspo_weight, rspo_zero_weight,
and the drop statistics). Under ``--rspo.drop_zero_weight`` the actor trains on the non-zero-weight responses (+ a few
pads), so the train/<name> means describe those, not the rollout; the rollout scalar is used where it exists (below,
r/ = train/rollout/):

    step <- global step                 k <- train/rspo_k
    entropy <- r/rspo_token_nll (sampled tokens' mean -log pi: the sampling distribution's entropy, estimated over
               every response), else train/entropy_loss
    reward_mean <- r/reward_mean, else train/reward
    pass_rate <- r/rspo_correct, else train/rspo_correct
    weight_mean <- r/rspo_weight, else train/rspo_weight
    frac_zero_weight <- r/rspo_zero_weight_fraction (logged under dropping), else train/rspo_zero_weight

Fields OpenRLHF does not log (weight_std/min/max, tokens_per_s) are null. Every ``train/*`` scalar is also kept under
its own name without the prefix. A resumed run writes a second event file that repeats steps: the last value written
for a (tag, step) wins. Output written atomically (temp file + os.replace).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from rspo_core.atomic import write_jsonl_atomic

FIELD_MAP = {  # field -> tags in order of preference (the first one logged at that step is used)
    "k": ("train/rspo_k",),
    "reward_mean": ("train/rollout/reward_mean", "train/reward"),
    "pass_rate": ("train/rollout/rspo_correct", "train/rspo_correct"),
    "entropy": ("train/rollout/rspo_token_nll", "train/entropy_loss"),
    "weight_mean": ("train/rollout/rspo_weight", "train/rspo_weight"),
    "frac_zero_weight": ("train/rollout/rspo_zero_weight_fraction", "train/rspo_zero_weight"),
}
UNLOGGED = ("weight_std", "weight_min", "weight_max", "tokens_per_s")


def read_scalars(tb_dir: str | os.PathLike) -> dict[str, dict[int, tuple[float, float]]]:
    """tag -> step -> (wall_time, value), from every event file under ``tb_dir`` (older files first, last wins)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = sorted(Path(tb_dir).rglob("events.out.tfevents.*"), key=lambda p: (p.stat().st_mtime, p.name))
    if not files:
        raise ValueError(f"no TensorBoard event files under {str(tb_dir)!r}; expected OpenRLHF's --logger.tensorboard_dir")
    out: dict[str, dict[int, tuple[float, float]]] = {}
    for f in files:
        acc = EventAccumulator(str(f), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags().get("scalars", []):
            for ev in acc.Scalars(tag):
                out.setdefault(tag, {})[int(ev.step)] = (float(ev.wall_time), float(ev.value))
    return out


def to_rows(scalars: dict[str, dict[int, tuple[float, float]]]) -> list[dict]:
    """One row per step that has any train/* scalar, with the train_local field names (pure)."""
    steps = sorted({s for tag, series in scalars.items() if tag.startswith("train/") for s in series})
    t0 = min((wt for series in scalars.values() for wt, _ in series.values()), default=0.0)
    rows = []
    for step in steps:
        row: dict = {"step": step}
        for field, tags in FIELD_MAP.items():
            v = next((scalars[t][step] for t in tags if step in scalars.get(t, {})), None)
            row[field] = None if v is None else v[1]
        if row["k"] is not None:
            row["k"] = int(round(row["k"]))
        for field in UNLOGGED:
            row[field] = None
        times = [series[step][0] for series in scalars.values() if step in series]
        row["wall_time"] = max(times) - t0
        for tag, series in scalars.items():
            if tag.startswith("train/") and step in series:
                row[tag.removeprefix("train/")] = series[step][1]
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tensorboard", required=True, help="OpenRLHF --logger.tensorboard_dir")
    ap.add_argument("--out", required=True, help="train_log.jsonl to write")
    args = ap.parse_args(argv)
    rows = to_rows(read_scalars(args.tensorboard))
    if not rows:
        raise ValueError(f"no train/* scalars under {args.tensorboard!r}")
    write_jsonl_atomic(args.out, rows)
    print(f"{len(rows)} steps -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
