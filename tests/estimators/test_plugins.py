"""Users' estimator plugins (rspo_patch.estimators.plugins), loaded the ways users load them: .py files by path,
module names, an installed package's entry point (in a fresh virtualenv), and RSPO_BENCH_PLUGINS in a subprocess.

Each loader test runs in a fresh interpreter (``_run``): the registry is process-wide, and a plugin registered here
would leak into every later test of the session.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "rspo_loo"

GOOD = '''
import torch
from rspo_patch.estimators import register_estimator

@register_estimator("challenger", unbiased=False, min_n=2, hyperparameters={"alpha": 0.5},
                    description="test plugin: alpha * (R - mean)")
def challenger(rewards, *, k, alpha):
    return alpha * (rewards - rewards.mean(dim=1, keepdim=True))
'''


def _run(code: str, cwd: Path, env: dict | None = None, python: str = sys.executable) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    full_env.pop("RSPO_BENCH_PLUGINS", None) if "RSPO_BENCH_PLUGINS" not in (env or {}) else None
    return subprocess.run([python, "-c", textwrap.dedent(code)], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=300)


def _load(spec: str, cwd: Path) -> subprocess.CompletedProcess:
    return _run(f"""
        from rspo_patch.estimators import PluginError, load_plugins
        try:
            load_plugins([{spec!r}])
        except PluginError as e:
            print("PLUGIN-ERROR", e)
        """, cwd)


def test_a_plugin_file_registers_a_valid_algo_with_its_origin_and_source_digest(tmp_path):
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "challenger.py").write_text(GOOD)
    proc = _run("""
        import json, torch
        from rspo_patch.estimators import ESTIMATORS, check_estimator_args, compute_weights, load_plugins
        [p] = load_plugins(["plugins/challenger.py"])
        again = load_plugins(["plugins/challenger.py"])  # idempotent: not executed twice
        spec = ESTIMATORS["challenger"]
        check_estimator_args("challenger", n=4, k=1, alpha=2.0)
        w = compute_weights("challenger", torch.tensor([[1.0, 0.0, 0.0, 1.0]]), k=1, alpha=2.0)
        print(json.dumps({"names": p.names, "origin": spec.origin, "sha": spec.source_sha256, "same": again[0] is p,
                          "w": w.tolist(), "hp": spec.hyperparameters}))
        """, tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["names"] == ["challenger"] and out["origin"] == "plugins/challenger.py" and out["same"]
    import hashlib

    expected = hashlib.sha256(b"challenger.py\0" + (tmp_path / "plugins" / "challenger.py").read_bytes() + b"\0")
    assert out["sha"] == expected.hexdigest()
    assert out["w"] == [[1.0, -1.0, -1.0, 1.0]] and out["hp"] == {"alpha": 0.5}


@pytest.mark.parametrize("body,expected", [
    # contradictory metadata
    ('@register_estimator("x1", unbiased=True, uses_k=False, description="t")\ndef x1(r, *, k): return r',
     "estimator 'x1': contradictory or bad metadata: unbiased=True contradicts uses_k=False"),
    ('@register_estimator("x2", unbiased=True, unbiased_at_k1=False, description="t")\ndef x2(r, *, k): return r',
     "unbiased=True (for every k) contradicts unbiased_at_k1=False"),
    ('@register_estimator("x3", unbiased=False, uses_k=False, k_divides_n=True, description="t")\n'
     'def x3(r, *, k): return r', "k_divides_n=True contradicts uses_k=False"),
    ('@register_estimator("x4", unbiased=False, min_n=0, description="t")\ndef x4(r, *, k): return r',
     "min_n must be an int >= 1, got 0"),
    ('@register_estimator("x5", unbiased=False, hyperparameters={"beta": "big"}, description="t")\n'
     'def x5(r, *, k, beta): return r', "default 'big' must be a bool, int or float"),
    ('@register_estimator("x6", unbiased=False, hyperparameters={"beta": 1.0}, description="t")\n'
     'def x6(r, *, k): return r', "does not take the keyword argument 'beta'"),
    # taken and reserved names
    ('@register_estimator("rspo_max", unbiased=True, description="t")\ndef f(r, *, k): return r',
     "estimator 'rspo_max' is already registered by rspo_max (builtin)"),
    ('@register_estimator("rloo", unbiased=False, description="t")\ndef f(r, *, k): return r',
     "estimator name 'rloo' is reserved (an OpenRLHF built-in advantage estimator)"),
    ('@register_estimator("My-Method", unbiased=False, description="t")\ndef f(r, *, k): return r',
     "estimator name 'My-Method' is not valid"),
    # import failures name the plugin's line
    ("import torch\nx = 1\nraise RuntimeError('kaput')", "import failed: RuntimeError: kaput ("),
    ("def f(:\n    pass", "import failed: SyntaxError"),
    ("import torch\nX = 1", "registers no estimator"),
])
def test_a_bad_plugin_is_one_line_naming_the_file_and_the_problem(tmp_path, body, expected):
    name = "bad.py"
    (tmp_path / name).write_text("from rspo_patch.estimators import register_estimator\n" + body + "\n")
    proc = _load(name, tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("PLUGIN-ERROR")]
    assert len(lines) == 1 and f"plugin {name}: " in lines[0] and expected in lines[0], proc.stdout
    if "import failed: RuntimeError" in expected:
        assert f"{tmp_path / name}:4)" in lines[0]  # the raise, one line below the added import


def test_missing_files_and_modules(tmp_path):
    proc = _load("plugins/nope.py", tmp_path)
    assert f"PLUGIN-ERROR plugin plugins/nope.py: file not found ({tmp_path}/plugins/nope.py)" in proc.stdout
    proc = _load("no_such_plugin_module", tmp_path)
    assert "PLUGIN-ERROR plugin no_such_plugin_module: no module named 'no_such_plugin_module'" in proc.stdout


def test_a_half_registered_plugin_leaves_nothing_behind(tmp_path):
    (tmp_path / "half.py").write_text(GOOD + "\nraise ValueError('second half broken')\n")
    proc = _run("""
        from rspo_patch.estimators import ESTIMATORS, PluginError, load_plugins
        try:
            load_plugins(["half.py"])
        except PluginError as e:
            print("ERR", e)
        print("challenger" in ESTIMATORS)
        """, tmp_path)
    assert "import failed: ValueError: second half broken" in proc.stdout and proc.stdout.strip().endswith("False")


def test_subprocesses_get_the_plugins_through_the_environment(tmp_path):
    """What the OpenRLHF launcher exports to its Ray workers: RSPO_BENCH_PLUGINS (absolute targets)."""
    (tmp_path / "challenger.py").write_text(GOOD)
    proc = _run("""
        from rspo_patch.estimators.plugins import exported, load_plugins
        print(exported(load_plugins(["challenger.py"])))
        """, tmp_path)
    value = proc.stdout.strip()
    assert value == str(tmp_path / "challenger.py")
    child = _run("""
        from rspo_patch.estimators import ESTIMATORS, load_plugins
        load_plugins()
        print(ESTIMATORS["challenger"].origin)
        """, REPO, env={"RSPO_BENCH_PLUGINS": value})
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == value


@pytest.fixture(scope="module")
def example_venv(tmp_path_factory, make_user_venv) -> Path:
    """A virtualenv on top of this environment with the example plugin pip-installed in editable mode, as a user
    would: ``pip install -e examples/rspo_loo`` (tests/conftest.py). Returns its python."""
    return make_user_venv(tmp_path_factory.mktemp("example-venv") / "venv", EXAMPLE)


def test_an_installed_plugin_registers_through_its_entry_point(example_venv, tmp_path):
    proc = _run("""
        import json
        from rspo_patch.estimators import ESTIMATORS, load_plugins
        plugins = load_plugins()  # no spec: the entry point group rspo_bench.estimators
        again = load_plugins([{path!r}])  # the same file by path: the module already imported, not run twice
        spec = ESTIMATORS["rspo_pass_loo"]
        print(json.dumps({{"origin": spec.origin, "unbiased": spec.unbiased, "binary_only": spec.binary_only,
                          "same": [p.names for p in again]}}))
        """.format(path=str(EXAMPLE / "src" / "rspo_loo" / "estimators.py")), tmp_path, python=str(example_venv))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["origin"].startswith("entry point rspo_pass_loo = rspo_loo.estimators (package rspo-loo)"), out
    assert out["unbiased"] and out["binary_only"] and ["rspo_pass_loo"] in out["same"]


def test_the_example_plugin_passes_the_suites_check(example_venv, tmp_path):
    """`python -m rspo_patch.estimators check rspo_pass_loo` from the user's environment: unbiased by enumeration."""
    proc = subprocess.run([str(example_venv), "-m", "rspo_patch.estimators", "check", "rspo_pass_loo", "--no-speed"],
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "FAIL" not in proc.stdout, proc.stdout
