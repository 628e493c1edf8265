"""Plugins and hyperparameters in the workflow, planned (dry runs of the real Snakefile on the default config):

* a plugin named by config ``plugins:`` is a valid algo: its cells are planned and the train command loads it and
  carries its source digest; built-in cells' commands are unchanged;
* a plugin that fails to import, takes a name, or declares contradictory metadata stops the dry run in one line
  naming the file and the problem; an unknown algo lists the plugins' names too;
* ``hp`` in a grid entry gives one cell per setting (``algo~rs_grpo+beta=4.0``) whose command passes it, and an unknown
  hyperparameter or one of the wrong kind is one line.
"""

from __future__ import annotations

import copy
import hashlib
import subprocess
import sys

import pytest
import yaml
from wf_helpers import REPO, load_yaml

DEFAULT = load_yaml(REPO / "config" / "config.yaml")

PLUGIN = '''
from rspo_patch.estimators import register_estimator


@register_estimator("challenger", unbiased=False, min_n=2, hyperparameters={"alpha": 0.5},
                    description="test plugin: alpha * (R - mean)")
def challenger(rewards, *, k, alpha):
    return alpha * (rewards - rewards.mean(dim=1, keepdim=True))
'''


def _config(tmp_path, plugins=None, grid=None, **families) -> str:
    cfg = copy.deepcopy(DEFAULT)
    if plugins is not None:
        cfg["plugins"] = plugins
    cfg["families"] = {"main": {**cfg["families"]["main"], "seed": 0,
                                "grid": grid or [{"algo": ["rspo_pass", "challenger"], "k": 2}]}, **families}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return str(path)


def _dry(tmp_path, config, *targets) -> subprocess.CompletedProcess:
    """`snakemake -n -p` run from tmp_path (plugin paths are relative to the working directory)."""
    return subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-n", "-p", "--cores",
                           "2", *targets, "--configfile", config], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)


def _train_commands(out: str) -> dict[str, str]:
    """cell algo component -> its train command in `snakemake -n -p` output."""
    cmds = {}
    for line in out.splitlines():
        if "python -m analysis.train_and_prefill" in line and "--estimator " in line:
            algo = line.split("/algo~")[1].split("/")[0]
            cmds[algo] = line
    return cmds


def test_a_plugin_is_an_algo_whose_command_loads_it_with_its_digest(tmp_path):
    (tmp_path / "plugins").mkdir()
    plugin = tmp_path / "plugins" / "challenger.py"
    plugin.write_text(PLUGIN)
    res = _dry(tmp_path, _config(tmp_path, ["plugins/challenger.py"]))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    cmds = _train_commands(res.stdout)
    assert set(cmds) == {"rspo_pass", "challenger"}, list(cmds)
    digest = hashlib.sha256(b"challenger.py\0" + plugin.read_bytes() + b"\0").hexdigest()
    assert f"--estimator challenger --plugin {plugin} --estimator-source {digest}" in cmds["challenger"]
    assert "--plugin" not in cmds["rspo_pass"] and "--estimator-source" not in cmds["rspo_pass"]


BAD = {
    "import error": ("import torch\nraise ImportError('needs scipy')\n", "import failed: ImportError: needs scipy ("),
    "taken name": ('from rspo_patch.estimators import register_estimator\n'
                   '@register_estimator("grpo", unbiased=False, description="x")\ndef f(r, *, k): return r\n',
                   "estimator 'grpo' is already registered by grpo (builtin)"),
    "contradictory metadata": ('from rspo_patch.estimators import register_estimator\n'
                               '@register_estimator("mine", unbiased=True, uses_k=False, description="x")\n'
                               'def f(r, *, k): return r\n', "unbiased=True contradicts uses_k=False"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_plugin_stops_the_dry_run_in_one_line(tmp_path, case):
    body, expected = BAD[case]
    (tmp_path / "bad_plugin.py").write_text(body)
    res = _dry(tmp_path, _config(tmp_path, ["bad_plugin.py"], grid=[{"algo": "pg"}]))
    assert res.returncode != 0
    lines = [ln for ln in (res.stdout + res.stderr).splitlines() if ln.startswith("config error: plugins: ")]
    assert len(lines) == 1, res.stdout[-2000:] + res.stderr[-2000:]
    assert "plugin bad_plugin.py: " in lines[0] and expected in lines[0], lines[0]
    assert not (tmp_path / "results" / "data").exists()


def test_an_unknown_algo_lists_the_plugins_names(tmp_path):
    (tmp_path / "challenger.py").write_text(PLUGIN)
    res = _dry(tmp_path, _config(tmp_path, ["challenger.py"], grid=[{"algo": "challanger", "k": 2}]))
    assert res.returncode != 0
    line = next(ln for ln in (res.stdout + res.stderr).splitlines() if ln.startswith("config error: family"))
    assert "unknown algorithm (estimator) 'challanger'" in line and "(from plugins: challenger)" in line, line


def test_hyperparameters_are_cells_of_their_own(tmp_path):
    grid = [{"algo": "rs_grpo", "hp": {"beta": [1.0, 4.0]}}, {"algo": "rs_grpo"}]
    res = _dry(tmp_path, _config(tmp_path, grid=grid))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    cmds = _train_commands(res.stdout)
    assert set(cmds) == {"rs_grpo+beta=1.0", "rs_grpo+beta=4.0", "rs_grpo"}, list(cmds)
    assert "--estimator rs_grpo --estimator-hp beta=4.0 " in cmds["rs_grpo+beta=4.0"]
    assert "--estimator-hp" not in cmds["rs_grpo"]


@pytest.mark.parametrize("hp,expected", [
    ({"gamma": 1.0}, "rs_grpo: unknown hyperparameter 'gamma'; allowed: beta"),
    ({"beta": True}, "rs_grpo: hyperparameter beta='true' is not of the kind of its default 2.0"),
])
def test_a_bad_hyperparameter_is_one_line(tmp_path, hp, expected):
    res = _dry(tmp_path, _config(tmp_path, grid=[{"algo": "rs_grpo", "hp": hp}]))
    assert res.returncode != 0
    line = next(ln for ln in (res.stdout + res.stderr).splitlines() if ln.startswith("config error: family"))
    assert expected in line, line
