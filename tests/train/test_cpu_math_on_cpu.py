"""rspo_core.cpu_math: the environment that pins PyTorch's CPU math libraries to their AVX2 code.

The variable names and values are those the libraries document (ATen: ATEN_CPU_CAPABILITY in
aten/src/ATen/native/DispatchStub.cpp; MKL: MKL_CBWR, "conditional numerical reproducibility"; oneDNN:
ONEDNN_MAX_CPU_ISA), and the child-process test asks torch itself which code it runs.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from rspo_core.cpu_math import CPU_ISA_CHOICES, math_backend, pinned_env

_PROBE = "import torch; print(torch.backends.cpu.get_cpu_capability())"
_X86 = platform.machine().lower() in ("x86_64", "amd64")


def test_avx2_on_x86_64_pins_the_three_libraries():
    env = pinned_env("avx2", "x86_64")
    assert env == {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2,STRICT", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    assert pinned_env("avx2", "AMD64") == env  # Windows spells it so


@pytest.mark.parametrize("isa, machine", [("native", "x86_64"), ("avx2", "aarch64"), ("avx2", "arm64")])
def test_native_or_another_architecture_pins_nothing(isa, machine):
    assert pinned_env(isa, machine) == {}


def test_an_unknown_isa_is_one_line_naming_it():
    with pytest.raises(ValueError, match=r"cpu_isa 'avx512': expected one of avx2, native"):
        pinned_env("avx512", "x86_64")
    assert CPU_ISA_CHOICES == ("avx2", "native")


def _capability(extra_env: dict) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA")}
    out = subprocess.run([sys.executable, "-c", _PROBE], env={**env, **extra_env}, capture_output=True, text=True,
                         timeout=120, check=True)
    return out.stdout.strip()


@pytest.mark.skipif(not _X86, reason="the AVX2 pin exists only on x86-64 (nothing is pinned elsewhere)")
def test_a_process_started_with_the_pin_runs_atens_avx2_code():
    native = _capability({})
    if native not in ("AVX2", "AVX512"):
        pytest.skip(f"this CPU has no AVX2 (torch reports {native})")
    assert _capability(pinned_env("avx2", platform.machine())) == "AVX2"


def test_math_backend_reports_this_process():
    import torch

    b = math_backend()
    assert b["machine"] == platform.machine() and b["torch"] == torch.__version__
    assert b["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert b["mkl_cbwr"] == os.environ.get("MKL_CBWR")
