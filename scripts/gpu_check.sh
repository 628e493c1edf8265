#!/usr/bin/env bash
# The GPU check (docs/gpu_check.md) from a copy of the tree on a bare GPU machine: torch + transformers, no install.
#   bash scripts/gpu_check.sh                   # the GPU run
#   bash scripts/gpu_check.sh --device cpu      # the CPU self-test (plumbing only: the CPU compared with itself)
# GPU_CHECK_TIMEOUT bounds the whole run (seconds, default 300); GPU_CHECK_LOG=FILE also writes the output to FILE;
# PYTHON picks the interpreter (default python). Exit status: the script's (number of failed checks; 101: no GPU).
set -uo pipefail
cd "$(dirname "$0")/.."
timeout -k 10 "${GPU_CHECK_TIMEOUT:-300}" "${PYTHON:-python}" -m benchmarks.gpu_check "$@" 2>&1 \
    | tee "${GPU_CHECK_LOG:-/dev/null}"
exit "${PIPESTATUS[0]}"
