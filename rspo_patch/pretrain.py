"""Pre-train the tiny char-level Llama on arithmetic, stopping at the first checkpoint inside a held-out pass@1 band.

    python -m rspo_patch.pretrain --train results/data/arith_train.jsonl --heldout results/data/arith_test.jsonl \
        --out results/models/tiny [--target-pass1 0.10 0.60] [--seed 0]

Why a band and not a step count: held-out pass@1 of this model jumps sharply (0.08 -> 0.21 between steps 200 and 240
in research/tiny-rl.md). RL starting from a model that already solves everything, or nothing, shows none of the
paper's effects, so the start is chosen by measurement: held-out pass@1 at T=1.0 (mean correctness of samples from
``rspo_core.sampler``, the sampler of training and evaluation) is evaluated every ``--eval-every``
steps and training stops at the first evaluation with ``lo <= pass@1 <= hi``. If the band is never hit within
``--max-steps``, the evaluated checkpoint closest to the band is saved and ``reached_target: false`` is logged.

Model: ``LlamaForCausalLM`` (4 layers, d=128, 4 heads, ~1.06M parameters) over a character vocabulary (digits,
``+-*/=()``, space, a-z, ``.,?!:'$``, plus any other character in the data), saved as a real HF tokenizer.
Training text is ``"<bos>{question}={answer}<eos>"``; the loss covers the answer characters and the EOS only.
AdamW (lr 2e-3, linear warm-up), batch 256 sampled with a seeded generator: re-running gives bit-identical weights.

Output (written to a temp dir, then renamed): OUT/ = HF model folder + tokenizer + ``pretrain_log.jsonl`` (one line per
step: step, loss, lr, wall_time; evaluation steps add pass@1) + ``pretrain_summary.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time

import torch
from tqdm import tqdm

from rspo_core.cli import parse_strict
from rspo_core.sampler import SamplingConfig, problem_seed, row_seeds, sample, stop_token_ids
from rspo_patch.charlm import (build_char_tokenizer, build_tiny_llama, charset_for, count_parameters, grade_texts,
                               replace_dir)

log = logging.getLogger("rspo_patch.pretrain")


def read_rows(path: str) -> list[dict]:
    """Rows of a JSONL file with at least ``question`` and ``answer``; ValueError on a missing field or empty file."""
    rows = []
    with open(path) as f:
        for i, line in enumerate(f):
            if line.strip():
                row = json.loads(line)
                if "question" not in row or "answer" not in row:
                    raise ValueError(f"{path}:{i + 1}: row needs 'question' and 'answer', got keys {sorted(row)}")
                rows.append(row)
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


def check_settings(*, target_pass1, lr: float, warmup_steps: int, **positive) -> tuple[float, float]:
    """ValueError naming the first bad setting; returns the band (lo, hi). ``positive``: integers that must be >= 1
    (batch_size, max_steps, eval_every, eval_problems, eval_samples, max_new_tokens, hidden, layers, ...)."""
    lo, hi = map(float, target_pass1)
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f"--target-pass1 must satisfy 0 <= lo <= hi <= 1, got {lo} {hi}")
    for name, v in positive.items():
        if int(v) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {v}")
    if not lr > 0 or warmup_steps < 0:
        raise ValueError(f"need --lr > 0 and --warmup-steps >= 0, got lr={lr}, warmup_steps={warmup_steps}")
    return lo, hi


def band_distance(p: float, lo: float, hi: float) -> float:
    """0 inside [lo, hi], else the distance to the nearer edge."""
    return max(lo - p, 0.0, p - hi)


def save_hf_atomic(model, tokenizer, out: str, extra_files: dict[str, str]) -> None:
    """Save model + tokenizer + extra text files into a temp dir next to ``out``, then rename it to ``out``."""
    parent = os.path.dirname(os.path.abspath(out)) or "."
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-" + os.path.basename(out) + "-", dir=parent)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    for name, text in extra_files.items():
        with open(os.path.join(tmp, name), "w") as f:
            f.write(text)
    replace_dir(tmp, out)


def pretrain(train_path: str, heldout_path: str, out: str, *, target_pass1=(0.10, 0.60), seed: int = 0,
             batch_size: int = 256, lr: float = 2e-3, warmup_steps: int = 50, max_steps: int = 1500,
             eval_every: int = 20, eval_problems: int = 200, eval_samples: int = 8, max_new_tokens: int = 8,
             weight_decay: float = 0.0, template: str = "plain", progress: bool = True,
             model_kwargs: dict | None = None) -> dict:
    """Train from scratch; return the summary dict (also written to OUT/pretrain_summary.json).

    ``model_kwargs`` overrides the architecture of ``build_tiny_llama`` (hidden, layers, heads, intermediate).
    """
    lo, hi = check_settings(target_pass1=target_pass1, batch_size=batch_size, lr=lr, warmup_steps=warmup_steps,
                            max_steps=max_steps, eval_every=eval_every, eval_problems=eval_problems,
                            eval_samples=eval_samples, max_new_tokens=max_new_tokens, **(model_kwargs or {}))
    train_rows, held_rows = read_rows(train_path), read_rows(heldout_path)
    held_rows = held_rows[:eval_problems]

    torch.manual_seed(seed)
    chars = charset_for([r["question"] + "=" + str(r["answer"]) for r in train_rows + held_rows])
    tok = build_char_tokenizer(chars)
    model = build_tiny_llama(len(tok), tokenizer=tok, seed=seed, **(model_kwargs or {}))
    ids, att, lmask = encode_examples(train_rows, tok, template)
    log.info("tiny llama: %d parameters, vocab %d, %d train / %d held-out rows", count_parameters(model), len(tok),
             len(train_rows), len(held_rows))

    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, warmup_steps)))
    gen = torch.Generator().manual_seed(seed)  # batch sampling only; evaluation seeds are derived from the step
    lines, best = [], None  # best = (distance to band, step, pass@1, state_dict copy)
    t0 = time.time()
    reached = False
    bar = tqdm(range(1, max_steps + 1), disable=not progress, desc="pretrain")
    for step in bar:
        model.train()
        idx = torch.randint(0, ids.shape[0], (batch_size,), generator=gen)
        L = int(att[idx].sum(1).max())  # trim padding columns
        loss = answer_loss(model, ids[idx, :L], att[idx, :L], lmask[idx, :L])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        rec = {"step": step, "loss": loss.item(), "lr": opt.param_groups[0]["lr"], "wall_time": time.time() - t0}
        if step % eval_every == 0:
            p1, entropy = heldout_pass1(model, tok, held_rows, n=eval_samples, max_new_tokens=max_new_tokens,
                                        template=template, seed=seed * 100003 + step)
            rec["pass@1"] = p1
            rec["entropy"] = entropy
            d = band_distance(p1, lo, hi)
            if best is None or d < best[0]:
                best = (d, step, p1, {k: v.detach().clone() for k, v in model.state_dict().items()})
            bar.set_postfix(loss=f"{loss.item():.3f}", pass1=f"{p1:.3f}")
            if d == 0.0:
                reached = True
        lines.append(rec)
        if reached:
            break
    if best is None:
        raise ValueError(f"max_steps={max_steps} < eval_every={eval_every}: no evaluation happened")
    _, best_step, best_p1, state = best
    model.load_state_dict(state)
    if not reached:
        log.warning("held-out pass@1 never entered [%.3f, %.3f] in %d steps; saving step %d (pass@1 %.3f)",
                    lo, hi, max_steps, best_step, best_p1)
    summary = {"step": best_step, "heldout_pass@1": best_p1, "reached_target": reached, "target_pass1": [lo, hi],
               "seed": seed, "parameters": count_parameters(model), "vocab_size": len(tok), "eval_samples": eval_samples,
               "eval_problems": len(held_rows), "wall_time": time.time() - t0, "train": os.path.abspath(train_path),
               "heldout": os.path.abspath(heldout_path)}
    save_hf_atomic(model, tok, out, {
        "pretrain_log.jsonl": "".join(json.dumps(r) + "\n" for r in lines),
        "pretrain_summary.json": json.dumps(summary, indent=2) + "\n",
    })
    log.info("saved step %d (held-out pass@1 %.3f) to %s", best_step, best_p1, out)
    return summary


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--train", required=True, help="training JSONL ({id, question, answer, meta})")
    ap.add_argument("--heldout", required=True, help="held-out JSONL used for the pass@1 stopping rule")
    ap.add_argument("--out", required=True, help="output HF model folder")
    ap.add_argument("--target-pass1", nargs=2, type=float, default=[0.10, 0.60], metavar=("LO", "HI"),
                    help="stop at the first evaluation with LO <= held-out pass@1 <= HI (default 0.10 0.60)")
    ap.add_argument("--seed", type=int, default=0, help="seeds init, batches and evaluation sampling")
    # Optimisation
    ap.add_argument("--batch-size", type=int, default=256, help="sequences per step")
    ap.add_argument("--lr", type=float, default=2e-3, help="AdamW peak learning rate")
    ap.add_argument("--warmup-steps", type=int, default=50, help="linear warm-up steps, then constant lr")
    ap.add_argument("--max-steps", type=int, default=1500, help="give up (save the closest checkpoint) after this")
    # Model
    ap.add_argument("--hidden", type=int, default=128, help="model width")
    ap.add_argument("--layers", type=int, default=4, help="transformer blocks")
    ap.add_argument("--heads", type=int, default=4, help="attention heads")
    ap.add_argument("--intermediate", type=int, default=512, help="MLP width")
    # Evaluation
    ap.add_argument("--eval-every", type=int, default=20, help="evaluate held-out pass@1 every this many steps")
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
    check_settings(target_pass1=a.target_pass1, lr=a.lr, warmup_steps=a.warmup_steps, batch_size=a.batch_size,
                   max_steps=a.max_steps, eval_every=a.eval_every, eval_problems=a.eval_problems,
                   eval_samples=a.eval_samples, max_new_tokens=a.max_new_tokens, **_model_kwargs(a))


def main(argv=None) -> dict:
    a = build_parser().parse_args(argv)
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    s = pretrain(a.train, a.heldout, a.out, target_pass1=a.target_pass1, seed=a.seed, batch_size=a.batch_size,
                 lr=a.lr, warmup_steps=a.warmup_steps, max_steps=a.max_steps, eval_every=a.eval_every,
                 eval_problems=a.eval_problems, eval_samples=a.eval_samples, max_new_tokens=a.max_new_tokens,
                 progress=not a.no_progress,
                 model_kwargs=_model_kwargs(a))
    print(json.dumps(s))
    return s


if __name__ == "__main__":
    main()
