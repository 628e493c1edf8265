"""The reference trainer and the tiny-model pre-training, end to end on CPU with a very small char-level Llama."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from pathlib import Path

import pytest
import torch

from rspo_patch import train_local
from rspo_core.sampler import SamplingConfig, row_seeds, sample
from rspo_patch.charlm import build_char_tokenizer, sequence_logprobs
from rspo_patch.pretrain import pretrain

SMALL = dict(hidden=32, layers=2, heads=2, intermediate=64)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from analysis.datasets import make_arithmetic

    d = tmp_path_factory.mktemp("data")
    make_arithmetic(d / "train.jsonl", d / "test.jsonl", tiers=["add1"], n_train=80, n_test=20, seed=0)
    return d


@pytest.fixture(scope="module")
def base_model(data, tmp_path_factory):
    """A small model pre-trained for a fixed budget of 40 steps on 1-digit addition (logged pass@1 at step 20)."""
    out = tmp_path_factory.mktemp("models") / "tiny"
    summary = pretrain(str(data / "train.jsonl"), str(data / "test.jsonl"), str(out), steps=40,
                       expect_pass1=(0.0, 1.0), batch_size=64, lr=3e-3, warmup_steps=5, min_lr_ratio=1.0,
                       eval_every=20, eval_samples=2, max_new_tokens=3, progress=False, model_kwargs=SMALL)
    return out, summary


def _state(path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path).state_dict()


def _rl_args(model, data, out, *extra):
    return ["--model", str(model), "--data", str(data / "train.jsonl"), "--out", str(out), "--n", "4",
            "--prompts-per-step", "8", "--max-new-tokens", "3", "--lr", "1e-3", "--warmup-steps", "1",
            "--no-progress", "--tensorboard", "off", "--seed", "3", *extra]


def test_pretrain_writes_a_loadable_hf_folder(base_model, data):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out, summary = base_model
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.pad_token == "<pad>" and tok.eos_token == "<eos>" and tok.bos_token == "<bos>"
    text = "what is 3 plus 4? 7, 12+7=19."
    assert tok.decode(tok(text)["input_ids"], skip_special_tokens=True) == text
    assert tok(text)["input_ids"][0] == tok.bos_token_id
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.config.num_hidden_layers == 2
    lines = [json.loads(x) for x in open(out / "pretrain_log.jsonl")]
    assert [r["step"] for r in lines] == list(range(1, 41))
    assert [r["step"] for r in lines if "pass@1" in r] == [20, 40]  # every eval_every steps and at the end
    assert lines[-1]["loss"] < lines[0]["loss"]
    assert summary["steps"] == 40 and summary["in_expected_range"] is True
    assert summary["heldout_pass@1"] == lines[-1]["pass@1"]
    lrs = [r["lr"] for r in lines]  # the lr each step used: warm-up to 3e-3 over 5 steps, then constant (ratio 1)
    assert lrs[:5] == pytest.approx([3e-3 * (i + 1) / 5 for i in range(5)]) and lrs[5:] == pytest.approx([3e-3] * 35)


def test_pretrain_lr_schedule_is_warmup_then_cosine_to_the_floor():
    """lr_factor against the closed form written out by hand: 4 warm-up steps, cosine over steps 4..12 to 0.1."""
    from rspo_patch.pretrain import lr_factor

    f = [lr_factor(s, steps=13, warmup_steps=4, min_lr_ratio=0.1) for s in range(13)]
    assert f[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    # t = (s - 4) / 8: s = 4 -> 1.0; s = 8 (t = 1/2) -> 0.1 + 0.9 * 0.5; s = 6 (t = 1/4) -> 0.1 + 0.9 * (1 + 0.7071) / 2
    assert f[4] == pytest.approx(1.0) and f[8] == pytest.approx(0.55) and f[12] == pytest.approx(0.1)
    assert f[6] == pytest.approx(0.1 + 0.9 * (1 + 2 ** -0.5) / 2)
    assert all(a >= b for a, b in zip(f[4:], f[5:]))


def test_pretrain_stops_at_the_first_check_reaching_the_threshold(data, tmp_path):
    """--stop-at-pass1: a threshold never reached runs the whole budget (flagged); the pass@1 logged at a check, used
    as the threshold of an identical run, stops that run exactly there (same seed: the same trajectory)."""
    kw = dict(steps=40, batch_size=64, lr=3e-3, warmup_steps=5, eval_every=10, eval_samples=2, max_new_tokens=3,
              progress=False, model_kwargs=SMALL)
    full = pretrain(str(data / "train.jsonl"), str(data / "test.jsonl"), str(tmp_path / "full"), stop_at_pass1=1.0,
                    **kw)
    assert full["steps"] == 40 and full["reached_threshold"] is False
    checks = [json.loads(x) for x in open(tmp_path / "full" / "pretrain_log.jsonl") if "pass@1" in x]
    assert [r["step"] for r in checks] == [10, 20, 30, 40]
    first = next(r for r in checks if r["pass@1"] > 0)  # a weak model answers some 1-digit sums by step 40
    stopped = pretrain(str(data / "train.jsonl"), str(data / "test.jsonl"), str(tmp_path / "stop"),
                       stop_at_pass1=first["pass@1"], **kw)
    assert stopped["steps"] == first["step"] and stopped["reached_threshold"] is True
    assert stopped["heldout_pass@1"] == first["pass@1"]
    assert len(open(tmp_path / "stop" / "pretrain_log.jsonl").readlines()) == first["step"]


def test_pretrain_flags_a_final_pass1_outside_the_expected_range(data, tmp_path, caplog):
    """A start outside the documented range is saved (the budget is the recipe) but flagged in the summary + log."""
    summary = pretrain(str(data / "train.jsonl"), str(data / "test.jsonl"), str(tmp_path / "m"), steps=2,
                       expect_pass1=(0.99, 1.0), batch_size=8, warmup_steps=1, eval_every=0, eval_samples=1,
                       eval_problems=4, max_new_tokens=3, progress=False, model_kwargs=SMALL)
    assert summary["in_expected_range"] is False and summary["expect_pass1"] == [0.99, 1.0]
    assert (tmp_path / "m" / "config.json").exists()
    assert "outside the expected range" in caplog.text


def test_pretrain_is_bit_reproducible(base_model, data, tmp_path):
    out, _ = base_model
    again = tmp_path / "again"
    pretrain(str(data / "train.jsonl"), str(data / "test.jsonl"), str(again), steps=40, expect_pass1=(0.0, 1.0),
             batch_size=64, lr=3e-3, warmup_steps=5, min_lr_ratio=1.0, eval_every=20, eval_samples=2,
             max_new_tokens=3, progress=False, model_kwargs=SMALL)
    a, b = _state(out), _state(again)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_pretrain_rejects_bad_range(data, tmp_path):
    with pytest.raises(ValueError, match="expect-pass1"):
        pretrain(str(data / "train.jsonl"), str(data / "test.jsonl"), str(tmp_path / "x"), expect_pass1=(0.6, 0.1))


def test_end_to_end_rl_run_trains_and_writes_outputs(base_model, data, tmp_path):
    model, _ = base_model
    out = tmp_path / "run"
    res = train_local.train(_rl_args(model, data, out, "--estimator", "rspo_pass", "--k", "2", "--steps", "4",
                                     "--ckpt-every", "2", "--tensorboard", "auto"))
    assert res["final_step"] == 4
    lines = [json.loads(x) for x in open(out / "train_log.jsonl")]
    assert [r["step"] for r in lines] == [1, 2, 3, 4]
    keys = {"step", "k", "reward_mean", "pass_rate", "entropy", "weight_mean", "weight_std", "weight_min",
            "weight_max", "frac_zero_weight", "tokens_per_s", "wall_time"}
    assert keys <= set(lines[0])
    assert all(r["k"] == 2 and 0 <= r["pass_rate"] <= 1 and r["entropy"] > 0 for r in lines)
    # rspo_pass weights are zero exactly on wrong responses
    assert all(abs(r["frac_zero_weight"] - (1 - r["pass_rate"])) < 1e-9 for r in lines)
    assert sum(r["num_backward"] for r in lines) > 0, "the pre-trained model should solve some 1-digit sums"
    start, end = _state(model), _state(out / "model")
    assert any(not torch.equal(start[k], end[k]) for k in start)
    cfg = json.loads((out / "train_config.json").read_text())
    assert cfg["estimator"] == "rspo_pass" and cfg["k"] == 2
    ckpt = tmp_path / ".ckpt-run"
    assert sorted(d for d in os.listdir(ckpt) if d.startswith("step_")) == ["step_000004"]  # --keep-ckpts 1
    if importlib.util.find_spec("tensorboard") is None:  # --tensorboard auto: no event files without it
        return
    assert any(f.startswith("events.") for f in os.listdir(out / "tensorboard"))


def test_kill_and_resume_is_bit_exact(base_model, data, tmp_path):
    model, _ = base_model
    common = ["--estimator", "rspo_pass", "--k", "2", "--ckpt-every", "1"]
    full = tmp_path / "full"
    train_local.train(_rl_args(model, data, full, *common, "--steps", "4"))
    part = tmp_path / "part"
    train_local.train(_rl_args(model, data, part, *common, "--steps", "2"))  # "killed" after step 2
    assert len(open(part / "train_log.jsonl").readlines()) == 2
    train_local.train(_rl_args(model, data, part, *common, "--steps", "4"))  # resumes from step_000002
    a, b = _state(full / "model"), _state(part / "model")
    assert all(torch.equal(a[k], b[k]) for k in a)
    la = [json.loads(x) for x in open(full / "train_log.jsonl")]
    lb = [json.loads(x) for x in open(part / "train_log.jsonl")]
    for ra, rb in zip(la, lb, strict=True):
        assert {k: ra[k] for k in ("step", "reward_mean", "weight_mean", "loss")} == \
               {k: rb[k] for k in ("step", "reward_mean", "weight_mean", "loss")}


def test_all_zero_weights_skip_backward_and_leave_weights_untouched(base_model, data, tmp_path):
    """Gold answers no model can produce: every rspo_pass weight is 0, so no backward pass and no update."""
    model, _ = base_model
    bad = tmp_path / "bad"
    bad.mkdir()
    rows = [json.loads(x) for x in open(data / "train.jsonl")]
    with open(bad / "train.jsonl", "w") as f:
        for r in rows:
            f.write(json.dumps({**r, "answer": "123456789"}) + "\n")
    out = tmp_path / "zero"
    train_local.train(_rl_args(model, bad, out, "--estimator", "rspo_pass", "--k", "2", "--steps", "2"))
    lines = [json.loads(x) for x in open(out / "train_log.jsonl")]
    assert all(r["frac_zero_weight"] == 1.0 and r["num_backward"] == 0 and r["reward_mean"] == 0 for r in lines)
    a, b = _state(model), _state(out / "model")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("extra, match", [
    (["--estimator", "baseline", "--k", "3", "--n", "4"], "k must divide n"),
    (["--estimator", "rspo_pass", "--reward", "max", "--k", "2"], "binary"),
    (["--estimator", "rspo_pass", "--k", "8"], "n >= k"),
    (["--estimator", "nope"], "valid names"),
    (["--template", "fancy"], "template"),
    (["--lr", "-1"], "--lr"),
    (["--k-schedule", "wiggle", "--k", "2"], "schedule"),
    (["--estimator", "grpo", "--estimator-hp", "bogus=1"], "bogus"),
    (["--fallback", "first_word"], "first_word"),
    (["--grade-timeout", "0"], "--grade-timeout"),
])
def test_bad_arguments_fail_before_any_work(base_model, data, tmp_path, extra, match):
    model, _ = base_model
    with pytest.raises(ValueError, match=match):
        train_local.train(_rl_args(model, data, tmp_path / "o", "--steps", "1", *extra))
    assert not (tmp_path / "o").exists()


def test_missing_model_dir_is_a_value_error(data, tmp_path):
    with pytest.raises(ValueError, match="--model"):
        train_local.train(_rl_args(tmp_path / "nowhere", data, tmp_path / "o", "--steps", "1"))


def _log_steps(out):
    return [json.loads(x)["step"] for x in open(out / "train_log.jsonl")]


def test_resume_with_different_settings_starts_fresh(base_model, data, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="rspo_patch.train_local")
    model, _ = base_model
    out = tmp_path / "r"
    train_local.train(_rl_args(model, data, out, "--estimator", "pg", "--steps", "1"))
    caplog.clear()
    train_local.train(_rl_args(model, data, out, "--estimator", "grpo", "--steps", "2"))
    assert "setting 'estimator' is 'grpo' but the checkpoint used 'pg'" in caplog.text
    assert "resumed from" not in caplog.text and _log_steps(out) == [1, 2]


def _perturbed_copy(src, dst):
    """A copy of the HF model folder ``src`` at ``dst`` with every weight scaled by 1.01 (same files, new content)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    m = AutoModelForCausalLM.from_pretrained(src)
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(1.01)
    m.save_pretrained(dst)
    AutoTokenizer.from_pretrained(src).save_pretrained(dst)


def test_checkpoint_is_tied_to_model_and_data_content_not_paths(base_model, data, tmp_path, caplog):
    """Issue 13.1: new weights behind the same --model path (a re-pre-trained base model) must not resume the old
    run's checkpoint; the run starts fresh and equals an uninterrupted run on the new weights. Same for the data file.
    A moved but identical model folder resumes."""
    import shutil

    caplog.set_level(logging.INFO, logger="rspo_patch.train_local")
    model, _ = base_model
    common = ["--estimator", "rspo_pass", "--k", "2", "--ckpt-every", "1"]
    base = tmp_path / "base"
    shutil.copytree(model, base)
    out = tmp_path / "run"
    train_local.train(_rl_args(base, data, out, *common, "--steps", "2"))
    shutil.rmtree(base)
    _perturbed_copy(model, base)  # same path, other weights
    caplog.clear()
    train_local.train(_rl_args(base, data, out, *common, "--steps", "3"))
    assert "model_sha256 changed" in caplog.text and "resumed from" not in caplog.text
    fresh = tmp_path / "fresh"
    train_local.train(_rl_args(base, data, fresh, *common, "--steps", "3"))
    a, b = _state(out / "model"), _state(fresh / "model")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert _log_steps(out) == [1, 2, 3]

    # the data file changes behind the same path: fresh again
    new_data = tmp_path / "data"
    shutil.copytree(data, new_data)
    rows = [json.loads(x) for x in open(new_data / "train.jsonl")]
    (new_data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[::-1]))
    caplog.clear()
    train_local.train(_rl_args(base, new_data, out, *common, "--steps", "4"))
    assert "data_sha256 changed" in caplog.text and "resumed from" not in caplog.text

    # the same weights in another folder: resumes (content, not paths)
    moved = tmp_path / "moved"
    shutil.copytree(base, moved)
    caplog.clear()
    train_local.train(_rl_args(moved, new_data, out, *common, "--steps", "5"))
    assert "resumed from" in caplog.text and "(step 4)" in caplog.text and _log_steps(out) == [1, 2, 3, 4, 5]


def test_policy_loss_aggregations():
    terms = torch.tensor([[-1.0, -2.0, 0.0], [-3.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    w = torch.tensor([2.0, -1.0])
    pl = train_local.policy_loss
    assert pl(terms, mask, w, aggregation="sum", num_seqs=4, total_tokens=5).item() == pytest.approx(-(2 * -3 + 3) / 4)
    assert pl(terms, mask, w, aggregation="seq-mean", num_seqs=4, total_tokens=5).item() == pytest.approx(
        -(2 * -1.5 + 3) / 4)
    assert pl(terms, mask, w, aggregation="token-mean", num_seqs=4, total_tokens=5).item() == pytest.approx(
        -(2 * -3 + 3) / 5)


def test_sampling_masks_and_logprobs_agree_with_generation():
    """Response mask stops after the first EOS; sequence_logprobs recovers the sampling log-probs of the response."""
    from rspo_patch.charlm import build_tiny_llama

    tok = build_char_tokenizer()
    model = build_tiny_llama(len(tok), tokenizer=tok, seed=1, **SMALL)
    s = sample(model, tok, ["1+2="] * 3 + ["13+45="] * 3, row_seeds([5, 6], 3),
               SamplingConfig(temperature=1.0, top_p=1.0, max_new_tokens=6), stop_ids=[tok.eos_token_id],
               batch_size=4, record_entropy=True)
    lp = s.sequences.shape[1] - 6
    for row, rm in zip(s.sequences, s.response_mask):
        resp, valid = row[lp:], rm[lp:].bool()
        eos = (resp == tok.eos_token_id).nonzero()
        n_valid = int(eos[0]) + 1 if len(eos) else 6
        assert int(valid.sum()) == n_valid and valid[:n_valid].all()
    assert s.num_tokens == s.response_mask.sum(1).tolist()
    logp = sequence_logprobs(model, s.sequences, s.attention_mask, s.response_mask)
    # the same sequences scored one at a time, without padding, give the same sequence log-probs
    for i in range(len(s.texts)):
        keep = s.attention_mask[i].bool()
        ids = s.sequences[i][keep].unsqueeze(0)
        single = sequence_logprobs(model, ids, torch.ones_like(ids), s.response_mask[i][keep].unsqueeze(0))
        assert single.sum().item() == pytest.approx(logp[i].sum().item(), abs=1e-4)


def test_ppo_epochs_kl_and_token_mean_options_run(base_model, data, tmp_path):
    """The optional paths: 2 PPO epochs with clipping, a KL penalty to the start model, token-mean aggregation."""
    model, _ = base_model
    out = tmp_path / "ppo"
    train_local.train(_rl_args(model, data, out, "--estimator", "grpo", "--steps", "2", "--ppo-epochs", "2",
                               "--kl-coef", "0.1", "--aggregation", "token-mean", "--k-schedule", "constant"))
    lines = [json.loads(x) for x in open(out / "train_log.jsonl")]
    # with the KL term on, every response is trained on, zero weight or not
    assert all(r["num_backward"] == 8 * 4 for r in lines)
    a, b = _state(model), _state(out / "model")
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_trainer_rollouts_do_not_depend_on_gen_batch_size(base_model, data, tmp_path):
    """Every response has its own random stream (rspo_core.sampler): --gen-batch-size (memory only, and free to
    change on resume) changes neither the log nor the weights. transformers' own sampler draws on the global RNG,
    whose draws depend on how the rows are chunked."""
    model, _ = base_model
    common = ["--estimator", "rspo_pass", "--k", "2", "--steps", "2"]
    train_local.train(_rl_args(model, data, tmp_path / "big", *common, "--gen-batch-size", "512"))
    train_local.train(_rl_args(model, data, tmp_path / "small", *common, "--gen-batch-size", "5"))
    keys = ("reward_mean", "weight_mean", "loss", "response_len_mean", "frac_truncated")
    la, lb = ([json.loads(x) for x in open(tmp_path / d / "train_log.jsonl")] for d in ("big", "small"))
    assert [{k: r[k] for k in keys} for r in la] == [{k: r[k] for k in keys} for r in lb]
    # the entropy is read off logits, which differ at float-rounding level between padded shapes
    assert [r["entropy"] for r in la] == pytest.approx([r["entropy"] for r in lb], rel=1e-6)
    a, b = _state(tmp_path / "big" / "model"), _state(tmp_path / "small" / "model")
    assert all(torch.equal(a[k], b[k]) for k in a)


def _turn_end_model(path):
    """A tiny char-level model whose tokenizer also has the chat turn-end token <|im_end|> (not its EOS), with weights
    set so that <|im_end|> is the first generated token with probability ~1: its only nonzero lm_head entry reads
    hidden dimension 0, which a large constant in every token embedding keeps positive after the final RMSNorm."""
    from rspo_patch.charlm import build_tiny_llama

    tok = build_char_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": ["<|im_end|>"]})
    model = build_tiny_llama(len(tok), tokenizer=tok, seed=0, **SMALL)
    end = tok.convert_tokens_to_ids("<|im_end|>")
    with torch.no_grad():
        model.model.embed_tokens.weight[:, 0] = 100.0
        model.model.norm.weight.zero_()
        model.model.norm.weight[0] = 1.0
        model.lm_head.weight.zero_()
        model.lm_head.weight[end, 0] = 10.0
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return end


def test_trainer_stops_at_chat_turn_end_tokens_like_evaluation(data, tmp_path):
    """The trainer's rollouts end at the same stop tokens as evaluation's (EOS and the chat turn-end tokens of
    rspo_core.sampler.TURN_END_TOKENS): a model that always says <|im_end|> first gives 1-token responses that are
    not truncated. (Stopping at EOS only, a response ran on to --max-new-tokens and counted as truncated.)"""
    from transformers import AutoTokenizer

    from rspo_core.sampler import stop_token_ids

    model = tmp_path / "im_end"
    end = _turn_end_model(model)
    tok = AutoTokenizer.from_pretrained(model)
    assert end in stop_token_ids(tok) and end != tok.eos_token_id
    out = tmp_path / "run"
    train_local.train(_rl_args(model, data, out, "--estimator", "pg", "--steps", "1", "--max-new-tokens", "6"))
    (rec,) = [json.loads(x) for x in open(out / "train_log.jsonl")]
    assert rec["response_len_mean"] == 1.0 and rec["frac_truncated"] == 0.0


@pytest.mark.parametrize("module, argv, match", [
    (train_local, ["--model", "M", "--data", "D", "--out", "O", "--stpes", "20"], "unrecognized arguments: --stpes"),
    (train_local, ["--model", "M", "--data", "D", "--out", "O", "--steps", "0"], "--steps must be >= 1, got 0"),
    (train_local, ["--model", "M", "--data", "D", "--out", "O", "--temperature", "-1"], "--temperature must be > 0"),
    ("pretrain", ["--train", "T", "--heldout", "H", "--out", "O", "--steps", "0"], "--steps must be >= 1"),
    ("pretrain", ["--train", "T", "--heldout", "H", "--out", "O", "--expect-pass1", "0.6", "0.1"], "expect-pass1"),
    ("pretrain", ["--train", "T", "--heldout", "H", "--out", "O", "--min-lr-ratio", "2"], "min-lr-ratio"),
    ("pretrain", ["--train", "T", "--heldout", "H", "--out", "O", "--stop-at-pass1", "0.1", "--eval-every", "0"],
     "stop-at-pass1"),
])
def test_check_argv_names_the_bad_flag_without_reading_paths(module, argv, match):
    """The workflow checks every config-driven command line with the module's own check_argv before any job."""
    from rspo_patch import pretrain as pretrain_module

    check = (pretrain_module if module == "pretrain" else module).check_argv
    check(argv[:6])  # the paths are placeholders: nothing is read
    with pytest.raises(ValueError, match=match):
        check(argv)


def test_base_models_table_reports_each_start(base_model, tmp_path):
    """analysis.base_models: one row per pre-trained folder, read from the summary pretrain wrote; a folder without
    one is a one-line error naming it."""
    import pandas as pd

    from analysis.base_models import BASE_MODEL_COLUMNS, main

    out_dir, summary = base_model
    out = tmp_path / "base_models.csv"
    assert main(["--models", str(out_dir), "--out", str(out)]) == 0
    (row,) = pd.read_csv(out).to_dict("records")
    assert list(pd.read_csv(out).columns) == list(BASE_MODEL_COLUMNS)
    assert row["model"] == out_dir.name and row["steps"] == 40 and row["parameters"] == summary["parameters"]
    assert row["heldout_pass1"] == pytest.approx(summary["heldout_pass@1"])
    assert (row["expect_low"], row["expect_high"], row["in_expected_range"]) == (0.0, 1.0, True)
    with pytest.raises(SystemExit):
        main(["--models", str(tmp_path), "--out", str(tmp_path / "x.csv")])


PLUGIN = '''
from rspo_patch.estimators import register_estimator


@register_estimator("challenger", unbiased=False, min_n=2, hyperparameters={"alpha": 0.5},
                    description="test plugin: alpha * (R - mean)")
def challenger(rewards, *, k, alpha):
    return alpha * (rewards - rewards.mean(dim=1, keepdim=True))
'''


def _train_cli(args, cwd):
    """The trainer as the workflow's job runs it: a fresh process (a plugin registered here would stay in this one)."""
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "rspo_patch.train_local", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})


def test_a_plugin_estimator_trains_and_its_checkpoint_is_tied_to_its_source(base_model, data, tmp_path):
    """--plugin FILE trains with the plugin's weights (hyperparameter included); an edited plugin does not resume the
    old plugin's checkpoint, and --estimator-source refuses a plugin that changed since the job was planned."""
    import hashlib

    model, _ = base_model
    plugin = tmp_path / "challenger.py"
    plugin.write_text(PLUGIN)
    out = tmp_path / "run"
    args = _rl_args(model, data, out, "--estimator", "challenger", "--plugin", "challenger.py", "--estimator-hp",
                    "alpha=2.0", "--steps", "2", "--ckpt-every", "1")
    first = _train_cli(args, tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    cfg = json.loads((out / "train_config.json").read_text())
    digest = hashlib.sha256(b"challenger.py\0" + plugin.read_bytes() + b"\0").hexdigest()
    assert cfg["estimator"] == "challenger" and cfg["estimator_hp"] == {"alpha": 2.0}
    assert cfg["estimator_source"] == digest and "plugin" not in cfg
    rows = [json.loads(x) for x in open(out / "train_log.jsonl")]
    assert [r["step"] for r in rows] == [1, 2] and all(abs(r["weight_mean"]) < 1e-9 for r in rows)  # centred

    plugin.write_text(PLUGIN.replace("alpha * (", "alpha * 2 * ("))
    refused = _train_cli([*args, "--estimator-source", digest], tmp_path)
    assert refused.returncode != 0 and "the plugin changed after the job was planned" in refused.stderr, \
        refused.stderr[-2000:]
    again = _train_cli([*args, "--steps", "3"], tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "setting 'estimator_source'" in again.stderr and "resumed from" not in again.stderr, again.stderr[-3000:]
    assert _log_steps(out) == [1, 2, 3]
