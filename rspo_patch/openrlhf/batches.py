"""Full rollout batches and an even split over data-parallel ranks (OpenRLHF 0.11.2's batch arithmetic, pure).

Why: OpenRLHF hands the micro-batches of one rollout step to the actor ranks in contiguous chunks
(``RayActorGroup.async_run_method_batch``: chunk = ceil(E / R) experiences per rank, the last rank gets the rest),
each rank cuts its replay buffer into ``--train.micro_batch_size`` micro-batches (``DataLoader(drop_last=True)``)
and runs collectives once per micro-batch and once per optimizer step. Ranks with different micro-batch counts wait
on each other until the NCCL timeout. A rollout step with fewer than ``--rollout.batch_size`` prompts (the last one of
each episode when the prompt count is not a multiple of it: MATH train 7,500 % 128 = 76) splits unevenly for most n.

The launcher therefore (1) cuts the prompt set to whole rollout batches through ``--data.max_samples`` (OpenRLHF keeps
the first ``max_samples`` rows; verl, which the paper ran, drops the last partial batch of each epoch instead) and
(2) checks, before Ray starts, that one full rollout step splits into the same whole number of optimizer steps on
every rank. ``tests/openrlhf/test_batches_on_cpu.py`` checks both against OpenRLHF's own distribution code.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass


def full_batch_prompts(num_prompts: int, rollout_batch: int, max_samples: int | None = None) -> int:
    """Prompts to train on: min(num_prompts, max_samples) rounded down to a multiple of ``rollout_batch``.

    ValueError (naming the numbers) when not even one full rollout batch is left.
    """
    if rollout_batch < 1:
        raise ValueError(f"--rollout.batch_size must be >= 1, got {rollout_batch}")
    usable = num_prompts if max_samples is None else min(num_prompts, int(max_samples))
    kept = usable // rollout_batch * rollout_batch
    if kept == 0:
        raise ValueError(f"the prompt set has {usable} usable prompts, fewer than one --rollout.batch_size "
                         f"({rollout_batch}); a rollout step needs a full batch")
    return kept


@dataclass(frozen=True)
class Layout:
    """How one rollout step is laid out over the actor ranks (OpenRLHF 0.11.2, ``--train.dynamic_batch_enable`` off).

    experience_sizes  samples per rollout micro-batch (``split_rollout_samples``: chunks of rollout.micro_batch_size)
    rank_samples      samples each DP rank receives (``async_run_method_batch``: ceil(E / R) experiences per rank)
    rank_micro        train micro-batches per rank = rank_samples // train.micro_batch_size (DataLoader drop_last)
    gas               micro-batches per optimizer step (DeepSpeed's gradient accumulation)
    """

    experience_sizes: tuple[int, ...]
    rank_samples: tuple[int, ...]
    rank_micro: tuple[int, ...]
    gas: int


def chunk_sizes(total: int, ranks: int) -> list[int]:
    """Items per rank as ``RayActorGroup.async_run_method_batch`` cuts ``total`` items: chunk = ceil(total / ranks),
    rank r gets items [r * chunk, min((r + 1) * chunk, total)) (possibly none)."""
    chunk = math.ceil(total / ranks)
    return [max(0, min((r + 1) * chunk, total) - r * chunk) for r in range(ranks)]


def step_layout(samples: int, *, rollout_micro: int, ranks: int, train_micro: int, train_batch: int) -> Layout:
    """The ``Layout`` of a rollout step with ``samples`` responses (prompts * n), ``ranks`` effective DP ranks
    (num_nodes * gpus_per_node / ring_attn_size / tensor_parallel_size)."""
    sizes = [rollout_micro] * (samples // rollout_micro) + ([samples % rollout_micro] if samples % rollout_micro else [])
    per_rank_exps = chunk_sizes(len(sizes), ranks)
    rank_samples, start = [], 0
    for count in per_rank_exps:
        rank_samples.append(sum(sizes[start:start + count]))
        start += count
    gas = max(1, train_batch // train_micro // ranks)
    return Layout(tuple(sizes), tuple(rank_samples), tuple(s // train_micro for s in rank_samples), gas)


def check_even_split(samples: int, *, rollout_micro: int, ranks: int, train_micro: int, train_batch: int) -> Layout:
    """The layout of a full rollout step, or ValueError naming the flags when the ranks would differ (a hang).

    Required: every rank gets the same number of samples and no sample is silently dropped by drop_last. A step whose
    micro-batches are not a whole number of optimizer steps (train.batch_size = ranks * micro * gas) only warns: the
    ranks stay in step, but DeepSpeed carries the partial accumulation into the next rollout step.
    """
    layout = step_layout(samples, rollout_micro=rollout_micro, ranks=ranks, train_micro=train_micro,
                         train_batch=train_batch)
    if len(set(layout.rank_samples)) != 1:
        raise ValueError(f"a rollout step of {samples} responses in micro-batches of --rollout.micro_batch_size "
                         f"{rollout_micro} reaches the {ranks} ranks as {list(layout.rank_samples)} samples: ranks "
                         f"would run different numbers of micro-batches and hang; make rollout.batch_size * n / "
                         f"rollout.micro_batch_size a multiple of {ranks}")
    per_rank = layout.rank_samples[0]
    if per_rank % train_micro:
        raise ValueError(f"each rank gets {per_rank} samples per rollout step, not a multiple of "
                         f"--train.micro_batch_size {train_micro}: the DataLoader would drop {per_rank % train_micro}")
    if train_batch % (train_micro * ranks) or (per_rank // train_micro) % layout.gas:
        warnings.warn(f"each rank runs {per_rank // train_micro} micro-batches per rollout step, not a multiple of "
                      f"the {train_batch} / ({train_micro} x {ranks}) accumulation steps of --train.batch_size "
                      f"{train_batch}: an optimizer step would straddle two rollout steps", stacklevel=2)
    return layout
