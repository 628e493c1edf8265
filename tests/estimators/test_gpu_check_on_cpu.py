"""benchmarks/gpu_check.py on a machine without a GPU: the one-line refusal, the CPU self-test (every check line
printed and passing) behind an import gate that makes this machine look like a bare GPU machine, the comparators
of its checks, which must fail on the differences they are there to catch, and the trainer's ``--precision`` option
that its bf16 check uses.

The gate (``GATE``, run in the child before the script) is a meta-path finder in front of every other finder. It
hides vllm, openrlhf, deepspeed, ray, snakemake, pandas, scipy, matplotlib, math_verify, datasets and jsonschema, and
every other top-level module that is neither the standard library, nor the project's own (rspo_core, rspo_patch,
benchmarks), nor in the installed dependency closure of torch and transformers (their requirements without extras,
from importlib.metadata). Hidden means what absence means: ``importlib.util.find_spec`` gives None, ``import`` raises
ModuleNotFoundError, and importlib.metadata lists only the closure's distributions (so torch and transformers take
the code paths they take where only they are installed). Every ``import`` of a hidden name is recorded with the file
that tried it: the project's code must never try one (torch's and the standard library's own optional imports, such
as ``optree`` or ``org.python.core``, fail over as they would on the bare machine).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # benchmarks/ is not an installed package: it runs from the repository root

from benchmarks import gpu_check  # noqa: E402
from rspo_patch.estimators import ESTIMATORS, get_estimator  # noqa: E402

BARE_MACHINE_LACKS = ("vllm", "openrlhf", "deepspeed", "ray", "snakemake", "pandas", "scipy", "matplotlib",
                      "math_verify", "datasets", "jsonschema")
PROJECT = ("rspo_core", "rspo_patch", "benchmarks")
CHECKS = {"estimators/timing", *(f"estimators/{name}" for name in ESTIMATORS), "setup", "trainer/fp32",
          "trainer/bf16", "sampler/load", "sampler/greedy-fp32", "sampler/seeded-fp32"}

GATE = r"""
import atexit, importlib.abc, importlib.util, json, os, re, runpy, sys
cfg = json.loads(os.environ["GPU_CHECK_GATE"])
blocked, allowed, dists = set(cfg["blocked"]), set(cfg["allowed"]), set(cfg["dists"])
at_start = {m.partition(".")[0] for m in sys.modules}
imports, probes = [], []

def hidden(top):
    if top in blocked:
        return True
    return not (top in allowed or top in sys.stdlib_module_names or top in at_start or top.startswith("_"))

def importer():
    f = sys._getframe(3)
    while f is not None and "importlib" in f.f_code.co_filename:
        f = f.f_back
    return f"{f.f_code.co_filename}:{f.f_lineno}" if f is not None else "?"

class Gate(importlib.abc.MetaPathFinder):
    def __init__(self, finders):
        self.finders = finders
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if hidden(top):
            kind = sys._getframe(2).f_code.co_name  # _find_and_load_unlocked: an import; find_spec: a probe
            (imports if kind == "_find_and_load_unlocked" else probes).append([name, importer()])
            return None
        for f in self.finders:
            spec = f.find_spec(name, path, target) if hasattr(f, "find_spec") else None
            if spec is not None:
                return spec
        return None
    def find_distributions(self, *args, **kwargs):  # importlib.metadata: the closure's distributions only
        for f in self.finders:
            for d in getattr(f, "find_distributions", lambda *a, **k: ())(*args, **kwargs):
                if re.sub(r"[-_.]+", "-", d.metadata["Name"] or "").lower() in dists:
                    yield d
    def invalidate_caches(self):
        for f in self.finders:
            getattr(f, "invalidate_caches", lambda: None)()

sys.meta_path[:] = [Gate(list(sys.meta_path))]
assert importlib.util.find_spec("scipy") is None, "the gate does not hide scipy from probes"
try:
    import pandas
    raise AssertionError("the gate let pandas be imported")
except ModuleNotFoundError:
    pass
imports.clear(); probes.clear()
atexit.register(lambda: json.dump({"imports": imports, "probes": probes,
                                   "modules": sorted({m.partition(".")[0] for m in sys.modules} - at_start)},
                                  open(cfg["out"], "w")))
sys.argv = ["benchmarks.gpu_check", *cfg["argv"]]
runpy.run_module("benchmarks.gpu_check", run_name="__main__", alter_sys=True)
"""


def _norm(dist: str) -> str:
    return re.sub(r"[-_.]+", "-", dist).lower()


def dependency_closure(roots=("torch", "transformers")) -> set[str]:
    """Normalised names of the installed distributions that ``roots`` need, transitively (requirements whose marker
    holds without any extra)."""
    from packaging.requirements import Requirement

    seen, todo = set(), list(roots)
    while todo:
        dist = _norm(todo.pop())
        if dist in seen:
            continue
        try:
            requires = importlib.metadata.requires(dist) or []
        except importlib.metadata.PackageNotFoundError:
            continue  # declared for another platform or Python, not installed
        seen.add(dist)
        for line in requires:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return seen


def allowed_top_level() -> set[str]:
    """Top-level import names of the dependency closure plus the project's own packages."""
    dists = dependency_closure()
    names = {top for top, ds in importlib.metadata.packages_distributions().items() if {_norm(d) for d in ds} & dists}
    return (names | set(PROJECT)) - set(BARE_MACHINE_LACKS)


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return {**env, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", **extra}


@pytest.fixture(scope="module")
def self_test(tmp_path_factory):
    """The quick CPU self-test, run once behind the import gate: (return code, output lines, gate record)."""
    out = tmp_path_factory.mktemp("gate") / "gate.json"
    cfg = {"blocked": list(BARE_MACHINE_LACKS), "allowed": sorted(allowed_top_level()), "out": str(out),
           "dists": sorted(dependency_closure() | {"rspo-bench"}),
           "argv": ["--device", "cpu", "--quick", "--threads", "1"]}
    p = subprocess.run([sys.executable, "-c", GATE], cwd=REPO, env=_env(GPU_CHECK_GATE=json.dumps(cfg)),
                       capture_output=True, text=True, timeout=300)
    return p.returncode, p.stdout.splitlines(), p.stderr, json.loads(out.read_text())


# ---------------------------------------------------------------------------------------------------------------------
# The script as a user runs it


def test_without_a_gpu_it_says_so_in_one_line_and_fails():
    p = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check"], cwd=REPO, env=_env(), capture_output=True,
                       text=True, timeout=120)
    lines = (p.stdout + p.stderr).strip().splitlines()
    assert p.returncode == gpu_check.NO_GPU_EXIT != 0
    assert len(lines) == 1 and lines[0].startswith("gpu_check: no CUDA device visible"), lines


def test_the_self_test_prints_every_check_and_each_passes(self_test):
    rc, lines, stderr, _ = self_test
    assert rc == 0, "\n".join(lines[-30:]) + stderr[-3000:]
    assert "SELF-TEST on cpu" in lines[0] and "compared with itself" in lines[0]
    verdicts = [line.split(":")[0].split(" ", 1) for line in lines if line.startswith(("PASS ", "FAIL "))]
    assert sorted(name for _, name in verdicts) == sorted(CHECKS)  # each check once
    assert all(v == "PASS" for v, _ in verdicts), [line for line in lines if line.startswith("FAIL")]
    assert lines[-1].startswith(f"gpu_check: {len(CHECKS)} checks, 0 failed")
    assert any(line.startswith("INFO sampler/greedy-bf16") for line in lines)
    for line in lines:  # the self-test compares the CPU with itself: exact
        if line.startswith("PASS estimators/") and "timing" not in line:
            assert "max scaled |diff| 0.00e+00" in line, line
        if line.startswith("PASS sampler/") and "fp32" in line:
            assert len(re.findall(r"\b0 unexplained", line)) == 2 and "max |logit diff| 0.0e+00" in line, line


def test_the_self_test_imports_nothing_a_bare_gpu_machine_lacks(self_test):
    _, _, _, gate = self_test
    ours = [(name, where) for name, where in gate["imports"] if where.startswith(str(REPO))]
    assert ours == [], ours  # the project's code never tries a package outside torch + transformers + their deps
    assert {"torch", "transformers", "rspo_core", "rspo_patch", "benchmarks"} <= set(gate["modules"])
    assert not set(gate["modules"]) & set(BARE_MACHINE_LACKS)
    assert gate["probes"] or gate["imports"]  # the gate was asked during the run (torch's optional imports at least)


# ---------------------------------------------------------------------------------------------------------------------
# The comparators fail on what they are meant to catch


def test_rising_needs_a_rise_beyond_two_standard_errors():
    flat = [0.10, 0.14, 0.12, 0.10, 0.14] * 4
    assert not gpu_check.rising(flat)[0]
    noisy_small = [0.10, 0.14, 0.12, 0.10, 0.14] + [0.0] * 10 + [0.12, 0.16, 0.14, 0.12, 0.16]  # +0.02, se 0.013
    assert not gpu_check.rising(noisy_small)[0]
    ok, d, se = gpu_check.rising([0.10, 0.12, 0.11, 0.13, 0.12] + [0.0] * 10 + [0.20, 0.22, 0.21, 0.23, 0.22])
    assert ok and abs(d - 0.10) < 1e-12 and se > 0
    assert not gpu_check.rising([0.2] * 20)[0]  # constant: d = 0, se = 0
    assert not gpu_check.rising([0.3] * 5 + [0.2] * 15)[0]  # falling without noise
    with pytest.raises(ValueError, match="at least 10 steps"):
        gpu_check.rising([0.1] * 9)


def test_scaled_error_catches_a_difference_above_1e_12():
    w = torch.randn(4, 8, dtype=torch.float64)
    assert gpu_check.scaled_error(w.clone(), w) == 0.0
    assert gpu_check.scaled_error(w + 1e-11, w) > gpu_check.EQ_TOL
    big = 1e4 * w
    assert gpu_check.scaled_error(big + 1e-9, big) <= gpu_check.EQ_TOL  # relative to the weights' scale
    nan = w.clone()
    nan[0, 0] = float("nan")
    assert gpu_check.scaled_error(nan, w) == float("inf")
    assert gpu_check.scaled_error(w.float(), w) == float("inf")  # dtype changed on the device
    assert gpu_check.scaled_error(w[:, :4], w) == float("inf")


def test_log_space_tolerance_covers_exactly_the_log_gamma_estimators():
    uses_lgamma = {name for name, spec in ESTIMATORS.items() if "_comb_ratio" in spec.raw_fn.__code__.co_names}
    assert uses_lgamma == set(gpu_check.LOG_SPACE)
    assert gpu_check.case_tolerance("rspo_max", 1024) == gpu_check.EQ_TOL
    assert gpu_check.case_tolerance("rspo_pass", 8) == gpu_check.EQ_TOL
    assert 6e-11 < gpu_check.case_tolerance("rspo_pass", 1024) < 7e-11


def test_cases_follow_each_estimators_metadata():
    assert {kind for kind, _, _ in gpu_check.valid_cases(get_estimator("rspo_pass"), (4, 8))} == {"binary"}
    assert all(n % k == 0 for _, n, k in gpu_check.valid_cases(get_estimator("baseline"), (1, 3, 8, 16)))
    assert all(n > k for _, n, k in gpu_check.valid_cases(get_estimator("maxpo"), (2, 3, 8)))
    assert {k for _, _, k in gpu_check.valid_cases(get_estimator("grpo"), (2, 16))} == {1}
    assert {k for _, _, k in gpu_check.valid_cases(get_estimator("rspo_max"), (16,))} == {1, 2, 4, 8, 15, 16}
    assert gpu_check.hp_variants(get_estimator("grpo_passk")) == [{}, {"norm_by_std": True}]
    R = gpu_check.make_rewards("ties", 6, 5, seed=0)
    assert R.dtype == torch.float64 and set(R.unique().tolist()) <= {-0.5, -0.25, 0.0, 0.25, 0.5}
    assert (R[0] == R[0, 0]).all() and (R[1] == R[1, 0]).all()


def test_first_divergence_and_near_ties():
    assert gpu_check.first_divergence([1, 2, 3], [1, 2, 3]) is None
    assert gpu_check.first_divergence([1, 2, 3], [1, 5, 3]) == 1
    assert gpu_check.first_divergence([1, 2], [1, 2, 3]) == 2
    logits = torch.tensor([0.0, 3.0, 2.5])
    assert gpu_check.near_tie(logits, 1, 2, None) == pytest.approx(0.5)  # greedy: the two tokens' logit gap
    assert gpu_check.near_tie(logits, 1, 0, None) == pytest.approx(3.0)
    # two equal logits: cdf [0.5, 1.0]; u = 0.5 + 1e-7 picks token 1, 1e-7 above the boundary to token 0
    flat = torch.tensor([0.0, 0.0])
    assert gpu_check.near_tie(flat, 1, 0, 0.5 + 1e-7) == pytest.approx(1e-7, abs=1e-12)
    assert gpu_check.near_tie(flat, 0, 1, 0.5 - 1e-7) == pytest.approx(1e-7, abs=1e-12)
    # three tokens, cdf [1/3, 2/3, 1]: u = 0.1 picks token 0; token 2 lies 2/3 - 0.1 away, whatever token 1 does
    assert gpu_check.near_tie(torch.zeros(3), 0, 2, 0.1) == pytest.approx(2 / 3 - 0.1)


def test_a_divergence_is_explained_only_within_twice_the_logit_difference():
    assert gpu_check.explained(gap=1e-6, d=0.0, floor=gpu_check.GREEDY_FLOOR)  # cached vs teacher-forced rounding
    assert gpu_check.explained(gap=3e-5, d=2e-5, floor=gpu_check.GREEDY_FLOOR)
    assert not gpu_check.explained(gap=7e-2, d=1e-6, floor=gpu_check.GREEDY_FLOOR)  # a real difference, e.g. the cache
    assert not gpu_check.explained(gap=2e-6, d=1e-7, floor=gpu_check.CDF_FLOOR)


def test_the_sampler_check_fails_for_a_model_that_differs():
    """The CPU 'device' gets a copy whose weights moved by 1e-2: tokens and logits differ beyond float rounding."""
    import copy

    from rspo_patch.charlm import build_char_tokenizer, build_tiny_llama

    tok = build_char_tokenizer(gpu_check.CHARS)
    model = build_tiny_llama(len(tok), tokenizer=tok, hidden=32, layers=1, heads=2, intermediate=64, seed=3).eval()
    moved = copy.deepcopy(model)
    with torch.no_grad():
        for prm in moved.parameters():
            prm.add_(1e-2 * torch.randn_like(prm))
    rows = gpu_check.arithmetic_rows()[:20]
    cpu = torch.device("cpu")
    ok, detail = gpu_check.compare_sampler({"m": (model, copy.deepcopy(model))}, tok, rows, cpu, greedy=True,
                                           samples=1)
    assert ok and "20/20 rows token-identical" in detail and "max |logit diff| 0.0e+00" in detail
    for greedy in (True, False):
        ok, detail = gpu_check.compare_sampler({"m": (model, moved)}, tok, rows, cpu, greedy=greedy, samples=2)
        same, total = map(int, re.search(r"(\d+)/(\d+) rows token-identical", detail).groups())
        logit_diff = float(re.search(r"max \|logit diff\| (\S+)", detail).group(1))
        assert not ok and same < 0.9 * total and logit_diff > gpu_check.LOGIT_TOL, detail


# ---------------------------------------------------------------------------------------------------------------------
# The trainer's --precision option, added for the bf16 check


def test_precision_fp32_runs_the_old_code_and_bf16_autocasts():
    from rspo_patch.train_local import forward_precision

    cpu = torch.device("cpu")
    w = torch.randn(4, 4)
    with forward_precision("fp32", cpu):
        assert not torch.is_autocast_enabled("cpu") and (w @ w).dtype == torch.float32
    with forward_precision("bf16", cpu):
        assert torch.is_autocast_enabled("cpu") and (w @ w).dtype == torch.bfloat16


def test_a_checkpoint_from_before_the_precision_option_resumes_as_fp32(tmp_path):
    from rspo_patch.train_local import build_parser, checkpoint_stale_reason

    a = build_parser().parse_args(["--model", "m", "--data", "d", "--out", "o"])
    config = {**vars(a), "estimator_hp": {}}
    old = {k: v for k, v in config.items() if k != "precision"}
    (tmp_path / "config.json").write_text(json.dumps(old))
    (tmp_path / "inputs.json").write_text("{}")
    assert checkpoint_stale_reason(str(tmp_path), config, {}) is None
    assert "precision" in checkpoint_stale_reason(str(tmp_path), {**config, "precision": "bf16"}, {})
