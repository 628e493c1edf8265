"""The ONE real end-to-end run: the micro config (tests/workflow/micro/config.yaml) through the whole DAG.

Run once per session by conftest's ``micro_run_killed_and_resumed`` fixture (Snakemake's report of the same run is
checked by test_snakemake_report_on_cpu):

1. start `snakemake` on one training cell, SIGKILL the whole process group as soon as the trainer has written its
   first checkpoint (a crash in the middle of training: no clean-up by Snakemake);
2. `snakemake --unlock`, then `snakemake --cores 2` (default target): the interrupted cell is rerun because the
   default profile sets rerun-incomplete, RESUMES from its undeclared checkpoint, and the run finishes with every
   figure of analysis.figures, the tables and the report.

Real modules, real processes, no mocks: a few minutes on 2 idle cores.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess

import pytest
from wf_helpers import MICRO_CELL as CELL
from wf_helpers import MICRO_STEPS as STEPS
from wf_helpers import REPO, snakemake_cmd

from rspo_core.cpu_math import is_x86_64, math_path


@pytest.mark.timeout(1200)
def test_micro_run_killed_mid_training_resumes_and_builds_every_figure(micro_run_killed_and_resumed):
    wd, killed_at = micro_run_killed_and_resumed  # conftest: steps 1 (SIGKILL after a checkpoint) and 2 (rerun)
    train_log = wd / "results" / "train" / CELL / "train_log.jsonl"

    # the killed cell resumed from its checkpoint instead of starting over, and its log has every step once
    train_stdout = (wd / "results" / "logs" / "train" / f"{CELL}.log").read_text()
    assert f"(step {max(killed_at)})" in train_stdout and "resumed from" in train_stdout, train_stdout[-2000:]
    steps = [json.loads(line)["step"] for line in train_log.read_text().splitlines() if line.strip()]
    assert steps == list(range(1, STEPS + 1)), steps

    # every figure analysis.figures knows, with its PNG and sidecar; the tables; the report
    from analysis.figures import FIGURES

    figures = wd / "results" / "figures"
    for name in FIGURES:
        if FIGURES[name]["needs"] == "bandit":
            continue
        for ext in ("pdf", "png", "json"):
            assert (figures / f"{name}.{ext}").stat().st_size > 0, f"{name}.{ext}"
    for table in ("passk.csv", "maxk.csv", "train_curves.csv"):
        assert (wd / "results" / "tables" / table).stat().st_size > 0
    import pandas as pd

    passk = pd.read_csv(wd / "results" / "tables" / "passk.csv")
    assert set(passk["algo"]) == {"base", "pg", "rspo_pass"}
    assert set(passk["k"]) == {1, 2, 4}
    assert (wd / "results" / "report.html").stat().st_size > 0

    # the CPU reference path ran the math the config pins (cpu_isa: avx2 by the schema's default): what torch reported in
    # the pre-training and the training job, and the base-model table the report shows
    if is_x86_64(platform.machine()) and math_path()["cpu_capability"] in ("AVX2", "AVX512"):
        pre = json.loads((wd / "results" / "models" / "tiny" / "pretrain_summary.json").read_text())["cpu_math"]
        train = json.loads((wd / "results" / "train" / CELL / "train_config.json").read_text())["cpu_math"]
        for ran in (pre, train):
            assert (ran["cpu_capability"], ran["mkl_cbwr"], ran["onednn_max_cpu_isa"]) == ("AVX2", "AVX2,STRICT",
                                                                                            "AVX2"), ran
        assert set(pd.read_csv(wd / "results" / "tables" / "base_models.csv")["cpu_capability"]) == {"AVX2"}

    # the training jobs sampled their cells' evaluation (analysis.train_and_prefill): the generate job of a trained
    # cell only moved the pre-filled file into place, the base model's sampled; the reference for the pre-filled bytes
    # is the train job's own generate flags rerun as a separate generate process, under the same math pin
    logs = wd / "results" / "logs" / "eval"
    cells = sorted(set(passk["cell"]))
    assert len(cells) == 3 and CELL in cells, cells
    for cell in cells:
        log = (logs / cell / "arithmetic" / "generate.log").read_text()
        expect = "0 done, 40 to generate" if "algo~base" in cell else "40 done, 0 to generate"
        assert f"arithmetic: 40 problems, {expect}" in log, (cell, log[-1000:])
    shell = next(line for path in sorted((wd / ".snakemake" / "log").glob("*.log"))
                 for line in path.read_text().splitlines()
                 if "analysis.train_and_prefill" in line and f"--out results/train/{CELL} " in line)
    prefix, group = shell.split(" python -m analysis.train_and_prefill ")[0], shell.split("--then-generate ")[1]
    group = group.split(" > ")[0].replace(f"results/partial/generate/{CELL}/arithmetic.jsonl", "ref/partial.jsonl")
    group = group.replace(f"results/eval/{CELL}/arithmetic/samples.jsonl", "ref/samples.jsonl")
    prefix = prefix.replace("Shell command: ", "")
    ref = subprocess.run(["bash", "-c", f"{prefix} python -m analysis.generate {group}"], cwd=wd, capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert ref.returncode == 0 and "40 problems, 0 done, 40 to generate" in ref.stderr, ref.stderr[-2000:]
    assert (wd / "ref" / "samples.jsonl").read_bytes() == \
        (wd / "results" / "eval" / CELL / "arithmetic" / "samples.jsonl").read_bytes()

    # a second run has nothing to do
    dry = subprocess.run(snakemake_cmd(wd, "-n"), cwd=REPO, capture_output=True, text=True)
    assert "Nothing to be done" in dry.stdout + dry.stderr, dry.stdout[-2000:]
