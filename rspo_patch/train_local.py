"""Single-machine reference trainer: the paper's Algorithm 1 (RSPO and every registry estimator) on any HF causal LM.

Run (the tiny model of config/config.yaml; CPU, ~45 s for 120 steps on 2 cores):

    python -m rspo_patch.train_local --model results/models/tiny --data results/data/arith_train.jsonl \
        --out results/train/tiny-rspo --estimator rspo_pass --k 4 --n 8 --reward pass --steps 120 \
        --prompts-per-step 32 --lr 1e-4 --template plain --max-new-tokens 8 --seed 0

Each step (Algorithm 1): sample P prompts; sample n responses each with the one HF sampler of training and
evaluation, ``rspo_core.sampler.sample`` (full distribution at temperature T; its own random stream per response;
stops at EOS and the chat turn-end tokens; "truncated" = max_new_tokens reached without one); grade every response
with ``rspo_core.grading.grade`` (the one grader of training and evaluation); turn the verdict into a reward with
``rspo_core.rewards`` (``pass``: 0/1, ``max``: the paper's length-penalised reward); turn the (P, n) rewards into
(P, n) weights with any estimator of ``rspo_patch.estimators`` (k from ``k_schedule``); take one AdamW step on

    loss = -(1/(P n)) sum_{p,i} w_{p,i} * A(y_{p,i}),   A = sum_t log pi(y_t | x, y_<t)   (--aggregation sum, default)

``--aggregation``: ``sum`` = the sequence log-likelihood (the paper's estimator, exactly unbiased for grad J_k);
``seq-mean`` = per-sequence mean of token log-probs; ``token-mean`` = sum_{p,i} w_{p,i} sum_t log pi / (total response
tokens of the batch) (DAPO-style; a length-weighted variant). Responses with weight exactly 0 have zero gradient and
skip the forward/backward pass (the paper's §5.1 speed-up; the fraction skipped is logged as ``frac_zero_weight``).

Differences from the paper's verl/OpenRLHF setup (see docs/training.md): one process, no vLLM (HF ``generate``), no
reference-model KL by default (``--kl-coef`` adds a k3 KL to the initial model, off like the paper), a single update
per batch by default (``--ppo-epochs E`` > 1 reuses a batch E times with a PPO clipped ratio, ``--clip-eps``), fp32
(``--precision bf16``: bfloat16 autocast of the forward passes, float32 weights and AdamW state), linear learning-rate
warm-up then constant.

Outputs: ``OUT/model/`` (HF folder with the tokenizer), ``OUT/train_log.jsonl`` (one line per step: step, k,
reward_mean, pass_rate, entropy, weight_mean/std/min/max, frac_zero_weight, tokens_per_s, wall_time, ...),
``OUT/train_config.json`` and ``OUT/tensorboard/`` when tensorboard is importable. OUT is assembled in a temp dir and
renamed into place at the end, so it exists only when complete.

Checkpoints (not a declared output): ``--ckpt-dir`` (default ``<dirname(OUT)>/.ckpt-<basename(OUT)>``) holds
``step_NNNNNN/`` folders (model, optimizer, scheduler and RNG states, the log so far, the config, and ``inputs.json``:
sha256 of the base model's files and of the data file) every ``--ckpt-every`` steps and at the end. A restarted run
resumes from the newest one and produces bit-identical weights to an uninterrupted run: every step's prompt choice is
derived from (seed, step) and every response's sampling seed from (seed, step, prompt slot, sample index) only.
A checkpoint is tied to what it was made from, not to paths: ``--steps`` may be raised on resume (training
continues), but another base model or data file (by content) or another trajectory setting deletes the stale
checkpoints, with a log line naming the change, and starts from step 0.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import random
import re
import shutil
import tempfile
import time

import numpy as np
import torch
from tqdm import tqdm

from rspo_core.cli import parse_strict
from rspo_core.cpu_math import math_backend, math_path
from rspo_core.fingerprint import file_sha256, model_sha256, stale_reason
from rspo_core.hparams import parse_hp
from rspo_core.grading import DEFAULT_TIMEOUT_S
from rspo_core.sampler import SamplingConfig, problem_seed, row_seeds, sample, stop_token_ids
from rspo_patch.charlm import grade_texts, replace_dir, save_hf_folder, sequence_logprobs
from rspo_core.rewards import REWARD_KINDS, reward

log = logging.getLogger("rspo_patch.train_local")

AGGREGATIONS = ("sum", "seq-mean", "token-mean")
PRECISIONS = ("fp32", "bf16")
# settings that may differ between a run and the checkpoint it resumes from: they do not change the trajectory, or
# (model, data) they are paths whose content is compared instead (``input_fingerprint``)
RESUME_FREE = {"steps", "out", "ckpt_dir", "ckpt_every", "keep_ckpts", "tensorboard", "no_progress", "no_resume",
               "gen_batch_size", "threads", "device", "model", "data"}


# ---------------------------------------------------------------------------------------------------------------------
# Settings: every option, grouped, each with its help (nanochat style). ``vars(args)`` is logged and checkpointed.

def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description="RSPO reference trainer (the paper's Algorithm 1) on an HF causal LM",
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = ap.add_argument_group("Model and data")
    g.add_argument("--model", required=True, help="HF model folder to start from (also the KL reference)")
    g.add_argument("--data", required=True, help="training JSONL with {id, question, answer, meta} rows")
    g.add_argument("--out", required=True, help="output folder: OUT/model/, OUT/train_log.jsonl")
    g.add_argument("--template", default="plain",
                   help="prompt template of rspo_core.prompts: plain|chat|chat_answer|qwen_math_cot")
    g.add_argument("--fallback", default="last_number",
                   help="grader fallback when there is no \\boxed{} answer ('none' disables it)")
    g.add_argument("--grade-timeout", type=float, default=DEFAULT_TIMEOUT_S,
                   help="grader: seconds per answer comparison before it counts as a timeout (incorrect)")
    g = ap.add_argument_group("Algorithm")
    g.add_argument("--estimator", default="rspo_pass", help="estimator name from rspo_patch.estimators")
    g.add_argument("--k", type=int, default=1, help="the k of Pass@k / Max@k being optimised (first k of a schedule)")
    g.add_argument("--n", type=int, default=8, help="responses sampled per prompt")
    g.add_argument("--reward", default="pass", choices=REWARD_KINDS, help="pass: 0/1; max: length-penalised")
    g.add_argument("--k-schedule", default="constant", help="constant|linear|cosine (k goes from --k down to 1)")
    g.add_argument("--estimator-hp", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help="estimator hyperparameter(s), e.g. eps=1e-6 for grpo, beta=2 for rs_grpo (repeatable)")
    g.add_argument("--plugin", action="extend", nargs="+", default=[], metavar="MODULE_OR_FILE",
                   help="load a users' estimator plugin first (rspo_patch.estimators.plugins; repeatable); installed "
                        "entry points (group rspo_bench.estimators) are loaded anyway")
    g.add_argument("--estimator-source", default=None, metavar="SHA256",
                   help="expected SHA-256 of the plugin estimator's source (the workflow's fingerprint): refuse to "
                        "train if the plugin changed after the job was planned")
    g = ap.add_argument_group("Sampling")
    g.add_argument("--prompts-per-step", type=int, default=32, help="P: prompts per step (sampled without replacement)")
    g.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (full distribution)")
    g.add_argument("--max-new-tokens", type=int, default=8, help="response token budget (also the max reward's max_len)")
    g.add_argument("--gen-batch-size", type=int, default=512, help="sequences per generate call (memory only)")
    g = ap.add_argument_group("Optimization")
    g.add_argument("--steps", type=int, default=120, help="number of policy updates (Algorithm 1 iterations)")
    g.add_argument("--lr", type=float, default=1e-4, help="AdamW learning rate after warm-up")
    g.add_argument("--warmup-steps", type=int, default=5, help="linear learning-rate warm-up steps")
    g.add_argument("--weight-decay", type=float, default=0.0, help="AdamW weight decay")
    g.add_argument("--grad-clip", type=float, default=1.0, help="clip the gradient norm at this value; 0 disables")
    g.add_argument("--aggregation", default="sum", choices=AGGREGATIONS,
                   help="how token log-probs form a response's term: sum (paper), seq-mean, token-mean")
    g.add_argument("--micro-batch-size", type=int, default=64, help="sequences per forward/backward (memory only)")
    g.add_argument("--ppo-epochs", type=int, default=1, help="updates per batch; > 1 uses the PPO clipped ratio")
    g.add_argument("--clip-eps", type=float, default=0.2, help="PPO ratio clip epsilon (used when --ppo-epochs > 1)")
    g.add_argument("--kl-coef", type=float, default=0.0, help="k3 KL penalty to the initial model (0 = off, as paper)")
    g = ap.add_argument_group("Runtime, checkpoints and logging")
    g.add_argument("--seed", type=int, default=0, help="derives every step's prompt choice and sampling seed")
    g.add_argument("--device", default="auto", help="auto|cpu|cuda|cuda:N")
    g.add_argument("--precision", default="fp32", choices=PRECISIONS,
                   help="fp32, or bf16: bfloat16 autocast of every forward pass (sampling, log-probs) on the "
                        "device; weights, AdamW state and loss stay float32 (mixed precision)")
    g.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads (0 = torch's default); 1 is fastest on a busy/shared machine")
    g.add_argument("--ckpt-dir", default=None, help="checkpoint folder (default: <dirname OUT>/.ckpt-<basename OUT>)")
    g.add_argument("--ckpt-every", type=int, default=20, help="checkpoint every this many steps (and at the end); 0 = end only")
    g.add_argument("--keep-ckpts", type=int, default=1, help="number of newest checkpoints kept")
    g.add_argument("--no-resume", action="store_true", help="ignore (and overwrite) existing checkpoints")
    g.add_argument("--tensorboard", default="auto", choices=("auto", "on", "off"), help="TensorBoard event files")
    g.add_argument("--no-progress", action="store_true", help="disable the tqdm bar")
    return ap


def validate_args(a: argparse.Namespace) -> dict:
    """Check every setting before any model is loaded; return the estimator hyperparameters. ValueError on bad input."""
    if not os.path.isdir(a.model):
        raise ValueError(f"--model {a.model!r} is not a directory (expected an HF model folder)")
    if not os.path.isfile(a.data):
        raise ValueError(f"--data {a.data!r} is not a file (expected a JSONL of {{question, answer}} rows)")
    return check_settings(a)


def check_argv(argv: list[str]) -> None:
    """Parse and check a command line without running it or reading its paths (the workflow calls this before any
    job). ValueError naming the bad flag."""
    check_settings(parse_strict(build_parser(), argv))


def check_settings(a: argparse.Namespace) -> dict:
    """Check every setting except the paths; return the estimator hyperparameters. ValueError on bad input."""
    from rspo_core.prompts import TEMPLATES
    from rspo_patch.estimators import check_estimator_args, load_plugins
    from rspo_patch.estimators.plugins import check_source

    load_plugins(getattr(a, "plugin", None) or [])  # PluginError (a ValueError): one line naming the plugin
    if a.template not in TEMPLATES:
        raise ValueError(f"--template {a.template!r}; expected one of {', '.join(TEMPLATES)}")
    positive = dict(n=a.n, k=a.k, prompts_per_step=a.prompts_per_step, max_new_tokens=a.max_new_tokens, steps=a.steps,
                    micro_batch_size=a.micro_batch_size, ppo_epochs=a.ppo_epochs, gen_batch_size=a.gen_batch_size,
                    keep_ckpts=a.keep_ckpts)
    for name, v in positive.items():
        if v < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {v}")
    for name, v in dict(lr=a.lr, temperature=a.temperature).items():
        if not v > 0:
            raise ValueError(f"--{name} must be > 0, got {v}")
    for name, v in dict(warmup_steps=a.warmup_steps, weight_decay=a.weight_decay, grad_clip=a.grad_clip,
                        kl_coef=a.kl_coef, ckpt_every=a.ckpt_every).items():
        if v < 0:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 0, got {v}")
    if a.ppo_epochs > 1 and not 0 < a.clip_eps < 1:
        raise ValueError(f"--clip-eps must be in (0, 1) with --ppo-epochs > 1, got {a.clip_eps}")
    if a.aggregation not in AGGREGATIONS:
        raise ValueError(f"--aggregation {a.aggregation!r}; expected one of {', '.join(AGGREGATIONS)}")
    from rspo_core.grading import extract_answer

    extract_answer("1", fallback=a.fallback)  # the grader's own check: ValueError naming the accepted fallbacks
    if not a.grade_timeout > 0:
        raise ValueError(f"--grade-timeout must be a positive number of seconds, got {a.grade_timeout}")
    hp = parse_hp(a.estimator_hp)
    check_estimator_args(a.estimator, n=a.n, k=a.k, binary_rewards=(a.reward == "pass"), k_schedule=a.k_schedule, **hp)
    check_source(a.estimator, a.estimator_source, "--estimator-source")
    return hp


def run_config(a: argparse.Namespace, hp: dict) -> dict:
    """The settings saved with checkpoints and outputs: the flags, the parsed hyperparameters, and for a plugin
    estimator its source digest (a changed plugin never resumes a checkpoint of the old one). The plugin flags are
    left out for built-in estimators, so their config is the one the trainer wrote before plugins existed."""
    from rspo_patch.estimators import get_estimator

    config = {**vars(a), "estimator_hp": hp}
    config.pop("plugin")
    config.pop("estimator_source")
    source = get_estimator(a.estimator).source_sha256
    if source is not None:
        config["estimator_source"] = source
    return config


def default_ckpt_dir(out: str) -> str:
    """``<dirname(OUT)>/.ckpt-<basename(OUT)>``: next to the output, hidden, not part of it."""
    out = os.path.abspath(out)
    return os.path.join(os.path.dirname(out), ".ckpt-" + os.path.basename(out))


# ---------------------------------------------------------------------------------------------------------------------
# Seeds derived from loop indices (resume = recompute)

def step_seed(seed: int, step: int, salt: int) -> int:
    return (seed * 1_000_003 + step * 7_919 + salt * 104_729) & 0x7FFFFFFF


def step_row_seeds(seed: int, step: int, P: int, n: int) -> list[int]:
    """Sampling seeds of the P*n rows of ``step``, prompt-major: sample i of batch slot p gets
    ``sample_seed(problem_seed(step_seed(seed, step, 2), str(p)), i)``, so every response has its own random stream
    (``rspo_core.sampler``) and depends on (seed, step, p, i) and the weights only, never on --gen-batch-size."""
    base = step_seed(seed, step, 2)
    return row_seeds([problem_seed(base, str(p)) for p in range(P)], n)


def prompt_indices(seed: int, step: int, num_rows: int, P: int) -> list[int]:
    """P distinct row indices for ``step`` (a seeded permutation; with replacement only if P > num_rows)."""
    g = torch.Generator().manual_seed(step_seed(seed, step, 1))
    if P <= num_rows:
        return torch.randperm(num_rows, generator=g)[:P].tolist()
    return torch.randint(0, num_rows, (P,), generator=g).tolist()


# ---------------------------------------------------------------------------------------------------------------------
# Loss

def policy_loss(token_terms: torch.Tensor, resp_mask: torch.Tensor, weights: torch.Tensor, *, aggregation: str,
                num_seqs: int, total_tokens: int) -> torch.Tensor:
    """-(1/norm) sum_i w_i * agg_t(token_terms[i, t]) over one micro-batch; summing over micro-batches gives the loss.

    token_terms (b, T): log pi per token (or the PPO surrogate per token), zero off the response; resp_mask (b, T);
    weights (b,). sum / seq-mean: norm = P n (``num_seqs``); token-mean: norm = all response tokens of the batch.
    """
    if aggregation == "sum":
        per_seq = token_terms.sum(1)
        return -(weights * per_seq).sum() / num_seqs
    if aggregation == "seq-mean":
        per_seq = token_terms.sum(1) / resp_mask.sum(1).clamp(min=1)
        return -(weights * per_seq).sum() / num_seqs
    if aggregation == "token-mean":
        return -(weights * token_terms.sum(1)).sum() / max(total_tokens, 1)
    raise ValueError(f"unknown aggregation {aggregation!r}; expected one of {', '.join(AGGREGATIONS)}")


# ---------------------------------------------------------------------------------------------------------------------
# Checkpoints

def _rng_state() -> dict:
    st = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def _set_rng_state(st: dict) -> None:
    torch.set_rng_state(st["torch"])
    np.random.set_state(st["numpy"])
    random.setstate(st["python"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def input_fingerprint(model_dir: str, data: str) -> dict:
    """What a run is made from besides its settings: sha256 of the base model's files and of the data file, and the
    CPU math path (rspo_core.cpu_math.math_path: torch version, ATen capability, MKL / oneDNN pins), so that a run
    killed on one path is not continued on another (e.g. a Slurm retry on another node type)."""
    return {"model_sha256": model_sha256(model_dir), "data_sha256": file_sha256(data), **math_path()}


def save_checkpoint(ckpt_dir: str, step: int, model, opt, sched, log_lines: list[dict], config: dict,
                    keep: int, inputs: dict) -> str:
    """Write ``ckpt_dir/step_{step:06d}/`` atomically (temp dir + rename); keep the ``keep`` newest."""
    os.makedirs(ckpt_dir, exist_ok=True)
    final = os.path.join(ckpt_dir, f"step_{step:06d}")
    tmp = tempfile.mkdtemp(prefix=".tmp-step-", dir=ckpt_dir)
    torch.save({"step": step, "model": model.state_dict(), "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(), "rng": _rng_state()}, os.path.join(tmp, "state.pt"))
    with open(os.path.join(tmp, "log.jsonl"), "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in log_lines)
    with open(os.path.join(tmp, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(tmp, "inputs.json"), "w") as f:
        json.dump(inputs, f, indent=2)
    if os.path.exists(final):
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in list_checkpoints(ckpt_dir)[:-keep]:
        shutil.rmtree(old)
    return final


def list_checkpoints(ckpt_dir: str) -> list[str]:
    """Complete checkpoints (``step_NNNNNN`` with state.pt), oldest first."""
    if not os.path.isdir(ckpt_dir):
        return []
    names = sorted(d for d in os.listdir(ckpt_dir) if re.fullmatch(r"step_\d{6}", d)
                   and os.path.isfile(os.path.join(ckpt_dir, d, "state.pt")))
    return [os.path.join(ckpt_dir, d) for d in names]


def checkpoint_stale_reason(ckpt: str, config: dict, inputs: dict) -> str | None:
    """Why checkpoint folder ``ckpt`` was not made from this run's inputs (None if it was): the first
    trajectory-relevant setting that differs, or a changed base model / data file (``inputs``: input_fingerprint)."""
    with open(os.path.join(ckpt, "config.json")) as f:
        saved = {"precision": "fp32", **json.load(f)}  # checkpoints from before --precision existed ran fp32
    for key in sorted(set(saved) | set(config)):
        if key not in RESUME_FREE and saved.get(key) != config.get(key):
            return f"setting {key!r} is {config.get(key)!r} but the checkpoint used {saved.get(key)!r}"
    path = os.path.join(ckpt, "inputs.json")
    saved_inputs = json.load(open(path)) if os.path.isfile(path) else None
    return stale_reason(saved_inputs, inputs)


def resume(ckpt_dir: str, config: dict, inputs: dict, model, opt, sched, *, no_resume: bool, steps: int,
           device) -> tuple[int, list]:
    """Load the newest checkpoint of ``ckpt_dir`` into model, optimizer, scheduler and the RNGs; return (its step,
    its log lines), or (0, []) when there is none. Checkpoints made from other settings, another base model or other
    data are deleted (with a log line saying why) and the run starts fresh; so does ``no_resume``."""
    ckpts = [] if no_resume else list_checkpoints(ckpt_dir)
    reason = checkpoint_stale_reason(ckpts[-1], config, inputs) if ckpts else None
    if reason:
        log.warning("not resuming from %s: %s; deleting the stale checkpoints of %s and starting from step 0",
                    ckpts[-1], reason, ckpt_dir)
    if not ckpts or reason:
        if os.path.isdir(ckpt_dir) and (no_resume or reason):
            shutil.rmtree(ckpt_dir)
        return 0, []
    st = torch.load(os.path.join(ckpts[-1], "state.pt"), map_location=device, weights_only=False)
    if st["step"] > steps:
        raise ValueError(f"checkpoint {ckpts[-1]} is at step {st['step']} > --steps {steps}")
    model.load_state_dict(st["model"])
    opt.load_state_dict(st["optimizer"])
    sched.load_state_dict(st["scheduler"])
    _set_rng_state(st["rng"])
    with open(os.path.join(ckpts[-1], "log.jsonl")) as f:
        log_lines = [json.loads(x) for x in f if x.strip()]
    log.info("resumed from %s (step %d)", ckpts[-1], st["step"])
    return st["step"], log_lines


def open_tensorboard(mode: str, tb_dir: str, start: int):
    """(SummaryWriter or None, its folder or None) for --tensorboard on|auto|off; events after ``start`` are purged
    (a resumed run rewrites the steps since its checkpoint)."""
    if mode == "off":
        return None, None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        if mode == "on":
            raise
        return None, None
    return SummaryWriter(tb_dir, purge_step=start + 1), tb_dir


# ---------------------------------------------------------------------------------------------------------------------
# Outputs

def write_outputs_atomic(out: str, model, tokenizer, log_lines: list[dict], config: dict, tb_dir: str | None) -> None:
    """Assemble OUT in a temp dir next to it, then rename it into place (replacing an older OUT)."""
    out = os.path.abspath(out)
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-" + os.path.basename(out) + "-", dir=parent)
    save_hf_folder(model, tokenizer, os.path.join(tmp, "model"))
    with open(os.path.join(tmp, "train_log.jsonl"), "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in log_lines)
    with open(os.path.join(tmp, "train_config.json"), "w") as f:
        json.dump({**config, "cpu_math": math_backend()}, f, indent=2)  # the math it ran on (not a resume key)
    if tb_dir and os.path.isdir(tb_dir):
        shutil.copytree(tb_dir, os.path.join(tmp, "tensorboard"))
    replace_dir(tmp, out)


def _weight_stats(w: torch.Tensor) -> dict:
    w = w.double().flatten()
    return {"weight_mean": float(w.mean()), "weight_std": float(w.std(unbiased=False)), "weight_min": float(w.min()),
            "weight_max": float(w.max()), "frac_zero_weight": float((w == 0).double().mean())}


# ---------------------------------------------------------------------------------------------------------------------
# The rarely used branches of the update: PPO epochs (clipped ratio) and the KL penalty

@torch.no_grad()
def frozen_logprobs(model, seqs, amask, rmask, micro: list[torch.Tensor]) -> list[torch.Tensor]:
    """Per-token log-probs (b, L-1) of each micro-batch under ``model`` without gradients: the old policy of the PPO
    ratio, or the reference model of the KL term."""
    return [sequence_logprobs(model, seqs[mb], amask[mb], rmask[mb]) for mb in micro]


def ppo_clipped_terms(logp: torch.Tensor, old_logp: torch.Tensor, weights: torch.Tensor, mask: torch.Tensor,
                      clip_eps: float) -> torch.Tensor:
    """PPO clipped surrogate per token (b, L-1) with advantage = weight: min(r A, clip(r) A) = A * term, where
    r = exp(logp - old_logp) and term = min(r, clip r) for A >= 0, max(r, clip r) for A < 0 (equal to logp's gradient
    at r = 1). ``policy_loss`` multiplies by the weights."""
    ratio = torch.exp(logp - old_logp)
    clipped = ratio.clamp(1 - clip_eps, 1 + clip_eps)
    pos = (weights >= 0).unsqueeze(1)
    return torch.where(pos, torch.minimum(ratio, clipped), torch.maximum(ratio, clipped)) * mask


def kl_penalty(logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor, *, kl_coef: float,
               **norm) -> torch.Tensor:
    """kl_coef * KL(pi || pi_ref) of one micro-batch: the k3 estimator exp(d) - d - 1 per token, d = log pi_ref -
    log pi, aggregated like the policy term (``norm``: aggregation, num_seqs, total_tokens); policy_loss negates,
    hence the minus sign."""
    d = (ref_logp - logp) * mask
    kl_tok = (torch.exp(d) - d - 1) * mask
    return -kl_coef * policy_loss(kl_tok, mask, torch.ones(len(logp), device=logp.device), **norm)


def forward_precision(precision: str, device: torch.device):
    """Context for the model's forward passes: bfloat16 autocast on ``device`` for "bf16", nothing for "fp32" (the
    default runs exactly the code it ran before the option existed)."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


# ---------------------------------------------------------------------------------------------------------------------
# Training

def train(argv: list[str] | None = None) -> dict:
    """Run the trainer with CLI-style ``argv``; return {"out", "final_step", "last": last log line}."""
    # ---- settings: checked before anything is loaded
    a = build_parser().parse_args(argv)
    hp = validate_args(a)
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    config = run_config(a, hp)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rspo_core.prompts import adds_special_tokens, format_prompt
    from rspo_patch.estimators import get_estimator, k_schedule
    from rspo_patch.pretrain import read_rows

    # ---- data, model, optimizer
    spec = get_estimator(a.estimator)
    rows = read_rows(a.data)
    tok = AutoTokenizer.from_pretrained(a.model)
    tok.padding_side = "left"
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    prompts = [format_prompt(r["question"], a.template, tok) for r in rows]  # ValueError for 'chat' w/o template
    golds = [str(r["answer"]) for r in rows]
    fallback = None if a.fallback in ("none", "") else a.fallback
    device = torch.device("cuda" if a.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if a.device == "auto" else a.device))
    torch.manual_seed(a.seed)
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32).to(device)
    model.generation_config.pad_token_id = tok.pad_token_id
    stop_ids = stop_token_ids(tok, model.generation_config.eos_token_id)
    # the full distribution at temperature T (top_p = 1)
    sampling = SamplingConfig(temperature=a.temperature, top_p=1.0, max_new_tokens=a.max_new_tokens)
    ref_model = None
    if a.kl_coef > 0:  # the initial model, frozen
        ref_model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32).to(device).eval()
        ref_model.requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=a.weight_decay)
    warmup = (lambda s: min(1.0, (s + 1) / a.warmup_steps)) if a.warmup_steps else (lambda s: 1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup)

    # ---- resume from the newest checkpoint made from the same inputs, if any
    ckpt_dir = a.ckpt_dir or default_ckpt_dir(a.out)
    inputs = input_fingerprint(a.model, a.data)
    start, log_lines = resume(ckpt_dir, config, inputs, model, opt, sched, no_resume=a.no_resume, steps=a.steps,
                              device=device)
    tb, tb_dir = open_tensorboard(a.tensorboard, os.path.join(ckpt_dir, "tensorboard"), start)

    # ---- training loop (Algorithm 1)
    time_offset = log_lines[-1]["wall_time"] if log_lines else 0.0
    t0 = time.time()
    P, n = a.prompts_per_step, a.n
    num_seqs = P * n
    bar = tqdm(range(start, a.steps), initial=start, total=a.steps, disable=a.no_progress,
               desc=f"{a.estimator} k={a.k}")
    for step in bar:
        ts = time.time()
        k_t = k_schedule(a.k_schedule, a.k, step, a.steps)
        idx = prompt_indices(a.seed, step, len(rows), P)

        # ---- 1. sample n responses per prompt (the one sampler of training and evaluation)
        with forward_precision(a.precision, device):
            s = sample(model, tok, [prompts[i] for i in idx for _ in range(n)], step_row_seeds(a.seed, step, P, n),
                       sampling, stop_ids=stop_ids, add_special_tokens=adds_special_tokens(a.template),
                       batch_size=a.gen_batch_size, record_entropy=True)
        t_gen = time.time() - ts

        # ---- 2. grade and reward (one grader for training and evaluation)
        correct = grade_texts(s.texts, [golds[i] for i in idx for _ in range(n)], s.finish_reasons, fallback=fallback,
                              timeout=a.grade_timeout)
        rewards = torch.tensor([reward(a.reward, c, nt, a.max_new_tokens) for c, nt in zip(correct, s.num_tokens)],
                               dtype=torch.float64).view(P, n)  # (P, n)

        # ---- 3. weights from the registry
        w = spec.fn(rewards, k=k_t, **hp).view(-1)  # (P*n,)

        # ---- 4. update: only responses with nonzero weight need a backward pass (unless the KL term is on)
        seqs = s.sequences.to(device)
        amask, rmask = s.attention_mask.to(device), s.response_mask.to(device)
        norm = dict(aggregation=a.aggregation, num_seqs=num_seqs, total_tokens=int(rmask.sum()))
        active = torch.nonzero(w != 0).flatten() if ref_model is None else torch.arange(num_seqs)
        w_dev = w.to(device=device, dtype=torch.float32)
        micro = [active[i:i + a.micro_batch_size] for i in range(0, len(active), a.micro_batch_size)]
        with forward_precision(a.precision, device):
            old_logp = frozen_logprobs(model, seqs, amask, rmask, micro) if a.ppo_epochs > 1 else None
            ref_logp = frozen_logprobs(ref_model, seqs, amask, rmask, micro) if ref_model is not None else None
        model.train()
        loss_total, grad_norm = 0.0, 0.0
        for _ in range(a.ppo_epochs):
            opt.zero_grad(set_to_none=True)
            for j, mb in enumerate(micro):
                m = rmask[mb][:, 1:].float()
                with forward_precision(a.precision, device):  # log-probs come out float32 either way
                    logp = sequence_logprobs(model, seqs[mb], amask[mb], rmask[mb])  # (b, L-1)
                terms = logp if old_logp is None else ppo_clipped_terms(logp, old_logp[j], w_dev[mb], m, a.clip_eps)
                loss = policy_loss(terms, m, w_dev[mb], **norm)
                if ref_logp is not None:
                    loss = loss + kl_penalty(logp, ref_logp[j], m, kl_coef=a.kl_coef, **norm)
                loss.backward()
                loss_total += loss.item() / a.ppo_epochs
            if micro and a.grad_clip > 0:
                grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), a.grad_clip))
            opt.step()  # parameters without a gradient (nothing active) are left untouched by AdamW
        lr_used = opt.param_groups[0]["lr"]
        sched.step()

        # ---- 5. log and checkpoint
        dt = time.time() - ts
        ntok = torch.tensor(s.num_tokens, dtype=torch.float64)
        rec = {"step": step + 1, "k": k_t, "reward_mean": float(rewards.mean()),
               "pass_rate": float(np.mean(correct)),
               "entropy": float((s.entropy.double() * ntok).sum() / ntok.sum().clamp(min=1)),
               **_weight_stats(w), "num_backward": int(len(active)), "loss": loss_total, "grad_norm": grad_norm,
               "lr": lr_used, "response_len_mean": float(ntok.mean()),
               "frac_truncated": float(np.mean([f == "length" for f in s.finish_reasons])),
               "tokens_per_s": float(ntok.sum()) / dt, "gen_s": t_gen, "step_s": dt,
               "wall_time": time_offset + time.time() - t0}
        log_lines.append(rec)
        if tb is not None:
            for key, v in rec.items():
                if key != "step":
                    tb.add_scalar(f"train/{key}", v, step + 1)
        bar.set_postfix(reward=f"{rec['reward_mean']:.3f}", zero=f"{rec['frac_zero_weight']:.2f}")
        if (a.ckpt_every and (step + 1) % a.ckpt_every == 0) or step + 1 == a.steps:
            save_checkpoint(ckpt_dir, step + 1, model, opt, sched, log_lines, config, a.keep_ckpts, inputs)
    if tb is not None:
        tb.close()
    write_outputs_atomic(a.out, model, tok, log_lines, config, tb_dir)
    log.info("wrote %s (%d steps)", a.out, a.steps)
    return {"out": os.path.abspath(a.out), "final_step": a.steps, "last": log_lines[-1] if log_lines else None}


def main(argv: list[str] | None = None) -> dict:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    return train(argv)


if __name__ == "__main__":
    main()
