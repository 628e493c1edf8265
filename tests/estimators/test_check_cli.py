"""``python -m rspo_patch.estimators check NAME``: every built-in passes with its declared metadata; false claims fail.

The bias references below are written from the definitions (plain Python floats: the m^k and m^n sample tuples of a
softmax policy, score function e_y - pi), not from rspo_patch/estimators/check.py.
"""

import itertools
import json
import math
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from rspo_patch.estimators import ESTIMATORS, Estimator, compute_weights, register_estimator
from rspo_patch.estimators.check import check_scale, check_unbiased, run_checks

REPO = Path(__file__).resolve().parents[2]
BUILTINS = [e.value for e in Estimator]

PLUGINS = '''
from rspo_patch.estimators import register_estimator


def plug_in(rewards, k):
    """RSPO's Pass@k plug-in form k (1 - c/n)^(k-1) R_i (biased for k >= 2)."""
    return k * (1.0 - rewards.mean(dim=1, keepdim=True)).pow(k - 1) * rewards


@register_estimator("claimed_unbiased", unbiased=True, binary_only=True, n_minus_k=None,
                    description="the plug-in form, declared unbiased")
def claimed_unbiased(rewards, *, k):
    return plug_in(rewards, k)


@register_estimator("declared_biased", unbiased=False, binary_only=True, n_minus_k=None,
                    description="the plug-in form, declared biased")
def declared_biased(rewards, *, k):
    return plug_in(rewards, k)


@register_estimator("writes_input", unbiased=False, unbiased_at_k1=False, uses_k=False,
                    description="R_i - mean, subtracted in place")
def writes_input(rewards, *, k):
    return rewards.sub_(rewards.mean(dim=1, keepdim=True))  # float64 rewards reach it as the caller's tensor


@register_estimator("nan_on_constant", unbiased=False, unbiased_at_k1=False, uses_k=False, min_n=2,
                    description="(R_i - mean) / std without eps: 0/0 on a constant group")
def nan_on_constant(rewards, *, k):
    return (rewards - rewards.mean(dim=1, keepdim=True)) / rewards.std(dim=1, keepdim=True)
'''

BIAS = re.compile(r"largest \|bias\| (\S+) \((\S+) of max\|grad J_k\|\) at n=(\d+), k=(\d+), "
                  r"rewards=(\[[^\]]*\]), logits=(\[[^\]]*\])")


# ---------------------------------------------------------------------------------------------------------------------
# the reference: exact expectations by plain enumeration


def _softmax(theta):
    e = [math.exp(t) for t in theta]
    return [x / sum(e) for x in e]


def _grad_jk(theta, r, k):
    """grad J_k = sum over k-tuples y of P(y) max_t r(y_t) sum_t (e_{y_t} - pi)."""
    pi, m = _softmax(theta), len(theta)
    g = [0.0] * m
    for ys in itertools.product(range(m), repeat=k):
        p, best = math.prod(pi[y] for y in ys), max(r[y] for y in ys)
        for j in range(m):
            g[j] += p * best * sum((y == j) - pi[j] for y in ys)
    return g


def _expected(theta, r, n, k, weights):
    """E[(1/n) sum_i w_i (e_{y_i} - pi)] over the n-tuples y, w = weights(list of the n rewards, k)."""
    pi, m = _softmax(theta), len(theta)
    E = [0.0] * m
    for ys in itertools.product(range(m), repeat=n):
        p, w = math.prod(pi[y] for y in ys), weights([r[y] for y in ys], k)
        for j in range(m):
            E[j] += p * sum(w[i] * ((ys[i] == j) - pi[j]) for i in range(n)) / n
    return E


def _plug_in(rewards, k):
    n, c = len(rewards), sum(rewards)
    return [k * (1 - c / n) ** (k - 1) * x for x in rewards]


def _bias(theta, r, n, k):
    """(max_j |E_j - grad J_k,j|, that / max_j |grad J_k,j|) of the plug-in form at this policy."""
    g, E = _grad_jk(theta, r, k), _expected(theta, r, n, k, _plug_in)
    b = max(abs(a - b) for a, b in zip(E, g))
    return b, b / max(abs(x) for x in g)


# ---------------------------------------------------------------------------------------------------------------------
# CLI runs (subprocesses, two at a time: each imports torch)


RUNS = {
    "rspo_max": ["check", "rspo_max"],
    "claimed_unbiased": ["check", "claimed_unbiased", "--plugin", "{plugin}", "--no-speed"],
    "declared_biased": ["check", "declared_biased", "--plugin", "{plugin}", "--no-speed"],
    "writes_input": ["check", "writes_input", "--plugin", "{plugin}", "--no-speed"],
    "nan_on_constant": ["check", "nan_on_constant", "--plugin", "{plugin}", "--no-speed"],
    "list": ["list", "--plugin", "{plugin}"],
    "bad_plugin": ["check", "rspo_max", "--plugin", "{bad}", "--no-speed"],
    "unknown_name": ["check", "rspo", "--no-speed"],
    "unknown_hp": ["check", "rs_grpo", "--hp", "betta=1", "--no-speed"],
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("check_cli")
    (tmp / "plugins.py").write_text(PLUGINS)
    (tmp / "broken.py").write_text("import torch\nraise RuntimeError('boom at import')\n")

    def run(args):
        args = [a.format(plugin=tmp / "plugins.py", bad=tmp / "broken.py") for a in args]
        return subprocess.run([sys.executable, "-m", "rspo_patch.estimators", *args], cwd=REPO, capture_output=True,
                              text=True, timeout=300)

    with ThreadPoolExecutor(2) as pool:
        return dict(zip(RUNS, pool.map(run, RUNS.values())))


def _line(proc, prop):
    return next(line for line in proc.stdout.splitlines() if re.match(rf"[A-Z]+ {prop}: ", line))


def test_cli_check_prints_one_verdict_per_property(runs):
    proc = runs["rspo_max"]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("rspo_max [builtin]: unbiased")
    assert [line.split(":")[0] for line in lines[1:5]] == ["PASS unbiased", "PASS finite", "PASS scale", "INFO speed"]
    assert "1e-12 + 1e-10 |grad J_k|" in lines[1]
    assert all(f"n={n} k=4 " in lines[4] for n in (16, 64, 256, 1024)) and "x sort)" in lines[4]
    assert re.fullmatch(r"verdict: PASS \[\d+\.\d s\]", lines[5])


def test_cli_list_shows_builtins_and_plugins(runs):
    proc = runs["list"]
    assert proc.returncode == 0, proc.stderr
    names = [line.split()[0] for line in proc.stdout.splitlines()]
    assert sorted(names[:len(BUILTINS)]) == sorted(BUILTINS)
    plugin_line = next(line for line in proc.stdout.splitlines() if line.startswith("claimed_unbiased "))
    assert "unbiased; 0/1 rewards" in plugin_line and "plugins.py]" in plugin_line


def test_false_unbiased_claim_fails_with_the_largest_bias_and_where(runs):
    proc = runs["claimed_unbiased"]
    assert proc.returncode == 1, proc.stdout + proc.stderr
    line = _line(proc, "unbiased")
    assert line.startswith("FAIL unbiased: declared unbiased for every k, but ")
    assert "Pass@k = Max@k" in line
    assert proc.stdout.splitlines()[-1].startswith("verdict: FAIL (unbiased)")
    abs_bias, rel_bias, n, k, rewards, logits = BIAS.search(line).groups()
    ref_abs, ref_rel = _bias(json.loads(logits), json.loads(rewards), int(n), int(k))
    assert math.isclose(float(abs_bias), ref_abs, rel_tol=1e-5) and math.isclose(float(rel_bias), ref_rel, rel_tol=1e-5)
    # the largest: at least the bias at another policy of the grid
    assert float(abs_bias) >= _bias([0.2, -0.7, 0.5], [1.0, 0.0, 0.0], 4, 2)[0] > 1e-3


def test_declared_biased_passes_and_reports_its_bias(runs):
    proc = runs["declared_biased"]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = _line(proc, "unbiased")
    assert line.startswith("PASS unbiased: declared unbiased at k = 1: all ")  # k = 1 is strict (the default claim)
    assert "declared biased at k in {2, 3, 4, 6}: " in line
    abs_bias, _, n, k, rewards, logits = BIAS.search(line).groups()
    assert math.isclose(float(abs_bias), _bias(json.loads(logits), json.loads(rewards), int(n), int(k))[0],
                        rel_tol=1e-5)
    assert BIAS.search(line).groups() == BIAS.search(_line(runs["claimed_unbiased"], "unbiased")).groups()


@pytest.mark.parametrize("name,why", [("writes_input", "modified its input rewards in place"),
                                      ("nan_on_constant", "weights are not finite")])
def test_input_writes_and_nan_weights_fail_finite(runs, name, why):
    proc = runs[name]
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert _line(proc, "unbiased").startswith("PASS unbiased: declared biased at every k")
    line = _line(proc, "finite")
    assert line.startswith("FAIL finite: ") and why in line, line
    if name == "nan_on_constant":  # the row it fails on is named: a constant group
        row = json.loads(re.search(r"alone too: rewards (\[[^\]]*\])", line).group(1))
        assert len(set(row)) == 1


@pytest.mark.parametrize("run,expected", [
    ("bad_plugin", r"plugin .*broken\.py: import failed: RuntimeError: boom at import \(.*broken\.py:2\)"),
    ("unknown_name", r"unknown estimator 'rspo'; valid names: pg, grpo, baseline, .*, maxpo, .*, rs_grpo"),
    ("unknown_hp", r"rs_grpo: unknown hyperparameter\(s\) betta; allowed: beta"),
])
def test_usage_errors_are_one_line_and_exit_2(runs, run, expected):
    proc = runs[run]
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1 and re.fullmatch(expected, proc.stderr.strip()), proc.stderr


# ---------------------------------------------------------------------------------------------------------------------
# in process: the built-ins, and each property's failure


@pytest.mark.parametrize("name", BUILTINS)
def test_every_builtin_passes_with_its_declared_metadata(name):
    verdicts = run_checks(ESTIMATORS[name], speed=False)
    assert [(v.prop, v.status) for v in verdicts] == [("unbiased", "PASS"), ("finite", "PASS"), ("scale", "PASS"),
                                                      ("speed", "SKIP")], "\n".join(v.line() for v in verdicts)


@pytest.fixture
def temporary():
    """Register estimators for one test and remove them afterwards (the registry is process-wide)."""
    names = []

    def add(name, fn, **meta):
        register_estimator(name, description=name, **meta)(fn)
        names.append(name)
        return ESTIMATORS[name]

    yield add
    for name in names:
        ESTIMATORS.pop(name, None)


def test_scale_failures(temporary):
    by_position = temporary("tmp_by_position", lambda r, *, k: r * torch.arange(1.0, r.shape[1] + 1, dtype=r.dtype),
                            unbiased=False, uses_k=False)
    by_batch = temporary("tmp_by_batch", lambda r, *, k: r - r.mean(), unbiased=False, uses_k=False)
    ignores_claim = temporary("tmp_k_scaled", lambda r, *, k: k * r, unbiased=False, uses_k=False)
    for spec, why in ((by_position, "permutation equivariance"), (by_batch, "change with the other rows"),
                      (ignores_claim, "weights change with k, but uses_k=False")):
        v = check_scale(spec, {})
        assert v.status == "FAIL" and why in v.message, v.line()


def test_a_missing_factor_n_is_named_and_a_modest_claim_is_a_note(temporary):
    no_n = temporary("tmp_no_n", lambda r, *, k: compute_weights("rspo_max", r, k) / r.shape[1], unbiased=True)
    v = check_unbiased(no_n, {})
    n = int(BIAS.search(v.message).group(3))
    assert v.status == "FAIL" and f"at n={n} E = {1 / n:.6g} x grad J_k for every policy and k" in v.message
    modest = temporary("tmp_modest", lambda r, *, k: compute_weights("rspo_max", r, k), unbiased=False)
    v = check_unbiased(modest, {})
    assert v.status == "NOTE" and "declared biased at k in {2, 3, 4, 6}, but all" in v.message, v.line()
