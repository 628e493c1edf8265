"""rspo_core.cpu_math: the environment that pins PyTorch's CPU math libraries to their AVX2 code.

The variable names and values are those the libraries document (ATen: ATEN_CPU_CAPABILITY in
aten/src/ATen/native/DispatchStub.cpp; MKL: MKL_CBWR, "conditional numerical reproducibility"; oneDNN:
ONEDNN_MAX_CPU_ISA). The child-process tests ask torch itself which code it ran. The golden tests run a pinned
pre-training + RL twice in fresh processes: the two must give identical weights on every machine (what the pin
guarantees), and on a machine of a kind the weights were recorded on they must equal that record. The records are per
CPU kind, not one for all x86-64: under the pin an AMD EPYC and an Intel Xeon give different bits (MKL runs its
AVX2 branch on Intel only; docs/reproducibility.md), so elsewhere that comparison skips, naming the hashes it got.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from rspo_core.cpu_math import (CPU_ISA_CHOICES, PIN_KEYS, cpu_flags, cpu_model, cpu_vendor, is_x86_64,
                                pinned_env, shell_env_prefix)

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
# 1 thread, pinned, torch 2.13.0+cpu / transformers 5.15.0; one record per kind of machine, keyed by /proc/cpuinfo's
# vendor_id, a pattern on its model name (fnmatch) and flags it must have. The pinned bits are the same on machines of
# one kind, not across kinds (docs/reproducibility.md: MKL's AVX2 branch is Intel-only, and its vsSqrt refines the CPU's
# rsqrtps estimate). The AMD record says no more than its machine was known by ("a 2-core AMD EPYC with AVX-512"; the
# model name was not written down): narrow its pattern to the exact model name when the suite next runs there.
KNOWN_MACHINES = (
    {"vendor": "AuthenticAMD", "model": "AMD EPYC*", "flags": ("avx2", "avx512f"),
     "recorded": "2-core AMD EPYC with AVX-512, the development machine, 2026-12-02 (native AVX-512: f09fb47b... / "
                 "5172f7fc...)",
     "pretrain": "cc93b5baaa131ffe8016e1d2aa73c468f6e3dc98842bdb7e66d070ad43c5a662",
     "rl": "9553140546d75be79d00b0122c88cf7fc11983869b8ea837010e218c3a266d8f"},
    {"vendor": "GenuineIntel", "model": "Intel(R) Xeon(R) Processor", "flags": ("avx2", "avx512f", "amx_tile"),
     "recorded": "2-core Intel Xeon (KVM, Sapphire Rapids class: AVX-512, AMX), 2026-12-07",
     "pretrain": "31122f3c82019fe357e79e4e26b65b9587d436a9f63b1fa9f81bb3946601da2f",
     "rl": "c26c1de33babb782e388b1481a9144c60c75d973b94c50abb06c8dbd7f12f783"},
)


def known_machine(vendor: str | None, model: str | None, flags: frozenset[str]) -> dict | None:
    """The KNOWN_MACHINES record of a machine with this /proc/cpuinfo vendor_id, model name and flags, or None."""
    for rec in KNOWN_MACHINES:
        if (vendor == rec["vendor"] and model is not None and fnmatch.fnmatchcase(model, rec["model"])
                and set(rec["flags"]) <= flags):
            return rec
    return None


def test_the_records_are_keyed_by_vendor_model_and_flags():
    epyc = frozenset({"avx2", "avx512f"})
    assert known_machine("AuthenticAMD", "AMD EPYC 9654 96-Core Processor", epyc)["vendor"] == "AuthenticAMD"
    assert known_machine("AuthenticAMD", "AMD EPYC 7763 64-Core Processor", frozenset({"avx2"})) is None  # Zen 3
    assert known_machine("AuthenticAMD", "AMD Ryzen 9 7950X 16-Core Processor", epyc) is None
    xeon = frozenset({"avx2", "avx512f", "amx_tile"})
    assert known_machine("GenuineIntel", "Intel(R) Xeon(R) Processor", xeon)["vendor"] == "GenuineIntel"
    assert known_machine("GenuineIntel", "Intel(R) Xeon(R) Processor", epyc) is None  # no AMX: another generation
    assert known_machine("GenuineIntel", "Intel(R) Xeon(R) Platinum 8480+", xeon) is None
    assert known_machine(None, None, frozenset()) is None
    assert all(len(rec[k]) == 64 for rec in KNOWN_MACHINES for k in ("pretrain", "rl"))


def _pinned_run(out: Path) -> dict[str, str]:
    """The pinned 40-step pre-training + 3 RSPO steps, each in a fresh process; sha256 of both weight files."""
    from analysis.datasets import make_arithmetic

    out.mkdir(parents=True)
    make_arithmetic(out / "train.jsonl", out / "test.jsonl", tiers=["add1"], n_train=80, n_test=20, seed=0)
    env = {k: v for k, v in os.environ.items() if k not in PIN_KEYS}
    env.update(pinned_env("avx2", platform.machine()), OMP_NUM_THREADS="1")
    model, rl = out / "model", out / "rl"
    for argv in (
        ["rspo_patch.pretrain", "--train", str(out / "train.jsonl"), "--heldout", str(out / "test.jsonl"),
         "--out", str(model), "--steps", "40", "--batch-size", "64", "--eval-every", "0", "--eval-problems", "8",
         "--eval-samples", "2", "--no-progress", "--threads", "1"],
        ["rspo_patch.train_local", "--model", str(model), "--data", str(out / "train.jsonl"), "--out", str(rl),
         "--ckpt-dir", str(out / "ckpt"), "--steps", "3", "--prompts-per-step", "8", "--n", "8", "--estimator",
         "rspo_pass", "--k", "4", "--max-new-tokens", "6", "--lr", "1e-3", "--template", "plain", "--fallback",
         "last_number", "--seed", "0", "--no-progress", "--tensorboard", "off", "--threads", "1"],
    ):
        subprocess.run([sys.executable, "-m", *argv], env=env, cwd=REPO, check=True, capture_output=True, timeout=500)

    def sha(path: Path) -> str:
        return hashlib.sha256(path.read_bytes()).hexdigest()

    return {"pretrain": sha(model / "model.safetensors"), "rl": sha(rl / "model" / "model.safetensors")}


@pytest.fixture(scope="module")
def two_pinned_runs(tmp_path_factory):
    """Two pinned runs on this machine (skips without AVX2 or with other torch / transformers versions)."""
    import torch
    import transformers

    _skip_without_avx2()
    if (torch.__version__, transformers.__version__) != ("2.13.0+cpu", "5.15.0"):
        pytest.skip(f"recorded with torch 2.13.0+cpu / transformers 5.15.0, not {torch.__version__} / "
                    f"{transformers.__version__}: other versions may order the operations differently")
    tmp = tmp_path_factory.mktemp("pinned")
    return _pinned_run(tmp / "a"), _pinned_run(tmp / "b")


@pytest.mark.timeout(900)
def test_two_fresh_pinned_processes_give_identical_bits(two_pinned_runs):
    """What the pin guarantees on every machine: the same command gives the same weights, run after run."""
    first, second = two_pinned_runs
    assert first == second


@pytest.mark.timeout(900)
def test_pinned_bits_equal_the_record_of_this_kind_of_machine(two_pinned_runs):
    """On a kind of machine the bits were recorded on: the same weights as then (a change of the bits there, from code
    or a library, shows here). On any other kind the comparison would say nothing about the project: skipped."""
    vendor, model = cpu_vendor(), cpu_model()
    rec = known_machine(vendor, model, cpu_flags())
    got = two_pinned_runs[0]
    if rec is None:
        pytest.skip(f"no pinned record for this kind of machine ({vendor} / {model}): the pinned bits differ between "
                    f"CPU kinds (docs/reproducibility.md); it got pretrain {got['pretrain']}, rl {got['rl']}; to "
                    f"record it, add it to KNOWN_MACHINES")
    assert got == {"pretrain": rec["pretrain"], "rl": rec["rl"]}, f"recorded on: {rec['recorded']}"
