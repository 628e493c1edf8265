"""rspo_patch.verl against verl 0.9.1's real code, on CPU: the registry's estimators inside verl's advantage dispatch.

verl lives in its own venv (``bash .ci/install_verl_cpu.sh``; its antlr4 pin conflicts with math-verify's), so the
checks run in one subprocess of that venv's python (``verl_checks.py``, ~15 s, most of it ``import verl``) with this
checkout on PYTHONPATH; the tests below read its JSON. They skip only when the venv is missing (CI always has it).

What is checked (details in verl_checks.py): for every estimator in ESTIMATORS, real ``DataProto`` batches (3-4 uid
groups interleaved by a random permutation, ragged response lengths, the reward on the last valid token, equal n,
V1-style ragged groups 8,6,8,5 and 8,6,8,4, padding rows, n = k) through verl's ``ray_trainer.compute_advantage``
with the config Hydra-composed from verl's ppo_trainer.yaml plus ``+algorithm.rspo.k``: advantages exactly equal to
the registry's weights (a per-uid reference loop) times the response mask, float32 (bs, L), returns = advantages,
padding rows 0; (n, k) the metadata forbid are skipped. Also hyperparameters from ``+algorithm.rspo.hyperparameters``,
one-line errors (missing k, AlgoConfig, unknown keys, groups the registry refuses, non-binary rewards, no uid),
baseline's random blocks, verl's own grpo_passk, ``register_all()`` and ``VERL_USE_EXTERNAL_MODULES``.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
VENV = Path(os.environ.get("RSPO_VERL_VENV", REPO / ".venv-verl"))
PYTHON = VENV / "bin" / "python"
F32_EPS = 2.0 ** -23
BUILTIN = ("pg", "grpo", "baseline", "rspo_pass", "rspo_pass_plugin", "rspo_max", "rspo_max_sorted", "rspo_max_plugin",
           "pkpo_s", "pkpo_sloo", "maxpo", "passk_chen", "grpo_passk", "rs_grpo")  # the suite's own estimators


@pytest.fixture(scope="module")
def result() -> dict:
    if not PYTHON.exists():
        pytest.skip(f"no verl venv at {VENV}: run `bash .ci/install_verl_cpu.sh`")
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1",
               PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
    env.pop("VERL_USE_EXTERNAL_MODULES", None)  # verl_checks sets it where it tests it
    proc = subprocess.run([str(PYTHON), "-W", "ignore", str(HERE / "verl_checks.py")], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"verl_checks.py failed (rc={proc.returncode}):\n{proc.stderr[-4000:]}"
    return json.loads(lines[-1][len("RESULT "):])


def test_verl_version(result):
    assert result["verl"] == "0.9.1"


def _check_estimator(result, name):
    cases = result["estimators"].get(name)
    assert cases, f"{name} was not run through verl"
    ran = [c for c in cases if "skipped" not in c]
    assert len(ran) >= 2, f"{name}: only {len(ran)} case(s) ran: {cases}"
    for c in ran:
        tol = 2 * F32_EPS * max(1.0, c["max_abs_ref"])  # float32 rounding, should the (P, n) call ever differ
        assert c["exact"] or c["max_abs_diff"] <= tol, f"{name}, {c['case']}: max |verl - registry| {c['max_abs_diff']}"
        assert c["layout"], f"{name}, {c['case']}: advantages/returns not equal float32 (bs, L)"
        assert c["masked_zero"] and c["padding_zero"], f"{name}, {c['case']}: non-zero advantage off the mask"
    assert any(c["nonzero_responses"] for c in ran), f"{name}: every advantage is 0"


@pytest.mark.parametrize("name", BUILTIN)
def test_estimator_through_verl_dispatch(result, name):
    """verl's compute_advantage gives the registry's weights x response_mask, in verl's layout, for every case the
    estimator's metadata allow."""
    _check_estimator(result, name)


def test_every_registered_estimator(result):
    """Every name in the verl process's ESTIMATORS (the built-ins and any plugin installed there) was checked. The
    names are not parametrised from this process's ESTIMATORS: other test files register toy plugins at import."""
    assert set(BUILTIN) <= set(result["estimators"])
    for name in result["estimators"]:
        _check_estimator(result, name)


def test_skips_follow_metadata(result):
    """Cases are skipped only where the registry refuses the (n, k): baseline's k must divide every group size (so it
    runs on the ragged 8,6,8,4 batch at k=2 but not on 8,6,8,5 at k=4); the leave-one-out estimators need n > k."""
    skipped = {(name, c["case"]) for name, cases in result["estimators"].items() for c in cases if "skipped" in c
               and name in BUILTIN}
    assert skipped == {("baseline", "ragged 8,6,8,5 k=4 + 3 padding rows"), ("pkpo_sloo", "n=k=4"), ("maxpo", "n=k=4")}
    ran = {c["case"] for c in result["estimators"]["baseline"] if "skipped" not in c}
    assert "ragged 8,6,8,4 k=2 + 2 padding rows" in ran


CHECK_GROUPS = {
    "hyperparameters": ("rs_grpo: +algorithm.rspo.hyperparameters", "grpo_passk: boolean and float",
                        "unknown hyperparameter"),
    "errors": ("missing +algorithm.rspo.k", "AlgoConfig dataclass", "pg (uses_k=False)", "unknown +algorithm.rspo key",
               "a uid group smaller than k", "baseline with a group size", "binary-only estimator",
               "a batch without uid"),
    "verl_builtin_grpo_passk": ("rspo_bench.grpo_passk == verl's own",),
    "baseline_random_blocks": ("baseline: the two lowest-reward rows", "baseline: +algorithm.rspo.seed=0 twice",
                               "baseline with +algorithm.rspo.seed=1"),
    "registration": ("import registers every ESTIMATORS name", "verl's own grpo / grpo_passk are untouched",
                     "register_all() again", "register_all() registers an estimator added",
                     "VERL_USE_EXTERNAL_MODULES=rspo_patch.verl"),
}


@pytest.mark.parametrize("group", sorted(CHECK_GROUPS))
def test_checks(result, group):
    checks = result["checks"]
    crashed = {k: v["detail"] for k, v in checks.items() if k.endswith(" ran")}
    assert not crashed, crashed
    for prefix in CHECK_GROUPS[group]:
        found = [k for k in checks if k.startswith(prefix)]
        assert len(found) == 1, f"check {prefix!r} not reported once: {found}"
        assert checks[found[0]]["ok"], f"{found[0]}: {checks[found[0]]['detail']}"


IMPORTS_VERL = re.compile(r"^\s*(from\s+(verl|rspo_patch\.verl)\b|import\s+(verl|rspo_patch\.verl)\b|"
                          r"from\s+rspo_patch\s+import\s+.*\bverl\b)", re.M)


def _imported_modules(path: Path) -> set[str]:
    mods = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            mods |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            mods.add(node.module)
            mods |= {f"{node.module}.{a.name}" for a in node.names}
    return mods


def test_only_rspo_patch_verl_imports_verl():
    """verl is importable only in its venv: nothing in the project but rspo_patch/verl.py imports it, and nothing
    imports rspo_patch.verl (the main environment has no verl)."""
    allowed = {REPO / "rspo_patch" / "verl.py", HERE / "verl_checks.py", REPO / ".ci" / "install_verl_cpu.sh"}
    offenders = []
    for folder in ("rspo_patch", "rspo_core", "analysis", "workflow", "scripts", "tests", ".ci"):
        for path in sorted((REPO / folder).rglob("*")):
            if path in allowed or not path.is_file():
                continue
            if path.suffix == ".py":
                mods = _imported_modules(path)
                if any(m == "verl" or m.startswith("verl.") or m.startswith("rspo_patch.verl") for m in mods):
                    offenders.append(str(path.relative_to(REPO)))
            elif path.suffix in (".smk", ".sh") or path.name == "Snakefile":
                if IMPORTS_VERL.search(path.read_text(errors="replace")):
                    offenders.append(str(path.relative_to(REPO)))
    assert not offenders, f"only rspo_patch/verl.py may import verl: {offenders}"
