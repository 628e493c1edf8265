"""Hooks of the rspo_* lm-eval tasks: frozen-JSONL loader, prompt, and pass@k / max@k from OUR grader.

Nothing here re-implements extraction, grading or the estimators: prompts come from ``rspo_core.prompts``, verdicts
from ``rspo_core.grading.grade`` and the unbiased @k estimates from ``analysis.metrics`` (the same code the Snakemake
evaluation uses), rewards from ``rspo_core.rewards``.

Runtime options arrive through lm-eval's task metadata (``--metadata '{...}'`` on the CLI, ``TaskManager(metadata=)``
in Python; the CLI also merges ``--model_args`` into it, so ``pretrained`` is known there):

data_dir        folder holding ``<benchmark>.jsonl`` (overrides the YAML's ``data_files``; env ``RSPO_DATA_DIR`` too)
template        prompt template of ``rspo_core.prompts`` (default ``qwen_math_cot``; ``chat`` needs a tokenizer)
tokenizer       tokenizer folder for ``chat`` prompts and token counts (default: ``pretrained``)
max_new_tokens  the generation budget used in max@k's reward (default 3000 = the YAML's ``max_gen_toks``)
fallback        answer-extraction fallback of ``rspo_core.grading`` (``last_number`` or none)

lm-eval returns text only (no finish reason, no token counts), so with a tokenizer a response is re-tokenised:
``num_tokens`` = its token count + 1 (the stop token), and a response of ``>= max_new_tokens`` tokens counts as
truncated (finish_reason "length", graded incorrect, as in ``rspo_core.grading``). Without a tokenizer only pass@k is
reported (max@k's length-penalised reward needs token counts). The Snakemake path (``analysis.generate``) records
exact counts; prefer it for numbers you publish.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from functools import lru_cache
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
try:  # an editable install makes these importable anywhere; otherwise use the checkout this folder lives in
    import analysis  # noqa: F401
except ImportError:  # pragma: no cover - depends on how the repo was installed
    sys.path.insert(0, str(REPO_ROOT))

from rspo_core.jsonl import read_jsonl  # noqa: E402
from analysis.metrics import max_at_k, pass_at_k  # noqa: E402
from rspo_core.prompts import CHAT_TEMPLATES, format_prompt  # noqa: E402
from rspo_core.grading import grade  # noqa: E402
from rspo_core.rewards import max_reward  # noqa: E402

log = logging.getLogger(__name__)

# The @k values reported: powers of two up to the number of samples (repeats). The YAML's metric_list declares the
# same set (lm-eval needs every returned metric declared).
MAX_K_EXPONENT = 10  # k up to 1024


def report_ks(n: int) -> list[int]:
    """Powers of two 1, 2, 4, ... that are <= n (and <= 2**MAX_K_EXPONENT)."""
    return [2**e for e in range(MAX_K_EXPONENT + 1) if 2**e <= n]


def resolve_data_path(data_files, data_dir: str | None = None) -> Path:
    """The frozen JSONL to read.

    ``data_files``: the YAML's ``{"test": "results/data/<bench>.jsonl"}`` (or a plain path). With ``data_dir`` (or env
    ``RSPO_DATA_DIR``) the file of the same name inside it wins; a relative path is tried against the working
    directory, then against the repository root. Raises ValueError if the file does not exist.
    """
    path = data_files["test"] if isinstance(data_files, dict) else data_files
    if not path:
        raise ValueError(f"data_files={data_files!r}: expected {{'test': 'results/data/<benchmark>.jsonl'}}")
    path = Path(path)
    data_dir = data_dir or os.environ.get("RSPO_DATA_DIR")
    candidates = [Path(data_dir) / path.name] if data_dir else [path] if path.is_absolute() else [path, REPO_ROOT / path]
    for c in candidates:
        if c.is_file():
            return c.resolve()
    raise ValueError(
        f"frozen benchmark not found: tried {', '.join(map(str, candidates))}; run "
        f"`python -m analysis.datasets prepare {path.stem} results/data/{path.name}` or pass "
        "--metadata '{\"data_dir\": \"/abs/folder\"}'"
    )


@lru_cache(maxsize=4)
def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def load_frozen(data_files=None, data_dir: str | None = None, template: str = "qwen_math_cot",
                tokenizer: str | None = None, pretrained=None, max_new_tokens: int = 3000,
                fallback: str | None = None, **_metadata):
    """lm-eval ``custom_dataset`` hook: rows {id, question, answer, meta} -> DatasetDict({"test": ...}).

    Each doc also carries the run options it needs later (template, tokenizer, max_new_tokens, fallback), since
    lm-eval passes only the doc to doc_to_text / process_results. ``meta`` is stored as a JSON string (its keys
    differ between benchmarks, which Arrow's schema inference would reject).
    """
    import datasets

    path = resolve_data_path(data_files, data_dir)
    rows = read_jsonl(path)
    if not rows:
        raise ValueError(f"{path} has no rows; expected frozen benchmark rows {{id, question, answer, meta}}")
    tok = tokenizer or (pretrained if isinstance(pretrained, str) else None) or ""
    if template in CHAT_TEMPLATES and not tok:
        raise ValueError(f"template={template!r} needs a tokenizer: pass model_args pretrained=... or metadata "
                         "tokenizer")
    max_new_tokens = int(max_new_tokens)
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens={max_new_tokens}: expected an integer >= 1")
    # fail early on a bad name
    format_prompt("1+1", template, load_tokenizer(tok) if template in CHAT_TEMPLATES else None)
    docs = [
        {"id": str(r["id"]), "question": r["question"], "answer": str(r["answer"]),
         "meta": json.dumps(r.get("meta") or {}, ensure_ascii=False), "template": template, "tokenizer": tok,
         "max_new_tokens": max_new_tokens, "fallback": fallback or ""}
        for r in rows
    ]
    log.info("rspo task: %d problems from %s (template=%s)", len(docs), path, template)
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(docs)})


def doc_to_text(doc: dict) -> str:
    """The prompt of one doc, by ``rspo_core.prompts.format_prompt`` with the run's template."""
    tok = load_tokenizer(doc["tokenizer"]) if doc.get("template") in CHAT_TEMPLATES else None
    return format_prompt(doc["question"], doc.get("template") or "qwen_math_cot", tok)


def response_stats(output: str, tokenizer, max_new_tokens: int) -> tuple[str | None, int | None]:
    """(finish_reason, num_tokens) re-derived from text: ("length", max_new_tokens) if the re-tokenised response
    fills the budget, else ("stop", tokens + 1); (None, None) without a tokenizer."""
    if tokenizer is None:
        return None, None
    n_tok = len(tokenizer(output, add_special_tokens=False)["input_ids"])
    if n_tok >= max_new_tokens:
        return "length", max_new_tokens
    return "stop", n_tok + 1


def process_results(doc: dict, results: list) -> dict[str, float]:
    """Grade the doc's n responses with ``rspo_core.grading.grade`` -> {"pass@k": ..., "max@k": ...} for k in
    ``report_ks(n)``; unbiased estimators from ``analysis.metrics``. ``results`` is [[r_1..r_n]] after the
    ``take_first_k`` filter (or [r_1..r_n])."""
    outputs = list(results[0]) if results and isinstance(results[0], (list, tuple)) else list(results)
    if not outputs:
        raise ValueError(f"doc {doc.get('id')!r}: no responses to grade")
    max_new = int(doc.get("max_new_tokens") or 3000)
    tok = load_tokenizer(doc["tokenizer"]) if doc.get("tokenizer") else None
    fallback = doc.get("fallback") or None
    correct, rewards = [], []
    for out in outputs:
        finish, num_tokens = response_stats(out, tok, max_new)
        ok = grade(out, doc["answer"], fallback=fallback, finish_reason=finish)
        correct.append(ok)
        if tok is not None:
            rewards.append(max_reward(ok, num_tokens, max_new))
    n, c = len(outputs), sum(correct)
    metrics = {f"pass@{k}": pass_at_k(n, c, k) for k in report_ks(n)}
    if tok is not None:
        metrics.update({f"max@{k}": max_at_k(rewards, k) for k in report_ks(n)})
    return metrics
