"""Pre-train a char-level Llama on arithmetic until its held-out pass@1 first reaches a threshold (a weak start).

    python -m rspo_patch.pretrain --train results/data/arith_train.jsonl --heldout results/data/arith_test.jsonl \
        --out results/models/tiny [--stop-at-pass1 0.10 --eval-every 10] [--steps 600] [--expect-pass1 0.10 0.17]

RL needs a weak start (a model that solves some problems some of the time; research/tiny-rl.md), and the start must
not depend on the machine. Held-out pass@1 of this model rises through a steep, seed-dependent jump: with the same
recipe, seed 0 reached 0.155 after 300 steps and seed 1 0.071, and after 400 steps 0.80 and 0.13. A fixed step
budget therefore lands anywhere on that jump; so did the earlier rule "stop at the first evaluation (every 20 steps)
inside the band [0.06, 0.2]" (0.066 on one machine, 0.106 on another). What RL depends on is the start's quality, so
that is what is fixed: held-out pass@1 at T = 1.0 (mean correctness of ``--eval-samples`` samples of each of the first
``--eval-problems`` held-out problems, from ``rspo_core.sampler``, the sampler of training and evaluation) is
measured every ``--eval-every`` steps, and with ``--stop-at-pass1 TAU`` training stops at the first measurement
>= TAU. Checked every 10 steps on 1,600 samples, the overshoot is at most one check interval's rise plus the
estimate's noise (sd ~0.008 at 0.1); the steepest 10-step rise measured was 0.064 (0.095 -> 0.159), so the start lands
in [TAU, TAU + ~0.07] whatever step it takes to get there (docs/training.md).
Without ``--stop-at-pass1`` (or if TAU is never reached) training runs the full ``--steps`` budget. ``--expect-pass1
LO HI`` states the documented range of the final pass@1: outside it the model is still saved, with a warning and
``"in_expected_range": false`` in the summary (and in ``results/tables/base_models.csv``, which the report shows).

Learning rate: linear warm-up, then cosine decay over ``--steps`` to ``--min-lr-ratio`` x peak (1.0: constant).

Model: ``LlamaForCausalLM`` (default 4 layers, d=128, 4 heads, MLP 512: ~1.06M parameters; ``--hidden/--layers/
--heads/--intermediate`` give other sizes) over a character vocabulary (digits, ``+-*/=()``, space, a-z,
``.,?!:'$``, plus any other character in the data), saved as a real HF tokenizer. Training text is
``"<bos>{question}={answer}<eos>"``; the loss covers the answer characters and the EOS only. AdamW, batch 256 sampled
with a seeded generator: re-running gives bit-identical weights on the same machine and thread count, and on machines
of the same CPU kind when the CPU math is pinned (rspo_core.cpu_math; the workflow does it; not across CPU vendors:
docs/reproducibility.md).

Output (written to a temp dir, then renamed): OUT/ = HF model folder + tokenizer + ``pretrain_log.jsonl`` (one line per
step: step, loss, lr, wall_time; evaluation steps add pass@1 and entropy) + ``pretrain_summary.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import tempfile
import time

import torch
from tqdm import tqdm

from rspo_core.cli import parse_strict
from rspo_core.cpu_math import math_backend
from rspo_core.jsonl import read_jsonl
from rspo_core.sampler import SamplingConfig, problem_seed, row_seeds, sample, stop_token_ids
from rspo_patch.charlm import (build_char_tokenizer, build_tiny_llama, charset_for, count_parameters, grade_texts,
                               replace_dir, save_hf_folder)

log = logging.getLogger("rspo_patch.pretrain")


def read_rows(path: str) -> list[dict]:
    """Rows of a JSONL file with at least ``question`` and ``answer``; ValueError naming the file and line of a damaged
    line (``rspo_core.jsonl.read_jsonl``), a row without those fields, or an empty file."""
    rows = read_jsonl(path)
    for i, row in enumerate(rows):
        if "question" not in row or "answer" not in row:
            raise ValueError(f"{path}: row {i + 1} needs 'question' and 'answer', got keys {sorted(row)}")
    if not rows:
        raise ValueError(f"{path}: no rows")
    return rows


def encode_examples(rows: list[dict], tokenizer, template: str = "plain") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded token ids (N, L), attention mask (N, L) and loss mask (N, L) for ``prompt + answer + <eos>``.

    The loss mask is 1 on the answer characters and the EOS (answer-only loss), 0 on the prompt and padding.
    """
    from rspo_core.prompts import format_prompt

    seqs, masks = [], []
    for r in rows:
        p = tokenizer(format_prompt(r["question"], template, tokenizer))["input_ids"]
        a = tokenizer(str(r["answer"]), add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        seqs.append(p + a)
        masks.append([0] * len(p) + [1] * len(a))
    L = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), L), tokenizer.pad_token_id, dtype=torch.long)
    att = torch.zeros((len(seqs), L), dtype=torch.long)
    lmask = torch.zeros((len(seqs), L), dtype=torch.long)
    for i, (s, m) in enumerate(zip(seqs, masks)):
        ids[i, : len(s)] = torch.tensor(s)
        att[i, : len(s)] = 1
        lmask[i, : len(m)] = torch.tensor(m)
    return ids, att, lmask


def answer_loss(model, ids: torch.Tensor, att: torch.Tensor, lmask: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over answer positions: logits at t predict token t+1 where lmask[t+1] = 1."""
    logits = model(input_ids=ids, attention_mask=att, use_cache=False).logits[:, :-1]
    tgt = ids[:, 1:]
    m = lmask[:, 1:].float()
    nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), tgt.reshape(-1),
                                            reduction="none").view_as(m)
    return (nll * m).sum() / m.sum()


@torch.no_grad()
def heldout_pass1(model, tokenizer, rows: list[dict], *, n: int, max_new_tokens: int, template: str, seed: int,
                  batch_size: int = 1024) -> tuple[float, float]:
    """(pass@1, entropy) on ``rows`` from n samples per problem at T=1 with the one sampler of training and evaluation.

    pass@1 = mean correctness over all P*n samples (the unbiased pass@1 c/n averaged over problems; grader fallback
    last_number); problem p's seed is ``problem_seed(seed, id_p)``. entropy = mean over samples of the mean token
    entropy of the sampling distribution.
    """
    from rspo_core.prompts import adds_special_tokens, format_prompt

    prompts = [format_prompt(r["question"], template, tokenizer) for r in rows for _ in range(n)]
    seeds = row_seeds([problem_seed(seed, str(r.get("id", i))) for i, r in enumerate(rows)], n)
    sampling = SamplingConfig(temperature=1.0, top_p=1.0, max_new_tokens=max_new_tokens)
    s = sample(model, tokenizer, prompts, seeds, sampling,
               stop_ids=stop_token_ids(tokenizer, model.generation_config.eos_token_id),
               add_special_tokens=adds_special_tokens(template), batch_size=batch_size, record_entropy=True)
    correct = grade_texts(s.texts, [str(r["answer"]) for r in rows for _ in range(n)], s.finish_reasons)
    return sum(correct) / len(correct), float(s.entropy.mean())


def check_settings(*, expect_pass1, lr: float, warmup_steps: int, min_lr_ratio: float, eval_every: int,
                   stop_at_pass1: float | None = None, **positive) -> tuple[float, float] | None:
    """ValueError naming the first bad setting; returns the expected range (lo, hi) or None. ``positive``: integers
    that must be >= 1 (steps, batch_size, eval_problems, eval_samples, max_new_tokens, hidden, layers, ...)."""
    for name, v in positive.items():
        if int(v) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {v}")
    if not lr > 0 or warmup_steps < 0:
        raise ValueError(f"need --lr > 0 and --warmup-steps >= 0, got lr={lr}, warmup_steps={warmup_steps}")
    if not 0.0 <= min_lr_ratio <= 1.0:
        raise ValueError(f"--min-lr-ratio must be in [0, 1], got {min_lr_ratio}")
    if eval_every < 0:
        raise ValueError(f"--eval-every must be >= 0 (0: evaluate at the end only), got {eval_every}")
    if stop_at_pass1 is not None and not (0.0 < stop_at_pass1 <= 1.0 and eval_every >= 1):
        raise ValueError(f"--stop-at-pass1 {stop_at_pass1}: expected a threshold in (0, 1] and --eval-every >= 1 "
                         f"(the checks), got --eval-every {eval_every}")
    if expect_pass1 is None:
        return None
    lo, hi = map(float, expect_pass1)
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f"--expect-pass1 must satisfy 0 <= lo <= hi <= 1, got {lo} {hi}")
    return lo, hi


def lr_factor(step: int, *, steps: int, warmup_steps: int, min_lr_ratio: float) -> float:
    """Multiplier of the peak lr at optimizer step ``step`` (0-based): linear warm-up (step+1)/warmup over the first
    ``warmup_steps`` steps, then cosine decay from 1 to ``min_lr_ratio`` at the last step ``steps - 1``:
    r + (1 - r) (1 + cos(pi t)) / 2 with t = (step - warmup) / max(1, steps - 1 - warmup)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    t = min(1.0, (step - warmup_steps) / max(1, steps - 1 - warmup_steps))
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))


def save_hf_atomic(model, tokenizer, out: str, extra_files: dict[str, str]) -> None:
    """Save model + tokenizer + extra text files into a temp dir next to ``out``, then rename it to ``out``."""
    parent = os.path.dirname(os.path.abspath(out)) or "."
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-" + os.path.basename(out) + "-", dir=parent)
    save_hf_folder(model, tokenizer, tmp)
    for name, text in extra_files.items():
        with open(os.path.join(tmp, name), "w") as f:
            f.write(text)
    replace_dir(tmp, out)


def pretrain(train_path: str, heldout_path: str, out: str, *, steps: int = 600, stop_at_pass1: float | None = None,
             expect_pass1=None, seed: int = 0,
             batch_size: int = 256, lr: float = 2e-3, warmup_steps: int = 50, min_lr_ratio: float = 1.0,
             eval_every: int = 50, eval_problems: int = 200, eval_samples: int = 8, max_new_tokens: int = 8,
             weight_decay: float = 0.0, template: str = "plain", progress: bool = True,
             model_kwargs: dict | None = None) -> dict:
    """Train from scratch for at most ``steps`` optimizer steps (stopping at the first held-out pass@1 >= stop_at_pass1
    if given); return the summary dict (also OUT/pretrain_summary.json).

    ``model_kwargs`` overrides the architecture of ``build_tiny_llama`` (hidden, layers, heads, intermediate).
    """
    expected = check_settings(expect_pass1=expect_pass1, lr=lr, warmup_steps=warmup_steps, min_lr_ratio=min_lr_ratio,
                              eval_every=eval_every, stop_at_pass1=stop_at_pass1, steps=steps, batch_size=batch_size,
                              eval_problems=eval_problems,
                              eval_samples=eval_samples, max_new_tokens=max_new_tokens, **(model_kwargs or {}))
    train_rows, held_rows = read_rows(train_path), read_rows(heldout_path)
    held_rows = held_rows[:eval_problems]

    torch.manual_seed(seed)
    chars = charset_for([r["question"] + "=" + str(r["answer"]) for r in train_rows + held_rows])
    tok = build_char_tokenizer(chars)
    model = build_tiny_llama(len(tok), tokenizer=tok, seed=seed, **(model_kwargs or {}))
    ids, att, lmask = encode_examples(train_rows, tok, template)
    log.info("tiny llama: %d parameters, vocab %d, %d train / %d held-out rows, %d steps", count_parameters(model),
             len(tok), len(train_rows), len(held_rows), steps)

    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, steps=steps, warmup_steps=warmup_steps, min_lr_ratio=min_lr_ratio))
    gen = torch.Generator().manual_seed(seed)  # batch sampling only; evaluation seeds are derived from the step

    def evaluate(step: int) -> tuple[float, float]:
        return heldout_pass1(model, tok, held_rows, n=eval_samples, max_new_tokens=max_new_tokens,
                             template=template, seed=seed * 100003 + step)

    lines = []
    t0 = time.time()
    bar = tqdm(range(1, steps + 1), disable=not progress, desc="pretrain")
    for step in bar:
        model.train()
        idx = torch.randint(0, ids.shape[0], (batch_size,), generator=gen)
        L = int(att[idx].sum(1).max())  # trim padding columns
        loss = answer_loss(model, ids[idx, :L], att[idx, :L], lmask[idx, :L])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        rec = {"step": step, "loss": loss.item(), "lr": opt.param_groups[0]["lr"], "wall_time": time.time() - t0}
        sched.step()
        if step == steps or (eval_every and step % eval_every == 0):
            rec["pass@1"], rec["entropy"] = evaluate(step)
            bar.set_postfix(loss=f"{loss.item():.3f}", pass1=f"{rec['pass@1']:.3f}")
        lines.append(rec)
        if stop_at_pass1 is not None and rec.get("pass@1", -1.0) >= stop_at_pass1:
            break
    final = lines[-1]
    reached = None if stop_at_pass1 is None else final["pass@1"] >= stop_at_pass1
    if reached is False:
        log.warning("held-out pass@1 never reached %.3f in %d steps; saving the last step (pass@1 %.3f)",
                    stop_at_pass1, steps, final["pass@1"])
    in_range = None if expected is None else bool(expected[0] <= final["pass@1"] <= expected[1])
    if in_range is False:
        log.warning("held-out pass@1 %.3f after %d steps is outside the expected range [%.3f, %.3f]: the RL start "
                    "differs from the documented one (the model is saved; see pretrain_summary.json)",
                    final["pass@1"], final["step"], *expected)
    summary = {"steps": final["step"], "max_steps": steps, "stop_at_pass1": stop_at_pass1, "reached_threshold": reached,
               "heldout_pass@1": final["pass@1"], "heldout_entropy": final["entropy"],
               "expect_pass1": None if expected is None else list(expected), "in_expected_range": in_range,
               "seed": seed, "parameters": count_parameters(model), "vocab_size": len(tok),
               "architecture": dict(model_kwargs or {}), "lr": lr, "warmup_steps": warmup_steps,
               "min_lr_ratio": min_lr_ratio, "batch_size": batch_size, "eval_samples": eval_samples,
               "eval_problems": len(held_rows), "threads": torch.get_num_threads(), "wall_time": time.time() - t0,
               "train": os.path.abspath(train_path), "heldout": os.path.abspath(heldout_path),
               "cpu_math": math_backend()}
    save_hf_atomic(model, tok, out, {
        "pretrain_log.jsonl": "".join(json.dumps(r) + "\n" for r in lines),
        "pretrain_summary.json": json.dumps(summary, indent=2) + "\n",
    })
    log.info("saved step %d (held-out pass@1 %.3f) to %s", final["step"], final["pass@1"], out)
    return summary


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--train", required=True, help="training JSONL ({id, question, answer, meta})")
    ap.add_argument("--heldout", required=True, help="held-out JSONL of the logged and final pass@1")
    ap.add_argument("--out", required=True, help="output HF model folder")
    ap.add_argument("--steps", type=int, default=600, help="optimizer steps at most (the budget)")
    ap.add_argument("--stop-at-pass1", type=float, default=None, metavar="TAU",
                    help="stop at the first evaluation (every --eval-every steps) with held-out pass@1 >= TAU")
    ap.add_argument("--expect-pass1", nargs=2, type=float, default=None, metavar=("LO", "HI"),
                    help="documented range of the final held-out pass@1 (outside: warning + summary flag)")
    ap.add_argument("--seed", type=int, default=0, help="seeds init, batches and evaluation sampling")
    # Optimisation
    ap.add_argument("--batch-size", type=int, default=256, help="sequences per step")
    ap.add_argument("--lr", type=float, default=2e-3, help="AdamW peak learning rate")
    ap.add_argument("--warmup-steps", type=int, default=50, help="linear warm-up steps, then cosine decay")
    ap.add_argument("--min-lr-ratio", type=float, default=1.0,
                    help="lr at step --steps as a fraction of --lr (cosine decay; 1.0: constant after warm-up)")
    # Model
    ap.add_argument("--hidden", type=int, default=128, help="model width")
    ap.add_argument("--layers", type=int, default=4, help="transformer blocks")
    ap.add_argument("--heads", type=int, default=4, help="attention heads")
    ap.add_argument("--intermediate", type=int, default=512, help="MLP width")
    # Evaluation
    ap.add_argument("--eval-every", type=int, default=50,
                    help="log held-out pass@1 every this many steps (0: only at the end, which is always evaluated)")
    ap.add_argument("--eval-problems", type=int, default=200, help="held-out problems used (first N rows)")
    ap.add_argument("--eval-samples", type=int, default=8, help="samples per problem at T=1.0 for pass@1")
    ap.add_argument("--max-new-tokens", type=int, default=8, help="answer length budget when sampling")
    ap.add_argument("--no-progress", action="store_true", help="disable the tqdm bar")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch CPU threads (0 = torch's default); 1 is fastest on a busy/shared machine")
    return ap


def _model_kwargs(a: argparse.Namespace) -> dict:
    return dict(hidden=a.hidden, layers=a.layers, heads=a.heads, intermediate=a.intermediate)


def check_argv(argv: list[str]) -> None:
    """Parse and check a command line without running it or reading its paths (the workflow calls this before any
    job). ValueError naming the bad flag."""
    a = parse_strict(build_parser(), argv)
    check_settings(expect_pass1=a.expect_pass1, lr=a.lr, warmup_steps=a.warmup_steps, min_lr_ratio=a.min_lr_ratio,
                   eval_every=a.eval_every, stop_at_pass1=a.stop_at_pass1, steps=a.steps, batch_size=a.batch_size,
                   eval_problems=a.eval_problems,
                   eval_samples=a.eval_samples, max_new_tokens=a.max_new_tokens, **_model_kwargs(a))


def main(argv=None) -> dict:
    a = build_parser().parse_args(argv)
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    s = pretrain(a.train, a.heldout, a.out, steps=a.steps, stop_at_pass1=a.stop_at_pass1, expect_pass1=a.expect_pass1,
                 seed=a.seed,
                 batch_size=a.batch_size, lr=a.lr, warmup_steps=a.warmup_steps, min_lr_ratio=a.min_lr_ratio,
                 eval_every=a.eval_every,
                 eval_problems=a.eval_problems, eval_samples=a.eval_samples, max_new_tokens=a.max_new_tokens,
                 progress=not a.no_progress,
                 model_kwargs=_model_kwargs(a))
    print(json.dumps(s))
    return s


if __name__ == "__main__":
    main()
