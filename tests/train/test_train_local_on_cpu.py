"""The reference trainer and the tiny-model pre-training, end to end on CPU with a very small char-level Llama."""

from __future__ import annotations

import importlib.util
import json
import os

import pytest
import torch

from rspo_patch import train_local
from rspo_patch.charlm import build_char_tokenizer, sample_responses, sequence_logprobs
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
    """A small model pre-trained for 40 steps on 1-digit addition (band [0, 1]: stop at the first evaluation)."""
    out = tmp_path_factory.mktemp("models") / "tiny"
    summary = pretrain(str(data / "train.jsonl"), str(data / "test.jsonl"), str(out), target_pass1=(0.0, 1.0),
                       batch_size=64, lr=3e-3, warmup_steps=5, max_steps=40, eval_every=40, eval_samples=2,
                       max_new_tokens=3, progress=False, model_kwargs=SMALL)
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
    assert "pass@1" in lines[-1] and lines[-1]["loss"] < lines[0]["loss"]
    assert summary["reached_target"] and summary["step"] == 40
    assert summary["heldout_pass@1"] == lines[-1]["pass@1"]


def test_pretrain_is_bit_reproducible(base_model, data, tmp_path):
    out, _ = base_model
    again = tmp_path / "again"
    pretrain(str(data / "train.jsonl"), str(data / "test.jsonl"), str(again), target_pass1=(0.0, 1.0),
             batch_size=64, lr=3e-3, warmup_steps=5, max_steps=40, eval_every=40, eval_samples=2, max_new_tokens=3,
             progress=False, model_kwargs=SMALL)
    a, b = _state(out), _state(again)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_pretrain_rejects_bad_band(data, tmp_path):
    with pytest.raises(ValueError, match="target-pass1"):
        pretrain(str(data / "train.jsonl"), str(data / "test.jsonl"), str(tmp_path / "x"), target_pass1=(0.6, 0.1))


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
])
def test_bad_arguments_fail_before_any_work(base_model, data, tmp_path, extra, match):
    model, _ = base_model
    with pytest.raises(ValueError, match=match):
        train_local.train(_rl_args(model, data, tmp_path / "o", "--steps", "1", *extra))
    assert not (tmp_path / "o").exists()


def test_missing_model_dir_is_a_value_error(data, tmp_path):
    with pytest.raises(ValueError, match="--model"):
        train_local.train(_rl_args(tmp_path / "nowhere", data, tmp_path / "o", "--steps", "1"))


def test_resume_with_different_settings_is_refused(base_model, data, tmp_path):
    model, _ = base_model
    out = tmp_path / "r"
    train_local.train(_rl_args(model, data, out, "--estimator", "pg", "--steps", "1"))
    with pytest.raises(ValueError, match="estimator"):
        train_local.train(_rl_args(model, data, out, "--estimator", "grpo", "--steps", "2"))


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
    s = sample_responses(model, tok, ["1+2=", "13+45="], 3, max_new_tokens=6, seed=5)
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
