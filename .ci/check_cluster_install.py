"""CI check of the cluster install (scripts/install_cluster.sh), as far as a CPU machine allows.

    python .ci/check_cluster_install.py [--report-dir DIR]

1. pip's resolver, in ``--dry-run --report`` mode and ignoring what is installed here, over what the script installs
   before flash-attn: ``torch==2.13.0`` (this machine's CPU wheel stands in for the CUDA one: same version, same
   metadata) and the project's ``gpu`` extra. A conflict makes pip fail (ResolutionImpossible): the check fails.
2. OpenRLHF 0.11.2 is installed with ``--no-deps``, so pip never checks its requirements: its Requires-Dist (from
   pip's report on ``openrlhf[vllm]==0.11.2 --no-deps``) must be satisfied by the resolved set, every one but
   flash-attn (installed last, built against torch with ``--no-build-isolation``; source-only, GPU-only).
3. The pins that must hold together: torch 2.13.0, vllm 0.29.0, transformers 5.15.0, deepspeed 0.19.6, ray 2.55.0.

Exit 0 with a one-line summary, or 1 with one line per problem. Needs the package index (CI has it).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
OPENRLHF = "openrlhf[vllm]==0.11.2"
INSTALLED_LAST = {"flash-attn"}  # built by the script's last step, with --no-build-isolation
PINS = {"torch": "2.13.0", "vllm": "0.29.0", "transformers": "5.15.0", "deepspeed": "0.19.6", "ray": "2.55.0",
        "openrlhf": None}


def pip_report(args: list[str], report: Path) -> dict:
    """``pip install --dry-run --ignore-installed --report REPORT ARGS``; the parsed report. RuntimeError with pip's
    last lines when pip fails (a resolver conflict, a missing version)."""
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
           "--report", str(report), *args]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise RuntimeError(f"pip's resolver rejected {' '.join(args)}:\n{tail}")
    return json.loads(report.read_text())


def resolved_versions(report: dict) -> dict[str, Version]:
    """canonical name -> version of everything a pip report would install."""
    return {canonicalize_name(item["metadata"]["name"]): Version(item["metadata"]["version"])
            for item in report["install"]}


def unmet_requirements(requires_dist: list[str], extras: set[str], resolved: dict[str, Version],
                       skip: set[str]) -> list[str]:
    """The requirements (PEP 508 strings, markers evaluated for this Python and ``extras``) that ``resolved`` does
    not satisfy: missing, or a version outside the specifier. Names in ``skip`` are not checked."""
    problems = []
    env = default_environment()
    for text in requires_dist:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        if name in skip:
            continue
        if req.marker is not None and not any(req.marker.evaluate({**env, "extra": e}) for e in (extras or {""})):
            continue
        if name not in resolved:
            problems.append(f"{text}: not in the resolved set")
        elif not req.specifier.contains(resolved[name], prereleases=True):
            problems.append(f"{text}: resolved {name}=={resolved[name]}")
    return problems


def check(report_dir: Path) -> list[str]:
    """Run the three checks; the list of problems (empty when the cluster install resolves)."""
    full = pip_report(["torch==2.13.0", ".[gpu]"], report_dir / "cluster.json")
    resolved = resolved_versions(full)
    orl = pip_report(["--no-deps", OPENRLHF], report_dir / "openrlhf.json")
    meta = orl["install"][0]["metadata"]
    problems = [f"OpenRLHF {meta['version']} requires {p}"
                for p in unmet_requirements(meta.get("requires_dist", []), {"vllm"}, resolved, INSTALLED_LAST)]
    resolved[canonicalize_name(meta["name"])] = Version(meta["version"])
    for name, pin in PINS.items():
        got = resolved.get(name)
        if got is None:
            problems.append(f"{name}: not installed by the cluster install")
        elif pin is not None and got.base_version != pin:
            problems.append(f"{name}: resolved {got}, expected {pin}")
    return problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--report-dir", type=Path, default=None, help="keep pip's JSON reports here")
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        report_dir = a.report_dir or Path(tmp)
        report_dir.mkdir(parents=True, exist_ok=True)
        try:
            problems = check(report_dir)
        except RuntimeError as err:
            print(f"cluster install: {err}", file=sys.stderr)
            return 1
        n = len(json.loads((report_dir / "cluster.json").read_text())["install"])
    if problems:
        for line in problems:
            print(f"cluster install: {line}", file=sys.stderr)
        return 1
    print(f"cluster install resolves: {n} packages + openrlhf 0.11.2 (--no-deps, its requirements met) + flash-attn "
          f"last; torch {PINS['torch']}, vllm {PINS['vllm']}, transformers {PINS['transformers']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
