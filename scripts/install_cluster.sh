#!/usr/bin/env bash
# Cluster install of rspo-bench (config/paper.yaml: OpenRLHF 0.11.2 + vLLM 0.29.0 on CUDA GPUs), into the active Python
# 3.11 environment, from the repository root:
#
#   conda env create -f environment.yml && conda run -n rspo-bench --no-capture-output bash scripts/install_cluster.sh
#
# (or, in any Python 3.11 virtualenv: bash scripts/install_cluster.sh). The order matters:
#   1. torch 2.13.0 for CUDA 12.8 from the PyTorch index (vLLM 0.29.0 requires exactly torch 2.13.0);
#   2. this repository with the `gpu` extra: vLLM, OpenRLHF 0.11.2's own dependencies (listed in pyproject.toml, same
#      pins: transformers 5.15.0, deepspeed 0.19.6, ray 2.55.0, ...), evaluation and workflow packages; torch pinned
#      again so pip never replaces the CUDA build;
#   3. OpenRLHF 0.11.2 with --no-deps (its Requires-Dist pins flash-attn, which pip would build under build isolation,
#      without torch: "No module named 'torch'");
#   4. flash-attn 2.8.3 last, with --no-build-isolation, so it builds against the torch of step 1 (needs nvcc from
#      CUDA 12.x on PATH; MAX_JOBS bounds the compile's memory, ~1 h on 8 cores when no prebuilt wheel matches);
#   5. `pip check` and an import check: every requirement of every installed package holds.
# Environment: TORCH_INDEX (default the CUDA 12.8 index), MAX_JOBS (default 8).
# CI checks steps 1-3 with pip's resolver on a CPU machine: .ci/check_cluster_install.py.
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH_INDEX="${TORCH_INDEX:-https://download.pytorch.org/whl/cu128}"

python -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Python 3.11 expected, got {sys.version.split()[0]}"'
pip install "torch==2.13.0" --index-url "$TORCH_INDEX"
pip install -e ".[gpu]" "torch==2.13.0"
pip install --no-deps "openrlhf==0.11.2"
MAX_JOBS="${MAX_JOBS:-8}" pip install --no-build-isolation "flash-attn==2.8.3"
pip check
python -c "import torch, vllm, openrlhf, flash_attn, deepspeed, transformers; \
print('rspo-bench cluster env: torch', torch.__version__, 'cuda', torch.version.cuda, '| vllm', vllm.__version__, \
'| transformers', transformers.__version__, '| deepspeed', deepspeed.__version__, '| flash-attn', flash_attn.__version__)"
