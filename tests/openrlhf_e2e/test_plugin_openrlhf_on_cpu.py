"""A user's estimator plugin in OpenRLHF's real loop on CPU, through the workflow's train rule: config ``plugins:``
names a .py file; the train command passes it to the launcher (``--rspo.plugin``), which loads it before OpenRLHF's
parser is built (its name becomes an ``--algo.advantage.estimator`` choice) and exports it to Ray; the experience
maker inside OpenRLHF's Ray actor loads it again and computes the rollout's weights with it. The plugin records each
call (process, shape, k) to a file, so the test sees where its code ran. Watched until the actor's first update, then
stopped: the weights of a whole rollout step have been computed by then (a full run to the end is the DAG test's).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
import yaml
from e2e_helpers import REPO, SKIP_WITHOUT_STACK, read_jsonl, shim_env, snakemake_cmd, write_config

pytestmark = [SKIP_WITHOUT_STACK, pytest.mark.timeout(1200)]

PLUGIN = '''
"""Test plugin: RSPO's Pass@k weight under another name, recording every call."""
import json
import os
import sys

from rspo_patch.estimators import get_estimator, register_estimator


@register_estimator("traced_rspo", unbiased=True, binary_only=True, description="rspo_pass, calls recorded")
def traced_rspo(rewards, *, k):
    with open(os.environ["RSPO_TEST_PLUGIN_CALLS"], "a") as fh:
        fh.write(json.dumps({"pid": os.getpid(), "argv0": sys.argv[0], "shape": list(rewards.shape), "k": k}) + "\\n")
    return get_estimator("rspo_pass").raw_fn(rewards, k=k)
'''
CELL = "model~tiny/algo~traced_rspo/k~2/n~4/reward~pass/seed~0"


def test_a_plugin_estimator_computes_the_weights_inside_openrlhfs_ray_actor(tiny_model, tmp_path):
    wd = tmp_path / "wd"
    wd.mkdir()
    plugin = tmp_path / "traced_plugin.py"
    plugin.write_text(PLUGIN)
    config = write_config(wd / "config.yaml", tiny_model)
    cfg = yaml.safe_load(config.read_text())
    cfg["plugins"] = [str(plugin)]
    cfg["families"]["main"]["grid"] = [{"algo": "traced_rspo", "k": 2}]
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    calls, probe = tmp_path / "calls.jsonl", tmp_path / "probe.jsonl"
    log = wd / "results" / "logs" / "train" / f"{CELL}.log"
    with open(tmp_path / "snakemake.log", "w") as out:
        proc = subprocess.Popen(snakemake_cmd(wd, config, f"results/train/{CELL}/train_log.jsonl"), cwd=REPO,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                env=shim_env(RSPO_CPU_PROBE_FILE=str(probe), RSPO_TEST_PLUGIN_CALLS=str(calls)))
        deadline = time.time() + 900
        try:
            while not (probe.exists() and any(r.get("event") == "fit_start" for r in read_jsonl(probe))):
                assert proc.poll() is None, ((tmp_path / "snakemake.log").read_text()[-3000:]
                                             + (log.read_text()[-4000:] if log.exists() else ""))
                assert time.time() < deadline, "the plugin run never reached its first update"
                time.sleep(0.5)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = log.read_text()
    # the launcher accepted the plugin's name as --algo.advantage.estimator (argparse would have exited with 2) and
    # OpenRLHF's actor trained on its weights (fit_start); the calls say where the weights were computed
    rows = read_jsonl(calls)
    assert rows, "the plugin was never called"
    # every call ran in a Ray worker process (OpenRLHF's trainer actor), none in the launcher or snakemake
    assert all("default_worker" in r["argv0"] for r in rows), rows
    # one call per rollout step with the rollout's groups: rollout.batch_size 2 prompts x n 4, k 2 (micro config)
    assert rows[0]["shape"][1] == 4 and rows[0]["k"] == 2, rows
    assert "Traceback" not in text, text[-3000:]
