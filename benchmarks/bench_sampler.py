"""Sampler wall time: ``rspo_core.sampler.sample`` on the default config's char-level tiny Llama.

Run::

    python benchmarks/bench_sampler.py [--cases train eval] [--repeats 3] [--threads 1] [--max-new-tokens 8]
        [--json out.json]

The model is ``rspo_patch.charlm.build_tiny_llama`` (4 layers, d=128, ~1.06M parameters) over
``build_char_tokenizer`` with RANDOM weights (seed 0): the timing depends on the shapes, not on what was learnt, except
that a trained model stops earlier (it emits ``<eos>`` after a few digits); random weights rarely emit ``<eos>``, so
almost every row runs to ``max_new_tokens`` -- the slow end. Prompts are ``"a+b="`` questions (1-3 digit a, b) in the
``plain`` template, as in the default pipeline. The cases mirror the default config (T = 1, top_p = 1, 8 new tokens):

- ``train``: one RL step of ``rspo_patch.train_local`` -- 16 prompts x 16 samples = 256 rows, ``batch_size`` 512
  (``--gen-batch-size``' default: one chunk), ``record_entropy=True``.
- ``eval``: ``analysis.generate``'s hf backend -- 200 problems x 32 samples = 6400 rows, ``batch_size`` 32 (its
  default: one problem's 32 samples per call), no entropy.
- ``eval512``: the same rows with ``batch_size`` 512 (``analysis.generate --batch-size 512``: 16 problems per call).

Each case runs once as warm-up, then ``--repeats`` times; the median, min and max wall seconds are printed (and rows/s
from the median). Model building and imports are excluded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

# name -> (prompts, samples per prompt, batch_size, record_entropy)
CASES = {"train": (16, 16, 512, True), "eval": (200, 32, 32, False), "eval512": (200, 32, 512, False)}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", nargs="+", default=["train", "eval"], choices=list(CASES))
    p.add_argument("--repeats", type=int, default=3, help="timed calls per case (after one warm-up call)")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (the pipeline's default is 1)")
    p.add_argument("--max-new-tokens", type=int, default=8)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = p.parse_args(argv)
    if args.repeats < 1 or args.threads < 1 or args.max_new_tokens < 1:
        p.error("--repeats, --threads and --max-new-tokens must be >= 1")
    return args


def questions(count: int, seed: int = 0) -> list[str]:
    """``count`` questions "a+b" with a, b uniform in [0, 999] (fixed seed)."""
    rng = random.Random(seed)
    return [f"{rng.randrange(1000)}+{rng.randrange(1000)}" for _ in range(count)]


def time_case(model, tok, name: str, sampling, stop_ids, repeats: int) -> dict:
    """Warm-up + ``repeats`` timed ``sample`` calls of case ``name`` -> {case, rows, median_s, min_s, max_s, ...}."""
    from rspo_core.prompts import format_prompt
    from rspo_core.sampler import problem_seed, row_seeds, sample

    n_prompts, n, batch_size, entropy = CASES[name]
    qs = questions(n_prompts)
    prompts = [format_prompt(q, "plain") for q in qs for _ in range(n)]
    seeds = row_seeds([problem_seed(0, q) for q in qs], n)

    def call():
        return sample(model, tok, prompts, seeds, sampling, stop_ids=stop_ids, batch_size=batch_size,
                      record_entropy=entropy)

    out = call()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = call()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {"case": name, "rows": len(prompts), "batch_size": batch_size, "record_entropy": entropy,
            "median_s": round(med, 4), "min_s": round(min(times), 4), "max_s": round(max(times), 4),
            "rows_s": round(len(prompts) / med, 1), "mean_tokens": round(sum(out.num_tokens) / len(prompts), 2),
            "stop_frac": round(out.finish_reasons.count("stop") / len(prompts), 3)}


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    from rspo_core.sampler import SamplingConfig, stop_token_ids
    from rspo_patch.charlm import build_char_tokenizer, build_tiny_llama, count_parameters

    torch.set_num_threads(args.threads)
    tok = build_char_tokenizer()
    model = build_tiny_llama(len(tok), tokenizer=tok).eval()
    stop_ids = stop_token_ids(tok, model.generation_config.eos_token_id)
    sampling = SamplingConfig(temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens)
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} threads "
          f"{torch.get_num_threads()}, char Llama {count_parameters(model) / 1e6:.2f}M params (random weights), "
          f"T={sampling.temperature} top_p={sampling.top_p} max_new_tokens={sampling.max_new_tokens}")
    rows = []
    for name in args.cases:
        row = time_case(model, tok, name, sampling, stop_ids, args.repeats)
        rows.append(row)
        print(f"{name:6s} rows={row['rows']:5d} batch={row['batch_size']:4d}  median {row['median_s']:7.3f} s "
              f"(min {row['min_s']:.3f}, max {row['max_s']:.3f})  {row['rows_s']:9.1f} rows/s  "
              f"tokens/row {row['mean_tokens']:.2f}  stop={row['stop_frac']:.2f}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
