"""rspo_core.cpu_math: the environment that pins PyTorch's CPU math libraries to their AVX2 code.

The variable names and values are those the libraries document (ATen: ATEN_CPU_CAPABILITY in
aten/src/ATen/native/DispatchStub.cpp; MKL: MKL_CBWR, "conditional numerical reproducibility"; oneDNN:
ONEDNN_MAX_CPU_ISA). The child-process tests ask torch itself which code it ran, and the golden test compares the
weights a pinned pre-training + RL run produces with the sha256 recorded on the development machine (AMD EPYC with
AVX-512, 2026-12-02): on any other x86-64 machine with AVX2 it is the cross-machine check of the pin.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from rspo_core.cpu_math import CPU_ISA_CHOICES, PIN_KEYS, is_x86_64, pinned_env, shell_env_prefix

REPO = Path(__file__).resolve().parents[2]
_X86 = is_x86_64(platform.machine())


def test_avx2_on_x86_64_pins_the_three_libraries():
    env = pinned_env("avx2", "x86_64")
    assert env == {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2,STRICT", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    assert pinned_env("avx2", "AMD64") == env  # Windows spells it so
    assert set(PIN_KEYS) == set(env)


@pytest.mark.parametrize("isa, machine", [("native", "x86_64"), ("avx2", "aarch64"), ("avx2", "arm64")])
def test_native_or_another_architecture_pins_nothing(isa, machine):
    assert pinned_env(isa, machine) == {}


def test_an_unknown_isa_is_one_line_naming_it():
    with pytest.raises(ValueError, match=r"cpu_isa 'avx512': expected one of avx2, native"):
        pinned_env("avx512", "x86_64")
    assert CPU_ISA_CHOICES == ("avx2", "native")


_CAPABILITY = "import torch; print(torch.backends.cpu.get_cpu_capability())"


@pytest.mark.parametrize("isa, machine, expected", [
    ("native", "x86_64", None),                # an inherited pin does not survive "native" ...
    ("avx2", "aarch64", None),                 # ... nor a node of another architecture
    ("avx2", "x86_64", "AVX2,STRICT"),         # and a user's own value gives way to the config's
])
def test_the_shell_prefix_starts_a_job_with_exactly_the_configured_pin(isa, machine, expected):
    """The prefix the workflow puts before a job's command, run by a real shell over an environment that already
    carries other pins (a user's shell, a login node)."""
    prefix = shell_env_prefix(isa, machine)
    code = "import os, json; print(json.dumps([os.environ.get(k) for k in ('MKL_CBWR', 'ATEN_CPU_CAPABILITY')]))"
    env = {**os.environ, "MKL_CBWR": "AUTO", "ATEN_CPU_CAPABILITY": "avx512"}
    out = subprocess.run(["bash", "-c", f"{prefix} {sys.executable} -c \"{code}\""], env=env, capture_output=True,
                         text=True, timeout=120, check=True).stdout
    assert json.loads(out) == [expected, "avx2" if expected else None]


def _child(code: str, extra_env: dict) -> str:
    env = {k: v for k, v in os.environ.items() if k not in PIN_KEYS}
    out = subprocess.run([sys.executable, "-c", code], env={**env, **extra_env}, capture_output=True, text=True,
                         timeout=120, check=True)
    return out.stdout.strip()


def _skip_without_avx2():
    if not _X86:
        pytest.skip("the AVX2 pin exists only on x86-64 (nothing is pinned elsewhere)")
    native = _child(_CAPABILITY, {})
    if native not in ("AVX2", "AVX512"):
        pytest.skip(f"this CPU has no AVX2 (torch reports {native})")


def test_a_process_started_with_the_pin_runs_atens_avx2_code_and_records_it():
    _skip_without_avx2()
    code = ("import json; from rspo_core.cpu_math import math_backend; b = math_backend(); "
            "print(json.dumps([b['cpu_capability'], b['mkl_cbwr'], b['onednn_max_cpu_isa'], b['machine']]))")
    got = _child(code, {**pinned_env("avx2", platform.machine()), "PYTHONPATH": str(REPO)})
    assert got == f'["AVX2", "AVX2,STRICT", "AVX2", "{platform.machine()}"]'


# sha256 of model.safetensors: 40 pre-training steps of the default architecture (1.06M parameters) on 1-digit
# addition (80 train / 20 held-out rows, seed 0, batch 64), then 3 RSPO steps (k = 4, n = 8, 8 prompts, lr 1e-3),
# 1 thread, pinned; recorded on the development machine (its native AVX-512 path gave f09fb47b... / 5172f7fc...)
GOLDEN = {"pretrain": "cc93b5baaa131ffe8016e1d2aa73c468f6e3dc98842bdb7e66d070ad43c5a662",
          "rl": "9553140546d75be79d00b0122c88cf7fc11983869b8ea837010e218c3a266d8f"}


@pytest.mark.timeout(600)
def test_pinned_pretraining_and_rl_give_the_recorded_bits(tmp_path):
    """The claim of docs/reproducibility.md, checked wherever the suite runs: same versions + the pin -> same weights."""
    import torch
    import transformers

    _skip_without_avx2()
    if (torch.__version__, transformers.__version__) != ("2.13.0+cpu", "5.15.0"):
        pytest.skip(f"recorded with torch 2.13.0+cpu / transformers 5.15.0, not {torch.__version__} / "
                    f"{transformers.__version__}: other versions may order the operations differently")
    from analysis.datasets import make_arithmetic

    make_arithmetic(tmp_path / "train.jsonl", tmp_path / "test.jsonl", tiers=["add1"], n_train=80, n_test=20, seed=0)
    env = {k: v for k, v in os.environ.items() if k not in PIN_KEYS}
    env.update(pinned_env("avx2", platform.machine()), OMP_NUM_THREADS="1")
    model, rl = tmp_path / "model", tmp_path / "rl"
    for argv in (
        ["rspo_patch.pretrain", "--train", str(tmp_path / "train.jsonl"), "--heldout", str(tmp_path / "test.jsonl"),
         "--out", str(model), "--steps", "40", "--batch-size", "64", "--eval-every", "0", "--eval-problems", "8",
         "--eval-samples", "2", "--no-progress", "--threads", "1"],
        ["rspo_patch.train_local", "--model", str(model), "--data", str(tmp_path / "train.jsonl"), "--out", str(rl),
         "--ckpt-dir", str(tmp_path / "ckpt"), "--steps", "3", "--prompts-per-step", "8", "--n", "8", "--estimator",
         "rspo_pass", "--k", "4", "--max-new-tokens", "6", "--lr", "1e-3", "--template", "plain", "--fallback",
         "last_number", "--seed", "0", "--no-progress", "--tensorboard", "off", "--threads", "1"],
    ):
        subprocess.run([sys.executable, "-m", *argv], env=env, cwd=REPO, check=True, capture_output=True, timeout=500)

    def sha(path: Path) -> str:
        return hashlib.sha256(path.read_bytes()).hexdigest()

    assert {"pretrain": sha(model / "model.safetensors"), "rl": sha(rl / "model" / "model.safetensors")} == GOLDEN
