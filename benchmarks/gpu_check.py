"""GPU check: the project's estimators, reference trainer and sampler on one CUDA device, compared with the CPU.

Run from the repository root (a copy of the tree; nothing installed but torch + transformers, nothing downloaded)::

    python -m benchmarks.gpu_check                  # the GPU run (~1-2 min on one H100, estimated)
    python -m benchmarks.gpu_check --device cpu     # SELF-TEST: the CPU stands in for the GPU (compares it with itself)

One line per check, ``PASS name: ...`` or ``FAIL name: reason`` (``INFO`` lines are measurements, not checks); every
check catches its own exception and the next one runs. Exit status: the number of failed checks (capped at 100);
101 when no CUDA device is visible (one line, before any heavy work). What is compared and why: docs/gpu_check.md.

- ``estimators/<name>``: every registry estimator on the device equals its CPU result in float64 to 1e-12
  (max |w_dev - w_cpu| / max(1, max |w_cpu|) per case; the two log-gamma estimators to their float64 accuracy, see
  LOG_SPACE) on binary, tied and continuous rewards, every (n, k) its metadata accepts; then its time at P = 1024,
  n = 16/64/256/1024 next to ``torch.sort`` on the same device (CUDA events, median of ``--repeats`` calls after a
  warm-up; rewards as ``python -m rspo_patch.bench`` makes them).
- ``setup``: a char-level Llama pre-trained on the device on one-digit sums until held-out pass@1 >= 0.10
  (``rspo_patch.pretrain``'s stop rule and pieces). Its vocabulary is digits, ``+`` and ``=`` only, so every answer the
  grader extracts is a plain integer and the grader's fast path decides it: math-verify is never needed.
- ``trainer/fp32``, ``trainer/bf16``: ``rspo_patch.train_local`` for 20 RL steps on the device (``--precision``),
  every logged loss finite and the pass rate rising (``rising``: the mean of the last 5 steps exceeds the mean of the
  first 5 by more than 2 standard errors of that difference, from the 10 per-step values).
- ``sampler/greedy-fp32``, ``sampler/seeded-fp32``: ``rspo_core.sampler.sample`` on the device gives the CPU's tokens,
  except where a row first differs at a step that float32 rounding can decide (greedy: the two tokens' logit gap;
  seeded: the row's uniform next to the CDF boundary between them; within twice the two devices' logit difference
  at that step). Its
  uniforms come from per-row CPU generators, so seeded sampling is comparable across devices.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time

import torch

from rspo_patch.bench import format_table, time_call

EQ_TOL = 1e-12  # estimators: max |w_dev - w_cpu| / max(1, max |w_cpu|)
# Estimators whose binomial ratios are exp(lgamma sums) (rspo_patch.estimators._comb_ratio): float64 carries their
# exponent only to ~ulp(lgamma(n + 1)) (the CPU alone is 1.3e-12 from the exact rationals at n = 1024), so two math
# libraries agree only to 6 lgamma calls x 2 devices x (assumed) 4 ulp each: tolerance max(EQ_TOL, 48 eps
# lgamma(n + 1)): EQ_TOL up to n = 35, 6.5e-11 at n = 1024.
LOG_SPACE = ("rspo_pass", "passk_chen")
# sampler: a token may differ only at a near-tie: greedy, the CPU's logit gap between its token and the device's below
# max(1e-5, 2 d); seeded, u * cdf_V within max(1e-6, 2 d) of the CDF boundary on the device token's side; d = max
# |logit_dev - logit_cpu| at that step (teacher-forced). 2 d bounds how far a gap moves when every logit moves by at
# most d, and (to first order) how far the softmax moves in L1, hence any CDF entry; the floors cover cached vs
# teacher-forced logits on one device.
GREEDY_FLOOR, CDF_FLOOR = 1e-5, 1e-6
LOGIT_TOL = 1e-3  # sampler: float32 logits, device vs CPU (TF32 matmuls would give ~1e-2 on this model)
RISE_WINDOW, RISE_Z = 5, 2.0  # trainer: last 5 vs first 5 steps, > 2 standard errors
CHARS = "0123456789+="  # the check model's vocabulary (plus <pad> <bos> <eos> <unk>)
REWARD_KINDS = ("binary", "ties", "continuous")
RL = dict(estimator="rspo_pass", k=4, lr=2e-4, max_new_tokens=4)  # the RL cell of the trainer check
NO_GPU_EXIT = 101


@dataclasses.dataclass(frozen=True)
class Sizes:
    """Problem sizes of one run (``--quick`` shrinks the estimator part for the self-test)."""

    prompts: int = 1024  # P of the timing
    ns: tuple = (16, 64, 256, 1024)  # n of the timing
    repeats: int = 20  # timed calls per cell
    eq_prompts: int = 64  # P of the equality cases
    eq_ns: tuple = (1, 2, 3, 8, 16, 64, 256, 1024)  # n of the equality cases
    rl_steps: int = 20
    rl_prompts: int = 64
    rl_n: int = 16


QUICK = Sizes(prompts=64, ns=(16, 64), repeats=3, eq_prompts=16, eq_ns=(1, 2, 3, 8, 16, 64))


# ---------------------------------------------------------------------------------------------------------------------
# Reporting

class Report:
    """Collects check lines: ``run(name, fn)`` prints ``PASS name: ...`` or ``FAIL name: <reason>``."""

    def __init__(self):
        self.results: dict[str, bool] = {}

    def run(self, name: str, fn, blocked_by: str | None = None) -> object:
        """Run ``fn() -> (ok, detail[, value])`` and print its line; return value (also of a failed check; None when
        ``fn`` raised). A check whose ``blocked_by`` check failed is not run and fails with that reason."""
        t0 = time.perf_counter()
        value = None
        if blocked_by is not None and not self.results.get(blocked_by):
            ok, detail = False, f"not run: {blocked_by} failed"
        else:
            try:
                ok, detail, *rest = fn()
                value = rest[0] if rest else None
            except Exception as e:  # noqa: BLE001 - a check reports its own failure and the next one runs
                ok, detail = False, f"{type(e).__name__}: {e}".replace("\n", " ")[:600]
        self.results[name] = ok
        print(f"{'PASS' if ok else 'FAIL'} {name}: {detail} [{time.perf_counter() - t0:.1f} s]", flush=True)
        return value

    @property
    def failures(self) -> int:
        return sum(not ok for ok in self.results.values())


def info(name: str, text: str) -> None:
    print(f"INFO {name}: {text}", flush=True)


def header(device: torch.device) -> str:
    """One line: torch, CUDA, cuDNN and transformers versions, the device's name and memory, the float32 matmul
    mode (TF32 would make 'float32' comparisons meaningless)."""
    try:
        import transformers

        hf = f"transformers {transformers.__version__}"
    except Exception as e:  # noqa: BLE001 - the checks that need it fail one by one, with the reason
        hf = f"transformers NOT importable ({type(e).__name__}: {e})"
    parts = [f"torch {torch.__version__}", f"CUDA {torch.version.cuda}", hf]
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        parts += [f"cuDNN {torch.backends.cudnn.version()}", f"device {p.name} (sm_{p.major}{p.minor}, "
                  f"{p.total_memory / 2**30:.1f} GiB)", f"matmul allow_tf32={torch.backends.cuda.matmul.allow_tf32}"]
    else:
        parts += [f"SELF-TEST on cpu ({torch.get_num_threads()} torch threads): the CPU stands in for the GPU and is "
                  "compared with itself (plumbing only, no GPU evidence)"]
    return "gpu_check: " + ", ".join(parts)


# ---------------------------------------------------------------------------------------------------------------------
# Estimators: device == CPU in float64, and time next to torch.sort

def make_rewards(kind: str, P: int, n: int, seed: int) -> torch.Tensor:
    """(P, n) float64 CPU rewards: binary 0/1 (p = 0.3), ties (5 levels -0.5..0.5) or continuous (normal, no ties).
    Row 0 is constant at the lowest level, row 1 constant at its own first value (groups without a contrast)."""
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(P, n, generator=g, dtype=torch.float64)
    R = {"binary": (u < 0.3).double(), "ties": torch.floor(5 * u) / 4 - 0.5,
         "continuous": torch.randn(P, n, generator=g, dtype=torch.float64)}[kind]
    R[0] = R.min() if kind != "binary" else 0.0
    R[1] = R[1, 0]
    return R


def valid_cases(spec, ns: tuple, kinds: tuple = REWARD_KINDS) -> list[tuple[str, int, int]]:
    """(reward kind, n, k) cases the estimator's metadata accepts (``check_estimator_args``): binary-only estimators
    get binary rewards only; k in {1, 2, 4, 8, n-1, n} where it uses k, else k = 1."""
    from rspo_patch.estimators import check_estimator_args

    cases = []
    for kind in kinds:
        if spec.binary_only and kind != "binary":
            continue
        for n in ns:
            for k in sorted({1, 2, 4, 8, n - 1, n} & set(range(1, n + 1))) if spec.uses_k else [1]:
                try:
                    check_estimator_args(spec.name, n=n, k=k, binary_rewards=kind == "binary")
                except ValueError:
                    continue
                cases.append((kind, n, k))
    return cases


def hp_variants(spec) -> list[dict]:
    """The default hyperparameters, plus each boolean one flipped (e.g. grpo_passk's norm_by_std)."""
    return [{}] + [{name: not v} for name, v in spec.hyperparameters.items() if isinstance(v, bool)]


def scaled_error(w_dev: torch.Tensor, w_cpu: torch.Tensor) -> float:
    """max |w_dev - w_cpu| / max(1, max |w_cpu|) of two (P, n) weight tensors (w_dev moved to the CPU); inf if the
    shapes or dtypes differ or a weight is not finite."""
    w_dev = w_dev.cpu()
    if w_dev.shape != w_cpu.shape or w_dev.dtype != w_cpu.dtype or not (
            torch.isfinite(w_dev).all() and torch.isfinite(w_cpu).all()):
        return math.inf
    if w_cpu.numel() == 0:
        return 0.0
    return float((w_dev - w_cpu).abs().max()) / max(1.0, float(w_cpu.abs().max()))


def case_tolerance(name: str, n: int) -> float:
    """Tolerance of one (estimator, n) case: EQ_TOL, or for the LOG_SPACE estimators max(EQ_TOL, 48 eps lgamma(n+1))."""
    if name not in LOG_SPACE:
        return EQ_TOL
    return max(EQ_TOL, 48 * torch.finfo(torch.float64).eps * math.lgamma(n + 1))


def estimator_equality(spec, device: torch.device, sizes: Sizes) -> tuple[int, float, tuple]:
    """(number of cases, worst error / tolerance, worst case (kind, n, k, hp, error)) of ``spec`` on ``device`` vs the
    CPU; passes iff the worst ratio is <= 1."""
    worst, where, count = -1.0, None, 0
    for kind, n, k in valid_cases(spec, sizes.eq_ns):
        R = make_rewards(kind, sizes.eq_prompts, n, seed=1000 * n + k)
        for hp in hp_variants(spec):
            err = scaled_error(spec.fn(R.to(device), k=k, **hp), spec.fn(R, k=k, **hp))
            count += 1
            if err / case_tolerance(spec.name, n) > worst:
                worst, where = err / case_tolerance(spec.name, n), (kind, n, k, hp, err)
    return count, worst, where


def device_time_ms(fn, repeats: int, device: torch.device) -> float:
    """Median milliseconds per call of ``fn`` over ``repeats`` calls after one warm-up call. CUDA: a pair of events
    around each call, read after the end event completes (includes the host syncs the call makes itself, e.g. the
    estimators' input validation); CPU: ``rspo_patch.bench.time_call``."""
    if device.type != "cuda":
        return time_call(fn, repeats)
    fn()
    torch.cuda.synchronize(device)
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def timing_rows(device: torch.device, sizes: Sizes, k: int = 4, seed: int = 0) -> list[dict]:
    """Rows {estimator, n, ms, ratio_to_sort} (``rspo_patch.bench.format_table``'s format) on ``device``: torch.sort
    and every estimator on float32 (P, n) rewards made as ``rspo_patch.bench.bench_table`` makes them (uniform; 0/1
    with p = 0.3 for binary-only estimators), k = min(k, n - n_minus_k)."""
    from rspo_patch.estimators import ESTIMATORS

    g = torch.Generator().manual_seed(seed)
    rows = []
    for n in sizes.ns:
        cont = torch.rand(sizes.prompts, n, generator=g).to(device)
        binary = (torch.rand(sizes.prompts, n, generator=g) < 0.3).float().to(device)
        sort_ms = device_time_ms(lambda: torch.sort(cont, dim=1, stable=True), sizes.repeats, device)
        rows.append({"estimator": "torch.sort", "n": n, "ms": sort_ms, "ratio_to_sort": 1.0})
        for name, spec in ESTIMATORS.items():
            kk = min(k, n - (spec.n_minus_k or 0)) if spec.uses_k else 1
            R = binary if spec.binary_only else cont
            ms = device_time_ms(lambda: spec.fn(R, k=kk), sizes.repeats, device)
            rows.append({"estimator": name, "n": n, "ms": ms, "ratio_to_sort": ms / sort_ms})
    return rows


def check_estimators(report: Report, device: torch.device, sizes: Sizes) -> None:
    """One line per registry estimator: equality with the CPU, then its timing row (times measured first, once)."""
    from rspo_patch.estimators import ESTIMATORS

    rows = report.run("estimators/timing", lambda: (
        True, f"P={sizes.prompts}, n={list(sizes.ns)}, median of {sizes.repeats} calls on {device}",
        timing_rows(device, sizes))) or []
    ms = {(r["estimator"], r["n"]): r for r in rows}
    for name, spec in ESTIMATORS.items():
        def one(spec=spec, name=name):
            count, ratio, (kind, n, k, hp, err) = estimator_equality(spec, device, sizes)
            times = " | ".join(f"n={n} {ms[name, n]['ms']:.3f} ms ({ms[name, n]['ratio_to_sort']:.1f}x sort)"
                               for n in sizes.ns if (name, n) in ms)
            tol = (f"tol {EQ_TOL:g}" if name not in LOG_SPACE else
                   f"tol max({EQ_TOL:g}, 48 eps lgamma(n+1)): log space")
            at = f"; worst: {kind} n={n} k={k}{' ' + str(hp) if hp else ''}, {ratio:.2f} x tol" if err > 0 else ""
            return (ratio <= 1.0, f"{device.type} == cpu in float64 on {count} cases, max scaled |diff| {err:.2e} "
                    f"({tol}{at}); {times}")
        report.run(f"estimators/{name}", one)
    if rows:
        print(format_table(rows, list(sizes.ns)), flush=True)


# ---------------------------------------------------------------------------------------------------------------------
# Setup: a char model pre-trained on the device until its rewards are non-zero

def arithmetic_rows() -> list[dict]:
    """The 100 one-digit sums a+b (a, b in 0..9) as {id, question, answer} rows."""
    return [{"id": f"{a}+{b}", "question": f"{a}+{b}", "answer": str(a + b)} for a in range(10) for b in range(10)]


def pretrain_char_model(rows: list[dict], out: str, device: torch.device, *, stop_at: float = 0.10,
                        eval_every: int = 10, max_steps: int = 400, seed: int = 0) -> dict:
    """Pre-train ``rspo_patch.charlm.build_tiny_llama`` (1.06M parameters) on ``rows`` on ``device`` with the pieces of
    ``rspo_patch.pretrain`` (answer-only loss, AdamW 2e-3, batch 256, 50 warm-up steps) until held-out pass@1
    (``heldout_pass1``: 8 samples per row at T = 1, max 4 tokens) >= ``stop_at`` at a check every ``eval_every``
    steps; save it (CPU copy) to ``out``. ValueError if it never gets there. Returns {step, pass1, parameters}."""
    from rspo_patch.charlm import build_char_tokenizer, build_tiny_llama, count_parameters, save_hf_folder
    from rspo_patch.pretrain import answer_loss, encode_examples, heldout_pass1, lr_factor

    tok = build_char_tokenizer(CHARS)
    model = build_tiny_llama(len(tok), tokenizer=tok, seed=seed).to(device)
    ids, att, lmask = (t.to(device) for t in encode_examples(rows, tok, "plain"))
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, steps=max_steps, warmup_steps=50,
                                                                         min_lr_ratio=1.0))
    gen = torch.Generator().manual_seed(seed)
    for step in range(1, max_steps + 1):
        model.train()
        idx = torch.randint(0, ids.shape[0], (256,), generator=gen).to(device)
        loss = answer_loss(model, ids[idx], att[idx], lmask[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % eval_every == 0:
            pass1, _ = heldout_pass1(model, tok, rows, n=8, max_new_tokens=4, template="plain", seed=seed + step)
            if pass1 >= stop_at:
                save_hf_folder(model.to("cpu"), tok, out)
                return {"step": step, "pass1": pass1, "parameters": count_parameters(model)}
    raise ValueError(f"held-out pass@1 never reached {stop_at} in {max_steps} pre-training steps")


# ---------------------------------------------------------------------------------------------------------------------
# Trainer: 20 RL steps on the device

def rising(values: list[float], window: int = RISE_WINDOW, z: float = RISE_Z) -> tuple[bool, float, float]:
    """(rising, d, se) for a per-step series: d = mean(last window) - mean(first window), se = sqrt(s1^2/w + s2^2/w)
    from the sample variances of the two windows; rising iff d > z * se and d > 0. Needs 2 * window values."""
    if len(values) < 2 * window:
        raise ValueError(f"need at least {2 * window} steps to judge a rise, got {len(values)}")
    a, b = values[:window], values[-window:]
    d = statistics.mean(b) - statistics.mean(a)
    se = math.sqrt(statistics.variance(a) / window + statistics.variance(b) / window)
    return d > z * se and d > 0, d, se


def rl_argv(model_dir: str, data: str, out: str, precision: str, device: torch.device, sizes: Sizes) -> list[str]:
    """Command line of ``rspo_patch.train_local`` for the trainer check (rspo_pass k = 4, lr 2e-4, no resume)."""
    return ["--model", model_dir, "--data", data, "--out", out, "--ckpt-dir", out + ".ckpt", "--ckpt-every", "0",
            "--no-resume", "--estimator", RL["estimator"], "--k", str(RL["k"]), "--n", str(sizes.rl_n),
            "--prompts-per-step", str(sizes.rl_prompts), "--steps", str(sizes.rl_steps), "--lr", str(RL["lr"]),
            "--max-new-tokens", str(RL["max_new_tokens"]), "--micro-batch-size", "512", "--template", "plain",
            "--fallback", "last_number", "--seed", "0", "--device", str(device), "--precision", precision,
            "--tensorboard", "off", "--no-progress"]


def run_trainer(model_dir: str, data: str, workdir: str, precision: str, device: torch.device, sizes: Sizes,
                fp32_log: list[dict] | None) -> tuple[bool, str, list[dict]]:
    """Train, then judge the log: every loss and grad norm finite, pass rate ``rising``, some backward pass, GPU memory
    used (CUDA), and for bf16 a log that differs from the fp32 run's (else autocast did nothing)."""
    from rspo_patch import train_local

    out = os.path.join(workdir, f"rl-{precision}")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    train_local.train(rl_argv(model_dir, data, out, precision, device, sizes))
    with open(os.path.join(out, "train_log.jsonl")) as f:
        log = [json.loads(x) for x in f]
    passes = [r["pass_rate"] for r in log]
    ok_rise, d, se = rising(passes)
    finite = all(math.isfinite(r["loss"]) and math.isfinite(r["grad_norm"]) for r in log)
    problems = [] if finite else ["a loss or grad norm is not finite"]
    if not ok_rise:
        problems.append(f"pass rate not rising (d = {d:+.3f} <= {RISE_Z} x se {se:.3f})")
    if not sum(r["num_backward"] for r in log):
        problems.append("no response got a non-zero weight")
    mem = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    if mem == 0:
        problems.append("no CUDA memory was allocated")
    if fp32_log is not None and [r["loss"] for r in fp32_log] == [r["loss"] for r in log]:
        problems.append("bf16 losses are bit-identical to fp32's: autocast had no effect")
    losses = [r["loss"] for r in log]
    first, last = statistics.mean(passes[:RISE_WINDOW]), statistics.mean(passes[-RISE_WINDOW:])
    detail = (f"{len(log)} steps on {device} ({precision}), loss in [{min(losses):.3f}, {max(losses):.3f}] all finite"
              f"={finite}; pass rate first {RISE_WINDOW} {first:.3f} -> last {RISE_WINDOW} {last:.3f} "
              f"(d = {d:+.3f}, {d / se if se else math.inf:.1f} se; rising iff > {RISE_Z} se)"
              + (f"; peak CUDA memory {mem:.0f} MiB" if mem else ""))
    return not problems, detail + ("" if not problems else " -- " + "; ".join(problems)), log


# ---------------------------------------------------------------------------------------------------------------------
# Sampler: tokens on the device vs the CPU

def response_tokens(s) -> list[list[int]]:
    """Each row's response ids up to and including its stop token, from a ``rspo_core.sampler.Samples``."""
    return [row[m.bool()].tolist() for row, m in zip(s.sequences.cpu(), s.response_mask.cpu())]


def first_divergence(a: list[int], b: list[int]) -> int | None:
    """Index of the first position where two token lists differ (a shorter list differs where it ends), or None."""
    for t, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return t
    return None if len(a) == len(b) else min(len(a), len(b))


@torch.no_grad()
def teacher_forced_logits(model, s) -> torch.Tensor:
    """(N, Lr, V) float32 CPU logits that predict response token t of every row of Samples ``s`` (teacher forcing on
    its sequences with ``model``, wherever the model lives)."""
    from rspo_core.sampler import position_ids_from_mask

    dev = next(model.parameters()).device
    seqs, am = s.sequences.to(dev), s.attention_mask.to(dev)
    lp = int(s.response_mask.any(0).nonzero()[0])  # first response column (every row has >= 1 token)
    lr = seqs.shape[1] - lp
    logits = model(input_ids=seqs, attention_mask=am, position_ids=position_ids_from_mask(am), use_cache=False).logits
    return logits[:, lp - 1:lp - 1 + lr].float().cpu()


def near_tie(logits: torch.Tensor, cpu_token: int, dev_token: int, u: float | None) -> float:
    """How far one step was from giving ``dev_token`` instead of ``cpu_token``, on the CPU's float32 logits (V,):
    greedy (u None) logit[cpu_token] - logit[dev_token]; seeded the distance of u * cdf_V (float64, as
    ``inverse_cdf_choice``) to the CDF boundary on dev_token's side: cdf[dev - 1] above it or cdf[dev] below it."""
    if u is None:
        return abs(float(logits[cpu_token] - logits[dev_token]))
    cdf = torch.softmax(logits.double(), -1).cumsum(-1)
    target = u * float(cdf[-1])
    edge = float(cdf[dev_token - 1]) if dev_token > cpu_token else float(cdf[dev_token])
    return abs(edge - target)


def explained(gap: float, d: float, floor: float) -> bool:
    """Whether a first difference at a step with ``near_tie`` value ``gap`` can be float rounding: the two devices'
    logits at that step differ by at most ``d`` (max |.| over the vocabulary), which moves a logit gap, or a CDF
    entry, by at most 2 d; ``floor`` covers cached vs teacher-forced logits on one device."""
    return gap < max(floor, 2 * d)


def compare_sampler(models: dict, tok, rows: list[dict], device: torch.device, *, greedy: bool, samples: int,
                    max_new_tokens: int = 16) -> tuple[bool, str]:
    """Sample every (model name -> (cpu model, device model)) on both devices with the same seeds (greedy, or T = 1
    with ``samples`` seeded rows per problem). Passes iff every row gives the CPU's tokens or first differs at a
    near-tie (``near_tie`` below max(floor, 2 d), d the step's teacher-forced logit difference), at least 90% of the
    rows are identical, and the teacher-forced logits of the CPU's sequences agree within LOGIT_TOL. The same tokens
    up to the first difference mean the same prefix, so teacher-forcing the CPU's sequence gives both devices' logits
    at that step."""
    from rspo_core.prompts import format_prompt
    from rspo_core.sampler import SamplingConfig, problem_seed, row_seeds, row_uniforms, sample, stop_token_ids

    cfg = SamplingConfig(temperature=0.0 if greedy else 1.0, top_p=1.0, max_new_tokens=max_new_tokens)
    prompts = [format_prompt(r["question"], "plain") for r in rows for _ in range(samples)]
    seeds = row_seeds([problem_seed(0, r["id"]) for r in rows], samples)
    floor = GREEDY_FLOOR if greedy else CDF_FLOOR
    ok, parts = True, []
    for name, (cpu_model, dev_model) in models.items():
        stop = stop_token_ids(tok, cpu_model.generation_config.eos_token_id)
        kw = dict(stop_ids=stop, batch_size=len(prompts))
        s_cpu, s_dev = (sample(m, tok, prompts, seeds, cfg, **kw) for m in (cpu_model, dev_model))
        a, b = response_tokens(s_cpu), response_tokens(s_dev)
        tf_cpu, tf_dev = teacher_forced_logits(cpu_model, s_cpu), teacher_forced_logits(dev_model, s_cpu)
        logit_diff = max((float((tf_cpu[i, :len(x)] - tf_dev[i, :len(x)]).abs().max()) for i, x in enumerate(a)),
                         default=0.0)  # over the response steps each row really took
        diverged, unexplained = 0, []
        for i, (x, y) in enumerate(zip(a, b)):
            t = first_divergence(x, y)
            if t is None:
                continue
            diverged += 1
            if t >= min(len(x), len(y)):  # one stopped, the other did not, with the same tokens: cannot happen
                unexplained.append(f"row {i}: same tokens, different lengths")
                continue
            u = None if greedy else float(row_uniforms([seeds[i]], t + 1, "cpu")[0, t])
            gap = near_tie(tf_cpu[i, t], x[t], y[t], u)
            d = float((tf_cpu[i, t] - tf_dev[i, t]).abs().max())
            if not explained(gap, d, floor):
                unexplained.append(f"row {i} step {t}: {'margin' if greedy else 'cdf distance'} {gap:.1e}, d {d:.1e}")
        same = len(a) - diverged
        ok &= not unexplained and same >= 0.9 * len(a) and logit_diff <= LOGIT_TOL
        parts.append(f"{name}: {same}/{len(a)} rows token-identical ({sum(map(len, a))} CPU tokens), "
                     f"{diverged - len(unexplained)} diverged at a near-tie, {len(unexplained)} unexplained"
                     f"{' (' + ', '.join(unexplained[:3]) + ')' if unexplained else ''}, max |logit diff| "
                     f"{logit_diff:.1e} (tol {LOGIT_TOL:g})")
    return ok, "; ".join(parts)


def greedy_bf16_agreement(cpu_model, dev_model, tok, rows: list[dict], device: torch.device) -> str:
    """INFO: the fraction of rows whose greedy tokens under bfloat16 autocast on the device equal the CPU's float32
    tokens (no tolerance: bf16 rounding is ~1e-2, so differences are expected, not a failure)."""
    from rspo_core.prompts import format_prompt
    from rspo_core.sampler import SamplingConfig, sample, stop_token_ids

    cfg = SamplingConfig(temperature=0.0, top_p=1.0, max_new_tokens=16)
    prompts = [format_prompt(r["question"], "plain") for r in rows]
    kw = dict(stop_ids=stop_token_ids(tok, cpu_model.generation_config.eos_token_id), batch_size=len(prompts))
    a = response_tokens(sample(cpu_model, tok, prompts, [0] * len(prompts), cfg, **kw))
    with torch.autocast(device.type, dtype=torch.bfloat16):
        b = response_tokens(sample(dev_model, tok, prompts, [0] * len(prompts), cfg, **kw))
    same = sum(x == y for x, y in zip(a, b))
    return f"greedy, bf16 autocast on {device} vs float32 on cpu: {same}/{len(a)} rows token-identical (not a check)"


def sampler_models(model_dir: str, tok, device: torch.device) -> dict:
    """{"pre-trained": (cpu, device), "random-init": (cpu, device)} float32 eval-mode copies of the check model and of a
    freshly initialised one (flat logits: many near-ties, long responses)."""
    import copy

    from transformers import AutoModelForCausalLM

    from rspo_patch.charlm import build_tiny_llama

    trained = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    fresh = build_tiny_llama(len(tok), tokenizer=tok, seed=1).eval()
    return {name: (m, copy.deepcopy(m).to(device).eval()) for name, m in
            (("pre-trained", trained), ("random-init", fresh))}


# ---------------------------------------------------------------------------------------------------------------------
# Main

def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda", help="cuda, cuda:N, or cpu (the self-test: CPU vs CPU)")
    ap.add_argument("--quick", action="store_true", help="small estimator sizes (the self-test of the test suite)")
    ap.add_argument("--repeats", type=int, default=None, help="timed calls per cell (default 20; --quick 3)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--workdir", default=None, help="where the check model and RL runs go (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the work dir")
    return ap.parse_args(argv)


def pick_device(name: str) -> torch.device | None:
    """The device to check, or None when a CUDA device was asked for and none is visible."""
    if name == "cpu":
        return torch.device("cpu")
    if not name.startswith("cuda"):
        raise SystemExit(f"gpu_check: --device {name!r}: expected cuda, cuda:N or cpu")
    return torch.device(name) if torch.cuda.is_available() else None


def run_checks(device: torch.device, sizes: Sizes, workdir: str) -> tuple[int, int]:
    """Every check in order; returns (failures, checks)."""
    report = Report()
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # no "Loading weights" bars between the check lines
    except ImportError:
        pass
    check_estimators(report, device, sizes)

    rows = arithmetic_rows()
    data, model_dir = os.path.join(workdir, "sums.jsonl"), os.path.join(workdir, "base")
    with open(data, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)

    def setup():
        r = pretrain_char_model(rows, model_dir, device)
        return True, (f"char Llama ({r['parameters']:,} parameters, vocabulary {CHARS!r} + 4 specials) pre-trained on "
                      f"{device} on the 100 one-digit sums: held-out pass@1 {r['pass1']:.3f} >= 0.10 at step "
                      f"{r['step']}")

    report.run("setup", setup)
    fp32_log = report.run("trainer/fp32", lambda: run_trainer(model_dir, data, workdir, "fp32", device, sizes, None),
                          blocked_by="setup")
    report.run("trainer/bf16", lambda: run_trainer(model_dir, data, workdir, "bf16", device, sizes, fp32_log),
               blocked_by="setup")
    state = {}

    def load():
        from transformers import AutoTokenizer

        state["tok"] = AutoTokenizer.from_pretrained(model_dir)
        state["models"] = sampler_models(model_dir, state["tok"], device)
        return True, "the check model and a random-init one, float32, on cpu and on the device"

    report.run("sampler/load", load, blocked_by="setup")
    for greedy, samples, name in ((True, 1, "sampler/greedy-fp32"), (False, 8, "sampler/seeded-fp32")):
        report.run(name, lambda g=greedy, k=samples: compare_sampler(state["models"], state["tok"], rows, device,
                                                                     greedy=g, samples=k), blocked_by="sampler/load")
    if "models" in state:
        try:
            info("sampler/greedy-bf16", greedy_bf16_agreement(*state["models"]["pre-trained"], state["tok"], rows,
                                                              device))
        except Exception as e:  # noqa: BLE001 - a measurement, not a check
            info("sampler/greedy-bf16", f"not measured: {type(e).__name__}: {e}")
    return report.failures, len(report.results)


def main(argv=None) -> int:
    args = parse_args(argv)
    device = pick_device(args.device)
    if device is None:
        print(f"gpu_check: no CUDA device visible (torch {torch.__version__}, CUDA build {torch.version.cuda}, "
              f"torch.cuda.is_available() is False): nothing checked; --device cpu runs the CPU self-test", flush=True)
        return NO_GPU_EXIT
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # local folders only: never wait on a network the machine lacks
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = QUICK if args.quick else Sizes()
    if args.repeats:
        sizes = dataclasses.replace(sizes, repeats=args.repeats)
    print(header(device), flush=True)
    workdir = args.workdir or tempfile.mkdtemp(prefix="gpu_check-")
    os.makedirs(workdir, exist_ok=True)
    t0 = time.perf_counter()
    try:
        failures, total = run_checks(device, sizes, workdir)
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"gpu_check: {total} checks, {failures} failed, {time.perf_counter() - t0:.0f} s on {device}"
          f"{' (SELF-TEST: CPU vs CPU)' if device.type == 'cpu' else ''}", flush=True)
    return min(failures, 100)


if __name__ == "__main__":
    sys.exit(main())
