"""rspo_core.vllm_cpu, the vLLM general plugin that lets vllm-cpu's bf16 kernels use AMX (on CPUs with AMX tiles,
vLLM's worker otherwise dies with SIGILL on its first bf16 forward: measured with vllm-cpu 0.29.0 on a Xeon with
amx_bf16; the OpenRLHF tier and the vllm backend's tests run bf16 engines and need it there)."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points

import torch

from rspo_core import vllm_cpu


def test_the_plugin_is_registered_where_vllm_looks_for_general_plugins():
    (ep,) = [ep for ep in entry_points(group="vllm.general_plugins") if ep.name == "rspo_amx"]
    assert ep.value == "rspo_core.vllm_cpu:register"
    assert ep.load() is vllm_cpu.register


def test_amx_is_requested_exactly_where_the_cpu_has_it():
    """In a fresh process (the permission is per process): AMX usable after the call iff torch reports AMX tiles."""
    code = ("import torch; from rspo_core import vllm_cpu; "
            "print(vllm_cpu.amx_usable(), torch.cpu._is_amx_tile_supported())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == out[1], out
    assert out[1] == str(torch.cpu._is_amx_tile_supported())
    vllm_cpu.register()  # idempotent in this process too
    vllm_cpu.register()
