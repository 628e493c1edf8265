"""workflow/tasks: the rspo_* lm-eval 0.4.13 tasks, run offline on the tiny random model and a fixture JSONL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

lm_eval = pytest.importorskip("lm_eval")

TASKS_DIR = Path(__file__).resolve().parents[2] / "workflow" / "tasks"
BENCHES = ("aime24", "amc", "amc23", "math500", "minerva", "olympiadbench", "aime25", "livemathbench")


def test_every_benchmark_has_a_task_and_the_group_lists_them():
    from lm_eval.tasks import TaskManager

    tm = TaskManager(include_path=str(TASKS_DIR), include_defaults=False)
    names = set(tm.all_tasks)
    assert {f"rspo_{b}" for b in BENCHES} <= names
    assert "rspo_math" in names
    import yaml

    for b in BENCHES:
        cfg = yaml.safe_load((TASKS_DIR / f"rspo_{b}.yaml").read_text())
        assert cfg["include"] == "_rspo_base_yaml"
        assert cfg["dataset_kwargs"]["data_files"]["test"] == f"results/data/{b}.jsonl"


def test_process_results_uses_our_grader_and_unbiased_estimators(tiny_model):
    utils = _load_utils()
    doc = {"id": "x", "answer": "12", "tokenizer": str(tiny_model), "max_new_tokens": 50, "fallback": ""}
    outs = ["so \\boxed{12}", "\\boxed{13}", "no answer", "\\boxed{12.0}"]
    m = utils.process_results(doc, [outs])
    assert set(m) == {"pass@1", "pass@2", "pass@4", "max@1", "max@2", "max@4"}
    assert m["pass@1"] == pytest.approx(0.5)  # 2 of 4 correct
    assert m["pass@2"] == pytest.approx(1 - 1 / 6)  # 1 - C(2,2)/C(4,2)
    assert m["pass@4"] == 1.0
    # max reward of a correct response = 1 - 0.5 * (chars + stop token) / 50 with the char-level tokenizer
    r = [1 - 0.5 * (len(outs[0]) + 1) / 50, 0.0, 0.0, 1 - 0.5 * (len(outs[3]) + 1) / 50]
    assert m["max@1"] == pytest.approx(sum(r) / 4)
    assert m["max@4"] == pytest.approx(max(r))
    # a response that fills the budget counts as truncated (graded incorrect)
    assert utils.process_results({**doc, "max_new_tokens": 5}, [["\\boxed{12}"]])["pass@1"] == 0.0
    # without a tokenizer only pass@k is reported
    assert set(utils.process_results({**doc, "tokenizer": ""}, [outs])) == {"pass@1", "pass@2", "pass@4"}


def test_missing_data_file_names_the_fix(tmp_path):
    utils = _load_utils()
    with pytest.raises(ValueError, match="analysis.datasets prepare aime24"):
        utils.resolve_data_path({"test": "results/data/aime24.jsonl"}, str(tmp_path))


def test_simple_evaluate_offline(tiny_model, tmp_path):
    """The real task YAML, included by a test variant with repeats 2 and 8 new tokens; data from --metadata data_dir."""
    from lm_eval.tasks import TaskManager

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    rows = [{"id": f"q{i}", "question": f"{i}+{i}", "answer": str(2 * i), "meta": {"tier": i}} for i in range(3)]
    (data_dir / "aime24.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    variant = tmp_path / "variant"
    variant.mkdir()
    (variant / "rspo_aime24_n2.yaml").write_text(
        f"include: {TASKS_DIR / 'rspo_aime24.yaml'}\n"
        "task: rspo_aime24_n2\n"
        "repeats: 2\n"
        "filter_list:\n  - name: all\n    filter:\n      - function: take_first_k\n        k: 2\n"
        "generation_kwargs:\n  do_sample: true\n  temperature: 0.6\n  top_p: 0.95\n  max_gen_toks: 8\n"
        '  until: ["<|im_end|>"]\n'  # generation_kwargs is replaced as a whole, not merged
    )
    tm = TaskManager(include_path=[str(TASKS_DIR), str(variant)], include_defaults=False,
                     metadata={"data_dir": str(data_dir), "pretrained": str(tiny_model), "template": "plain"})
    out = lm_eval.simple_evaluate(
        model="hf", model_args=f"pretrained={tiny_model},dtype=float32", tasks=["rspo_aime24_n2"], task_manager=tm,
        device="cpu", batch_size=4, limit=2, log_samples=True,
    )
    res = out["results"]["rspo_aime24_n2"]
    for name in ("pass@1", "pass@2", "max@1", "max@2"):
        value = res[f"{name},all"]
        assert 0.0 <= value <= 1.0, (name, value)
    samples = out["samples"]["rspo_aime24_n2"]
    assert len(samples) == 2 and all(len(s["resps"][0]) == 2 for s in samples)
    assert samples[0]["arguments"][0][0] == "0+0="  # the plain template via rspo_core.prompts


def _load_utils():
    import importlib.util

    spec = importlib.util.spec_from_file_location("rspo_tasks_utils", TASKS_DIR / "utils.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
