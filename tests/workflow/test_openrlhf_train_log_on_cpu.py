"""workflow/scripts/openrlhf_train_log.py: OpenRLHF TensorBoard scalars -> train_log.jsonl (real event files)."""

from __future__ import annotations

import importlib.util
import json

import pytest
from wf_helpers import REPO

spec = importlib.util.spec_from_file_location("openrlhf_train_log", REPO / "workflow" / "scripts" /
                                              "openrlhf_train_log.py")
tb_log = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tb_log)


def _write_run(log_dir, steps, offset=0.0):
    from torch.utils.tensorboard import SummaryWriter

    w = SummaryWriter(str(log_dir))
    for s in steps:  # what OpenRLHF's TensorboardLogger.log_train writes
        w.add_scalar("train/reward", 0.1 * s + offset, s)
        w.add_scalar("train/entropy_loss", 1.0 / s, s)
        w.add_scalar("train/rspo_k", 4.0, s)
        w.add_scalar("train/rspo_weight", 2.0, s)
        w.add_scalar("train/rspo_zero_weight", 0.5, s)
        w.add_scalar("train/policy_loss", -0.3, s)
    w.close()


def test_tensorboard_scalars_become_train_log_rows(tmp_path):
    _write_run(tmp_path / "tb" / "rspo", [1, 2, 3])
    out = tmp_path / "train_log.jsonl"
    assert tb_log.main(["--tensorboard", str(tmp_path / "tb"), "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert rows[1]["reward_mean"] == pytest.approx(0.2) and rows[1]["entropy"] == pytest.approx(0.5)
    assert rows[0]["k"] == 4 and rows[0]["weight_mean"] == 2.0 and rows[0]["frac_zero_weight"] == 0.5
    assert rows[0]["pass_rate"] is None and rows[0]["weight_std"] is None  # not logged by OpenRLHF
    assert rows[2]["policy_loss"] == pytest.approx(-0.3)  # every train/* scalar kept under its own name


def test_rollout_scalars_win_over_the_trained_micro_batch_means(tmp_path):
    """Under --rspo.drop_zero_weight the train/<x> means cover the responses the actor trained on (mostly non-zero
    weights); the whole rollout's values (train/rollout/<x>) are what the log must report where they exist."""
    from torch.utils.tensorboard import SummaryWriter

    w = SummaryWriter(str(tmp_path / "tb" / "rspo"))
    for tag, value in {"train/reward": 0.625, "train/rspo_correct": 0.625, "train/rspo_weight": 2.5,
                       "train/rspo_zero_weight": 0.1, "train/rollout/reward_mean": 0.156,
                       "train/rollout/rspo_correct": 0.156, "train/rollout/rspo_weight": 0.4,
                       "train/rollout/rspo_zero_weight_fraction": 0.875, "train/rollout/rspo_token_nll": 0.9,
                       "train/rspo_k": 4.0, "train/entropy_loss": 0.7}.items():
        w.add_scalar(tag, value, 1)
    w.close()
    (row,) = tb_log.to_rows(tb_log.read_scalars(tmp_path / "tb"))
    assert (row["pass_rate"], row["reward_mean"], row["weight_mean"]) == pytest.approx((0.156, 0.156, 0.4))
    assert row["frac_zero_weight"] == pytest.approx(0.875) and row["entropy"] == pytest.approx(0.9)
    assert row["rspo_correct"] == pytest.approx(0.625)  # the trained-batch mean stays available under its own name


def test_a_resumed_run_overrides_repeated_steps(tmp_path):
    import time

    _write_run(tmp_path / "tb" / "rspo", [1, 2, 3])
    time.sleep(1.1)  # event file names carry the second
    _write_run(tmp_path / "tb" / "rspo", [3, 4], offset=10.0)  # resumed at step 3
    rows = tb_log.to_rows(tb_log.read_scalars(tmp_path / "tb"))
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert rows[2]["reward_mean"] == pytest.approx(10.3)


def test_no_event_files_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no TensorBoard event files"):
        tb_log.read_scalars(tmp_path)
