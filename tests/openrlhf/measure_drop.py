"""What --rspo.drop_zero_weight removes: the real RSPOExperienceMaker (OpenRLHF 0.11.2) with the paper's flags on
synthetic rollouts (128 prompts x 16, per-prompt success rate p uniform on [0, 1] or fixed, Bernoulli rewards).

    PYTHONPATH=$PWD python tests/openrlhf/measure_drop.py      # from the repo root; ~1 min on 2 cores

Columns: fraction of exactly-zero weights, fraction of responses removed from the actor's update, fraction kept only
as padding to whole optimizer steps, training micro-batches per rank (64 without dropping), seconds the experience
maker took with / without dropping (the split and re-batching overhead). Numbers in docs/paper_setup.md.
"""
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import conftest as cf  # noqa: E402  (the tier's CPU stand-ins for flash_attn / vllm, and its Experience builder)

cf.install_cpu_stubs()
from openrlhf.utils.config import hierarchize
from rspo_patch.openrlhf.launch import parse_args
from rspo_patch.openrlhf.experience import RSPOExperienceMaker

BASE = ["--actor.model_name_or_path", "m", "--rollout.batch_size", "128", "--train.batch_size", "256",
        "--train.micro_batch_size", "4", "--rollout.micro_batch_size", "16", "--actor.num_gpus_per_node", "8",
        "--algo.kl.init_coef", "0", "--reward.clip_range", "-100", "100", "--rollout.n_samples_per_prompt", "16"]
P, N = 128, 16
def rewards_for(dist, seed=0):
    g = torch.Generator().manual_seed(seed)
    if dist == "uniform":
        p = torch.rand(P, 1, generator=g)
    else:
        p = torch.full((P, 1), float(dist))
    return (torch.rand(P, N, generator=g) < p).float()

print("algo k | p | zero-weight | removed | padding | micro-batches/rank (full 64) | maker s (drop / no drop)")
for algo, k in [("pg", None), ("rspo_pass", 2), ("rspo_pass", 4), ("rspo_pass", 8), ("baseline", 4), ("grpo", None)]:
    for dist in ["uniform", "0.3", "0.5", "0.7"]:
        flags = BASE + ["--algo.advantage.estimator", algo] + (["--rspo.k", str(k)] if k else [])
        r = rewards_for(dist)
        res = {}
        for drop in (False, True):
            args = hierarchize(parse_args(flags + (["--rspo.drop_zero_weight"] if drop else []), hierarchical=False)) 
            maker = cf.make_maker(RSPOExperienceMaker, args)
            exps = cf.build_experiences(r, n=N, micro_batch=16, max_len=7)
            t = time.perf_counter(); out = maker.compute_advantages_and_returns(exps); dt = time.perf_counter() - t
            samples = sum(e.sequences.size(0) for e in out)
            res[drop] = (samples, dt, maker.take_full_rollout()[1])
        s1, t1, st = res[True]
        print(f"{algo} {k or '-'} | {dist} | {st['rollout/rspo_zero_weight_fraction']:.3f} | "
              f"{st['rollout/rspo_dropped_fraction']:.3f} | {st['rollout/rspo_padding_fraction']:.3f} | "
              f"{s1 // 8 // 4} | {t1:.2f} / {res[False][1]:.2f}")
