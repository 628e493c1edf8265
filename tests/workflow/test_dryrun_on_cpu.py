"""Dry runs of the shipped configs: job counts per rule are what the families require (each cell trained once), and
the Slurm profile turns the GPU rules into sbatch calls that request the GPUs (fake sbatch on PATH, nothing runs)."""

from __future__ import annotations

import re

import pytest
from wf_helpers import REPO, dry_run, load_yaml

from rspo_core import cells as C


def _figure_count() -> int:
    import importlib.util

    from analysis.figures import FIGURES

    have_bandit = importlib.util.find_spec("rspo_patch.bandit") is not None
    return sum(1 for spec in FIGURES.values() if spec["needs"] != "bandit" or have_bandit)


def _uses_k(algo: str) -> bool:
    from rspo_patch.estimators import ESTIMATORS

    return ESTIMATORS[algo].uses_k


def test_paper_config_trains_each_cell_once(tmp_path):
    jobs = dry_run(str(REPO / "config" / "paper.yaml")).jobs
    # Trained cells, counted by hand from config/paper.yaml:
    #   1.5B main: pg + baseline k{2,4,8} + rspo_pass k{2,4,8}                        7
    #   n_scaling: rspo_pass k4 n{4,8,16,32}; n16 is main's                           +3
    #   maxk: pg/max + baseline k{2,4,8}/max + rspo_max k{2,4,8}                      +7
    #   grpo: pg (main's) + grpo                                                      +1
    #   peers: pkpo_sloo k4, maxpo k4, passk_chen k4, grpo_passk, rs_grpo,
    #          rspo_pass k8 cosine, pkpo_sloo k8 linear                               +7
    #   contamination: the main cells again                                           +0
    #   7B main                                                                       +7
    assert jobs["train"] == 32
    # Evaluations (generate = verify = score), one per (cell, benchmark):
    #   1.5B base: 5 main benchmarks + aime25 + livemathbench                         7
    #   1.5B main cells: 7 x (5 + 2 contamination)                                    49
    #   n_scaling 3, maxk 7, grpo 1, peers 7 new cells x 5                            90
    #   7B base + 7 cells, x 5                                                        40
    assert jobs["generate"] == jobs["verify"] == jobs["score"] == 7 + 49 + 90 + 40
    assert jobs["prepare_benchmark"] == 8  # 7 benchmarks + the MATH train set
    assert jobs["fetch_model"] == 3  # two policies + the xVerify judge
    assert jobs["figure"] == _figure_count()
    for rule in ("aggregate", "report", "effective_config", "all"):
        assert jobs[rule] == 1
    assert "pretrain_model" not in jobs and "arithmetic" not in jobs


def test_train_jobs_equal_unique_cells_of_the_config(tmp_path):
    cfg = load_yaml(REPO / "config" / "paper.yaml")
    per = C.family_cells(cfg["families"], uses_k=_uses_k)
    listed = sum(len([c for c in cells if not c.is_base]) for cells in per.values())
    unique = C.unique_cells(per, trained_only=True)
    assert listed > len(unique)  # families share cells ...
    assert len(unique) == 32  # ... which are trained once


def test_default_config_dry_run(tmp_path):
    jobs = dry_run(str(REPO / "config" / "config.yaml")).jobs
    # tiny: main 7 cells (pg, baseline and rspo_pass at k 2/4/8) x 3 seeds = 21; n_scaling n 4/8/32 (n 16 is main's)
    # = 3; maxk pg, baseline, rspo_max (max reward) = 3; grpo 1 (pg is main's); peers pkpo_sloo k4, maxpo k4,
    # rspo_pass k8 linear, pkpo_sloo k4 linear = 4 (rspo_pass k4 is main's); small: main_large pg, baseline k4,
    # rspo_pass k4 = 3
    assert jobs["train"] == 21 + 3 + 3 + 1 + 4 + 3
    # every trained cell + both base models on arithmetic; the contamination family (main's pg, baseline k4,
    # rspo_pass k4 x 3 seeds, trained once) + the tiny base model on arithmetic_clean too
    assert jobs["generate"] == jobs["verify"] == jobs["score"] == 35 + 2 + 9 + 1
    assert jobs["pretrain_model"] == 2 and jobs["arithmetic"] == 1 and jobs["base_models_table"] == 1
    assert "fetch_model" not in jobs and "prepare_benchmark" not in jobs  # offline
    assert jobs["figure"] == _figure_count()


def test_smollm2_config_dry_run(tmp_path):
    jobs = dry_run(str(REPO / "config" / "smollm2.yaml")).jobs
    # main: pg and rspo_pass k=4 x seeds 0-2 + baseline k=4 (7); n_scaling n4, n16 (2); maxk pg, rspo_max (2);
    # grpo (1); peers pkpo_sloo, rspo_pass k8 linear (2): the default's families on SmolLM2
    assert jobs["train"] == 14 and jobs["generate"] == 15  # + the base model
    assert jobs["fetch_model"] == 1 and "pretrain_model" not in jobs


def test_contamination_target(tmp_path):
    jobs = dry_run(str(REPO / "config" / "paper.yaml"), ("contamination",)).jobs
    assert jobs["generate"] == 32 * 2  # every trained checkpoint on aime25 and livemathbench
    assert jobs["ngram_audit"] == 1  # one audit of the 7 benchmarks against the MATH train set
    assert jobs["contamination"] == 1


def test_paper_dry_run_with_the_slurm_profile(tmp_path, fake_slurm, monkeypatch, capfd):
    """`snakemake -n --profile slurm --configfile config/paper.yaml` from the repo root: the same job counts."""
    from snakemake.cli import main

    monkeypatch.chdir(REPO)
    with pytest.raises(SystemExit) as done:
        main(["-n", "--profile", "slurm", "--directory", str(tmp_path), "--configfile", "config/paper.yaml"])
    out = capfd.readouterr()
    assert done.value.code == 0, out.err[-3000:]
    stats = dict(re.findall(r"^(\w+)\s+(\d+)$", out.out + out.err, flags=re.M))
    assert stats["train"] == "32" and stats["generate"] == "186" and stats["fetch_model"] == "3"
    assert "Using profiles slurm and workflow specific profile profiles/default" in out.out + out.err


def _touch(path, is_dir=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    if is_dir:
        path.mkdir(exist_ok=True)
        (path / "config.json").write_text("{}")
    else:
        path.write_text("")


def test_slurm_profile_submits_gpu_jobs(tmp_path, fake_slurm, monkeypatch):
    """`snakemake --profile slurm` from the repo root: real sbatch lines built by the plugin, GPUs on GPU rules."""
    import time

    from snakemake.cli import main

    wd = tmp_path / "wd"
    base = "results/eval/model~qwen25_math_1p5b/algo~base/k~1/n~1/reward~pass/seed~0"
    pg = "results/train/model~qwen25_math_1p5b/algo~pg/k~1/n~16/reward~pass/seed~0"
    # inputs of one job per rule kind, so that exactly these four jobs are submitted
    for d in ("results/models/qwen25_math_1p5b", "results/models/xverify"):
        _touch(wd / d, is_dir=True)
    for f in ("math_train", "aime24", "amc23", "math500"):
        _touch(wd / f"results/data/{f}.jsonl")
    time.sleep(0.05)
    _touch(wd / base / "amc23" / "samples.jsonl")
    _touch(wd / base / "math500" / "verified.jsonl")
    targets = [f"{pg}/train_log.jsonl", f"{base}/aime24/samples.jsonl", f"{base}/amc23/verified.jsonl",
               f"{base}/math500/metrics.csv"]
    monkeypatch.chdir(REPO)  # `--profile slurm` resolves ./slurm -> profiles/slurm
    monkeypatch.setenv("RSPO_GPU_PARTITION", "gpu-test")
    monkeypatch.setenv("RSPO_CPU_PARTITION", "cpu-test")
    with pytest.raises(SystemExit):
        main(["--profile", "slurm", "--directory", str(wd), "--retries", "0", "--quiet", "all",
              "--slurm-init-seconds-before-status-checks", "1", *targets, "--configfile", "config/paper.yaml"])
    calls = [line for line in fake_slurm.read_text().splitlines() if line.startswith("sbatch ")]
    by_rule = {re.search(r"--comment rule_(\w+?)_wildcards", c).group(1): c for c in calls}
    assert set(by_rule) == {"train", "generate", "verify", "score"}
    train = by_rule["train"]
    assert "--gpus=8" in train and "-p gpu-test" in train and "--cpus-per-task=64" in train
    assert "--nodes=1" in train and "--requeue" in train and "-t 1440" in train
    assert "--mem 240000" in train and "--exclusive" not in train  # config/paper.yaml's 1.5B size: a common node
    assert "--gpus=1" in by_rule["generate"] and "-p gpu-test" in by_rule["generate"]
    assert "--gpus=1" in by_rule["verify"]  # xVerify judge on a GPU
    assert "--gpus" not in by_rule["score"] and "-p cpu-test" in by_rule["score"]
    assert "--configfiles" in train and "paper.yaml" in train  # the job re-reads the same config
