"""Issue 13.1-13.2 through the real CLI: `python -m analysis.generate` killed with SIGKILL mid-run resumes from its
partial file (kept outside the output, where Snakemake would not delete it) and ends byte-identical to an uninterrupted
run; a partial file made from other model weights is not reused."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from analysis import generate as G

REPO = Path(__file__).resolve().parents[2]
N, PROBLEMS = 4, 30
SMALL = dict(benchmark="toy", temperature=0.8, top_p=0.95, max_new_tokens=10, template="plain", seed=3)


def _cli(model: Path, data: Path, out: Path, partial: Path) -> list[str]:
    return [sys.executable, "-m", "analysis.generate", "--model", str(model), "--data", str(data), "--out", str(out),
            "--partial", str(partial), "--benchmark", "toy", "--n", str(N), "--temperature", "0.8", "--top-p", "0.95",
            "--max-new-tokens", "10", "--template", "plain", "--seed", "3", "--batch-size", str(N)]


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def _kill_after(cmd: list[str], partial: Path, lines: int, log: Path) -> None:
    """Start ``cmd`` and SIGKILL its process group once ``partial`` holds at least ``lines`` lines."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.time() + 300
        try:
            while _lines(partial) < lines:
                assert proc.poll() is None, f"finished before the kill: {log.read_text()[-2000:]}"
                assert time.time() < deadline, "no progress in time"
                time.sleep(0.02)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _run(cmd: list[str]) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    return res.stdout + res.stderr


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_model):
    d = tmp_path_factory.mktemp("resume_cli")
    data = d / "data.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "question": f"{i}+{i * 7}", "answer": str(8 * i)}) + "\n"
                            for i in range(PROBLEMS)))
    model = d / "model"
    shutil.copytree(tiny_model, model)  # a private copy: one test changes its weights
    reference = d / "reference.jsonl"
    G.generate(model, data, reference, n=N, batch_size=N, **SMALL)
    return d, model, data, reference


def test_sigkill_mid_run_resumes_from_the_partial_file_and_ends_identical(setup):
    d, model, data, reference = setup
    out, partial = d / "eval" / "samples.jsonl", d / "partial" / "toy.jsonl"
    _kill_after(_cli(model, data, out, partial), partial, 3 * N, d / "run1.log")
    assert not out.exists(), "the output must appear only when complete"
    kept = _lines(partial) // N  # complete problems at the kill (a half-written tail is dropped on resume)
    assert 3 <= kept < PROBLEMS
    log = _run(_cli(model, data, out, partial))
    done = int(log.split(" problems, ")[1].split(" done")[0])
    assert done >= 3, log[-2000:]  # resumed, not restarted
    assert out.read_bytes() == reference.read_bytes()
    assert not partial.exists() and not G.inputs_record(partial).exists()


def test_a_partial_file_from_other_weights_is_not_reused(setup):
    d, model, data, _ = setup
    out, partial = d / "eval2" / "samples.jsonl", d / "partial2" / "toy.jsonl"
    _kill_after(_cli(model, data, out, partial), partial, 3 * N, d / "run2.log")
    assert _lines(partial) >= 3 * N
    # re-made weights behind the same path (as after a re-pre-training with another seed)
    from transformers import AutoModelForCausalLM

    import torch

    m = AutoModelForCausalLM.from_pretrained(model)
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(1.01)
    m.save_pretrained(model)
    log = _run(_cli(model, data, out, partial))
    assert "made from other inputs (model_sha256 changed" in log and f"{PROBLEMS} problems, 0 done" in log, log[-2000:]
    fresh = d / "fresh.jsonl"
    G.generate(model, data, fresh, n=N, batch_size=N, **SMALL)
    assert out.read_bytes() == fresh.read_bytes()
