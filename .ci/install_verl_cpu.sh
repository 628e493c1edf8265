#!/usr/bin/env bash
# verl 0.9.1 for tests/verl (rspo_patch.verl against verl's real code), on CPU, in a venv beside the current Python:
#   - verl's config stack pins antlr4-python3-runtime 4.9.3 (omegaconf 2.3's grammar), while math-verify in the main
#     environment needs 4.13.2; so verl lives in ${RSPO_VERL_VENV:-<repo>/.venv-verl}, whose own site-packages hold
#     only the pins below and come first on sys.path;
#   - everything else verl's advantage code imports (torch, ray, transformers, numpy, pandas, ...) comes from the
#     current Python's site-packages, added after the venv's own by a .pth file (the current Python may itself be a
#     venv, whose packages `venv --system-site-packages` would not see); its .pth files are read too, so the project's
#     editable install is visible (tests/verl puts the checkout on PYTHONPATH anyway);
#   - verl with --no-deps: its Requires-Dist pulls vLLM / flash-attn-sized GPU stacks that
#     verl.trainer.ppo.core_algos and ray_trainer.compute_advantage do not need. hydra-core composes verl's own
#     ppo_trainer.yaml in the test (the +algorithm.rspo.* flags as verl's CLI parses them).
# Idempotent: a venv whose pins are all there is kept (a CI rerun costs one `import verl`, ~7 s). Run after
# `pip install -e ".[cpu,test]"`; .ci/install_openrlhf_cpu.sh calls it last.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${RSPO_VERL_VENV:-$REPO/.venv-verl}"
PINS=(verl==0.9.1 tensordict==0.10.0 pyvers==0.1.0 omegaconf==2.3.0 antlr4-python3-runtime==4.9.3 codetiming==1.4.0
      hydra-core==1.3.2)

pins_installed() {  # 0 if the venv's python sees every pin at its exact version
    "$VENV/bin/python" - "${PINS[@]}" <<'PY'
import sys
from importlib.metadata import PackageNotFoundError, version
try:
    sys.exit(0 if all(version(n) == v for n, v in (p.split("==") for p in sys.argv[1:])) else 1)
except PackageNotFoundError:
    sys.exit(1)
PY
}

same_python() {  # 0 if the venv was made from this Python's major.minor
    [ "$("$VENV/bin/python" -c 'import sys; print(sys.version_info[:2])' 2>/dev/null)" = \
      "$(python -c 'import sys; print(sys.version_info[:2])')" ]
}

if [ -e "$VENV" ] && ! { [ -f "$VENV/pyvenv.cfg" ] && same_python; }; then
    [ -f "$VENV/pyvenv.cfg" ] || { echo "$VENV exists and is not a venv; set RSPO_VERL_VENV elsewhere" >&2; exit 1; }
    rm -rf "$VENV"  # a venv of another Python version
fi
[ -x "$VENV/bin/python" ] || python -m venv "$VENV"

# the current Python's site directories (user site first, as its own sys.path has them), read after the venv's own
SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
python - "$SITE/_rspo_main_env.pth" <<'PY'
import os, site, sys
dirs = ([site.getusersitepackages()] if site.ENABLE_USER_SITE else []) + site.getsitepackages()
dirs = [d for d in dict.fromkeys(dirs) if os.path.isdir(d)]
with open(sys.argv[1], "w") as f:
    f.write("import site; " + "; ".join(f"site.addsitedir({d!r})" for d in dirs) + "\n")
PY

pins_installed || "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps --ignore-installed \
    "${PINS[@]}"
"$VENV/bin/python" -W ignore - "$VENV" "${PINS[@]}" <<'PY'
import sys
from importlib.metadata import version

import omegaconf  # raises "Could not deserialize ATN" if the main environment's antlr4 4.13 came first
import verl.trainer.ppo.core_algos  # noqa: F401  (verl's advantage code imports on this CPU stack)
import torch

pins = " | ".join(f"{n} {version(n)}" for n in (p.split("==")[0] for p in sys.argv[2:]))
print(f"verl cpu venv {sys.argv[1]}: {pins} | torch {torch.__version__} (from the current Python)")
PY
