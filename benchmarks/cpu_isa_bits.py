"""Does the CPU's instruction set change the bits of a training run, and does config ``cpu_isa: avx2`` fix them?

Run::

    python benchmarks/cpu_isa_bits.py [--steps 30] [--json out.json]

Pre-trains the default config's tiny char-level Llama (``rspo_patch.pretrain``, 1 thread, seed 0, on 2-digit
addition: 9,600 train / 200 held-out rows made here in a temp folder, not the workflow's exact training set) for
``--steps`` steps in one fresh process per environment and prints the sha256 of the saved weights and the wall time
of each. The environments are the code paths a machine can take:

- ``native``: nothing set; each library picks the widest code of this CPU (on an AVX-512 machine: AVX-512);
- ``aten=avx2`` / ``aten=default``: ATen's kernels as on an AVX2-only / a pre-AVX2 CPU (ATEN_CPU_CAPABILITY);
- ``mkl=COMPATIBLE``: MKL's generic branch (MKL_CBWR), as MKL runs on CPUs it has no tuned code for;
- ``pinned``: ``rspo_core.cpu_math.pinned_env("avx2", ...)``, what the workflow sets with ``cpu_isa: avx2``;
- ``pinned+native-mkl``: the pin with MKL left to choose (MKL_CBWR unset), to see if MKL's choice moves bits here;
- ``pinned+fused-adamw``: the pin, AdamW with ``fused=True`` (ATen's own AdamW kernel, whose square root is the exact
  ``sqrtps``, instead of ``torch.sqrt`` -> MKL's vsSqrt, which refines the CPU's ``rsqrtps`` estimate);
- ``pinned+mkl=COMPATIBLE+fused-adamw``: that, with MKL_CBWR=COMPATIBLE (the one MKL branch it runs on every vendor):
  the candidate for the same bits on Intel and AMD. Not the workflow's pin; on this Intel machine, also when it was
  made to report an AMD vendor, it runs no instruction whose bits are the CPU maker's (docs/reproducibility.md), so the
  same sha256 on an AMD machine would confirm it.

Two environments with the same sha256 computed the same float32 arithmetic; different shas show the dependence on the
code path that, on another machine, the library would take by itself. The same environment on two machines with the
same sha256: the two CPUs computed the same bits. The first line names the CPU (vendor, model). docs/reproducibility.md
has the numbers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

from rspo_core.cpu_math import PIN_KEYS, cpu_model, cpu_vendor, pinned_env  # noqa: E402

# AdamW with fused=True wherever the training code builds one (no change to the code itself)
_FUSED_ADAMW = ("import torch\n_AdamW = torch.optim.AdamW\n"
                "class _Fused(_AdamW):\n"
                "    def __init__(self, *a, **k):\n"
                "        k.setdefault('fused', True)\n"
                "        super().__init__(*a, **k)\n"
                "torch.optim.AdamW = _Fused\n")


def environments(machine: str) -> dict[str, dict[str, str]]:
    """name -> the variables set for that run (every other one of PIN_KEYS unset); a name ending in "+fused-adamw"
    also runs AdamW with fused=True."""
    pin = pinned_env("avx2", machine)
    return {
        "native": {},
        "aten=avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
        "aten=default": {"ATEN_CPU_CAPABILITY": "default"},
        "mkl=COMPATIBLE": {"MKL_CBWR": "COMPATIBLE"},
        "pinned": pin,
        "pinned+native-mkl": {k: v for k, v in pin.items() if k != "MKL_CBWR"},
        "pinned+fused-adamw": pin,
        "pinned+mkl=COMPATIBLE+fused-adamw": {**pin, "MKL_CBWR": "COMPATIBLE"},
    }


def run_once(data: Path, out: Path, steps: int, extra_env: dict[str, str], fused_adamw: bool = False) -> dict:
    """One pre-training in a fresh process; {sha256 of model.safetensors, wall_s, cpu_capability}."""
    env = {k: v for k, v in os.environ.items() if k not in PIN_KEYS}
    env.update(extra_env, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    argv = ["rspo_patch.pretrain", "--train", str(data / "train.jsonl"), "--heldout", str(data / "test.jsonl"),
            "--out", str(out), "--steps", str(steps), "--eval-every", "0", "--eval-problems", "20", "--no-progress",
            "--threads", "1"]
    if fused_adamw:  # the same module, run after the prelude (runpy, as -m does)
        cmd = [sys.executable, "-c", _FUSED_ADAMW + f"import runpy, sys\nsys.argv = {argv!r}\n"
               "runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)\n"]
    else:
        cmd = [sys.executable, "-m", *argv]
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, cwd=REPO, check=True, capture_output=True)
    wall = time.perf_counter() - t0
    summary = json.loads((out / "pretrain_summary.json").read_text())
    return {"sha256": hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest(), "wall_s": round(wall, 2),
            "cpu_capability": summary["cpu_math"]["cpu_capability"], "env": extra_env}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=30, help="pre-training steps per run")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    a = p.parse_args(argv)
    from analysis.datasets import make_arithmetic

    results = {}
    cpu = {"machine": platform.machine(), "cpu_vendor": cpu_vendor(), "cpu_model": cpu_model()}
    print(f"CPU: {cpu['cpu_vendor']} / {cpu['cpu_model']} ({cpu['machine']})", flush=True)
    with tempfile.TemporaryDirectory(prefix="cpu-isa-") as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        make_arithmetic(data / "train.jsonl", data / "test.jsonl", tiers=["add2"], n_train=9600, n_test=200, seed=0)
        for name, env in environments(platform.machine()).items():
            results[name] = r = run_once(data, Path(tmp) / name, a.steps, env, name.endswith("+fused-adamw"))
            print(f"{name:34s} {r['sha256'][:16]}  {r['wall_s']:6.2f} s  ATen {r['cpu_capability']}", flush=True)
    groups: dict[str, list[str]] = {}
    for name, r in results.items():
        groups.setdefault(r["sha256"][:16], []).append(name)
    print("same bits:", " | ".join(", ".join(g) for g in groups.values()))
    if a.json:
        a.json.write_text(json.dumps({**cpu, "steps": a.steps, "runs": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
