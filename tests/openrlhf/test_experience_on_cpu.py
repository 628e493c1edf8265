"""RSPOExperienceMaker on real OpenRLHF 0.11.2 Experience objects (CPU)."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch

pytest.importorskip("openrlhf", reason="openrlhf is not installed: `pip install --no-deps openrlhf==0.11.2` to run "
                    "the OpenRLHF plugin tier")

from rspo_patch.estimators import compute_weights, k_schedule
from rspo_patch.openrlhf.experience import (
    RSPOExperienceMaker,
    group_rewards,
    keep_last_token_only,
    parse_hyperparameters,
    scatter_to_experiences,
)

N = 8
P = 3


def _by_index(experiences, getter):
    """{rollout position: getter(experience, row)} over all samples."""
    out = {}
    for exp in experiences:
        for row, j in enumerate(exp.index):
            out[j] = getter(exp, row)
    return out


def _last_token_values(experiences, field):
    def get(exp, row):
        mask = exp.action_mask[row]
        last = int(mask.nonzero().max())
        return float(getattr(exp, field)[row, last])

    return _by_index(experiences, get)


def _binary_rewards(seed=0):
    gen = torch.Generator().manual_seed(seed)
    r = (torch.rand(P, N, generator=gen) < 0.4).float()
    r[0] = 0.0  # an unsolved group: all weights zero
    r[1, :2] = 1.0
    return r


def _real_rewards(seed=1):
    gen = torch.Generator().manual_seed(seed)
    r = torch.rand(P, N, generator=gen)
    r[r < 0.3] = 0.0
    return r


# ---------------------------------------------------------------------------------------------------------------------
# registry estimators


@pytest.mark.parametrize("name, k, rewards_fn, hp", [
    ("rspo_pass", 4, _binary_rewards, ()),
    ("pg", None, _binary_rewards, ()),
    ("grpo", None, _binary_rewards, ()),
    ("baseline", 4, _real_rewards, ()),
    ("rspo_max", 3, _real_rewards, ()),
    ("pkpo_sloo", 4, _real_rewards, ()),
    ("rs_grpo", None, _real_rewards, ("--rspo.hp", "beta=2")),
])
def test_registry_weights_reach_advantages_by_index(parse_flags, make_experiences, maker_factory, name, k,
                                                     rewards_fn, hp):
    flags = ["--algo.advantage.estimator", name, "--rollout.n_samples_per_prompt", str(N), *hp]
    if k is not None:
        flags += ["--rspo.k", str(k)]
    args = parse_flags(*flags)
    rewards = rewards_fn()
    expected = compute_weights(name, rewards, k=k or 1, **parse_hyperparameters(list(hp[1:]))).reshape(-1)

    experiences = make_experiences(rewards, n=N, micro_batch=5, seed=3)
    out = maker_factory(RSPOExperienceMaker, args).compute_advantages_and_returns(experiences)

    last_adv = _last_token_values(out, "advantages")
    assert sorted(last_adv) == list(range(P * N))
    got = torch.tensor([last_adv[j] for j in range(P * N)])
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    for exp in out:
        mask = exp.action_mask
        # gamma = 1 and kl = 0: the weight is the advantage of every response token, zero elsewhere; no whitening
        expected_tok = exp.info["rspo_weight"].unsqueeze(1) * mask
        torch.testing.assert_close(exp.advantages, expected_tok)
        torch.testing.assert_close(exp.returns, expected_tok)
        assert exp.kl is None
        torch.testing.assert_close(exp.info["return"], exp.info["rspo_weight"])
        torch.testing.assert_close(exp.info["rspo_zero_weight"], (exp.info["rspo_weight"] == 0).float())
        assert torch.all(exp.info["rspo_k"] == (k or 1))
        assert exp.info["rspo_weight"].shape == (len(exp.index),)
        assert "rspo_dropped" not in exp.info
        assert "group_reward_std" in exp.info


def test_rspo_pass_logs_exact_zero_fraction(parse_flags, make_experiences, maker_factory):
    args = parse_flags("--algo.advantage.estimator", "rspo_pass", "--rspo.k", "4",
                       "--rollout.n_samples_per_prompt", str(N))
    rewards = _binary_rewards()
    out = maker_factory(RSPOExperienceMaker, args).compute_advantages_and_returns(
        make_experiences(rewards, n=N, micro_batch=4))
    zero = torch.cat([e.info["rspo_zero_weight"] for e in out])
    weights = compute_weights("rspo_pass", rewards, k=4)
    assert zero.mean().item() == pytest.approx((weights == 0).float().mean().item())
    assert (weights[0] == 0).all()  # the unsolved group
    assert zero.mean().item() > 0.5


def test_kl_penalty_and_cumulative_returns(parse_flags, make_experiences, maker_factory):
    args = parse_flags("--algo.advantage.estimator", "rspo_pass", "--rspo.k", "2",
                       "--rollout.n_samples_per_prompt", str(N))
    rewards = _binary_rewards()
    experiences = make_experiences(rewards, n=N, micro_batch=6, kl_scale=0.5)
    kls = [e.kl.clone() for e in experiences]
    out = maker_factory(RSPOExperienceMaker, args, kl_coef=0.1).compute_advantages_and_returns(experiences)
    for exp, kl in zip(out, kls):
        mask = exp.action_mask.float()
        last = mask.size(1) - 1 - mask.fliplr().argmax(dim=1)
        per_token = -0.1 * kl * mask
        per_token[torch.arange(mask.size(0)), last] += exp.info["rspo_weight"]
        expected = per_token.flip(1).cumsum(1).flip(1)  # gamma = 1
        torch.testing.assert_close(exp.advantages, expected, rtol=1e-5, atol=1e-6)


def test_k_schedule_follows_global_step(parse_flags, make_experiences, maker_factory):
    args = parse_flags("--algo.advantage.estimator", "rspo_pass", "--rspo.k", "6", "--rspo.k_schedule", "linear",
                       "--rspo.schedule_steps", "4", "--rollout.n_samples_per_prompt", str(N))
    maker = maker_factory(RSPOExperienceMaker, args)
    rewards = _binary_rewards()
    seen = []
    for step in range(5):  # one step past the end: clamped to the last k
        maker.global_step = step
        out = maker.compute_advantages_and_returns(make_experiences(rewards, n=N, micro_batch=8))
        k = int(out[0].info["rspo_k"][0])
        seen.append(k)
        got = torch.tensor([v for _, v in sorted(_last_token_values(out, "advantages").items())])
        torch.testing.assert_close(got, compute_weights("rspo_pass", rewards, k=k).reshape(-1))
    assert seen == [k_schedule("linear", 6, min(s, 3), 4) for s in range(5)]
    assert seen[0] == 6 and seen[-1] == 1


def test_weights_beyond_clip_range_are_counted(parse_flags, make_experiences, maker_factory):
    args = parse_flags("--algo.advantage.estimator", "rspo_pass", "--rspo.k", "8", "--reward.clip_range", "-2", "2",
                       "--rollout.n_samples_per_prompt", str(N))
    rewards = torch.zeros(P, N)
    rewards[:, 0] = 1.0  # one success per group: weight k = 8
    out = maker_factory(RSPOExperienceMaker, args).compute_advantages_and_returns(
        make_experiences(rewards, n=N, micro_batch=8))
    clipped = torch.cat([e.info["rspo_weight_clipped"] for e in out])
    assert clipped.sum().item() == P
    assert max(_last_token_values(out, "advantages").values()) == pytest.approx(2.0)


# ---------------------------------------------------------------------------------------------------------------------
# --rspo.drop_zero_weight


def _samples(experiences):
    """[(sequence tuple, advantages tuple, loss-token count, rspo_weight)] of every response, in a canonical order."""
    out = []
    for exp in experiences:
        for row in range(exp.sequences.size(0)):
            mask = exp.action_mask[row].bool()
            seq = exp.sequences[row][exp.attention_mask[row].bool()]
            out.append((tuple(seq.tolist()), tuple(exp.advantages[row][mask].tolist()), int(mask.sum()),
                        float(exp.info["rspo_weight"][row])))
    return sorted(out)


@pytest.mark.parametrize("ranks, train_batch", [(1, 8), (2, 8), (1, 24)])
def test_drop_zero_weight_removes_responses_from_the_update(parse_flags, make_experiences, maker_factory, ranks,
                                                            train_batch):
    """Zero-weight responses leave the actor's micro-batches: every non-zero weight goes on with its advantages, the
    count is padded up to whole --train.batch_size optimizer steps with the SHORTEST zero-weight responses (one loss
    token, zero advantage), and every rank gets the same number of samples in the same number of experiences."""
    flags = ["--algo.advantage.estimator", "rspo_pass", "--rspo.k", "4", "--rollout.n_samples_per_prompt", str(N),
             "--train.batch_size", str(train_batch), "--actor.num_gpus_per_node", str(ranks)]
    rewards = _binary_rewards()
    plain = maker_factory(RSPOExperienceMaker, parse_flags(*flags)).compute_advantages_and_returns(
        make_experiences(rewards, n=N, micro_batch=5))
    maker = maker_factory(RSPOExperienceMaker, parse_flags(*flags, "--rspo.drop_zero_weight"))
    dropped = maker.compute_advantages_and_returns(make_experiences(rewards, n=N, micro_batch=5))

    weights = compute_weights("rspo_pass", rewards, k=4).reshape(-1)
    nonzero = int((weights != 0).sum())
    expected_count = max(train_batch, -(-nonzero // train_batch) * train_batch)
    all_plain, all_kept = _samples(plain), _samples(dropped)
    assert len(all_kept) == expected_count < P * N or train_batch == P * N
    assert [s for s in all_plain if s[3] != 0] == [s for s in all_kept if s[3] != 0]  # same responses, advantages
    pads = [s for s in all_kept if s[3] == 0]
    assert all(tokens == 1 and adv == (0.0,) for _, adv, tokens, _ in pads)
    zero_lengths = sorted(len(seq) for seq, _, _, w in all_plain if w == 0)
    assert sorted(len(seq) for seq, *_ in pads) == zero_lengths[:len(pads)]  # the shortest ones
    sizes = [exp.sequences.size(0) for exp in dropped]
    assert len(set(sizes)) == 1 and len(dropped) % ranks == 0  # async_run_method_batch: equal chunks per rank
    from rspo_patch.openrlhf.experience import rollout_stats

    stats = rollout_stats(lambda exps: {"rollout/num_samples": float(sum(e.sequences.size(0) for e in exps))}, maker,
                          dropped)
    assert stats["rollout/num_samples"] == P * N  # computed over the whole rollout, not the kept responses
    assert stats["rollout/rspo_dropped_fraction"] == pytest.approx(1 - expected_count / (P * N))
    assert stats["rollout/rspo_zero_weight_fraction"] == pytest.approx(1 - nonzero / (P * N))
    # rollout-wide means of the info fields, against the registry's weights of every response
    assert stats["rollout/rspo_weight"] == pytest.approx(float(weights.double().mean()))


def test_token_mean_policy_loss_gradient_is_the_weighted_log_likelihood(parse_flags, make_experiences,
                                                                       maker_factory):
    """Through OpenRLHF's real PolicyLoss (token-mean, ratio 1): d loss / d log pi(y_i,t) = -w_i / T_kept."""
    from openrlhf.models.loss import PolicyLoss

    rewards = _binary_rewards()
    for drop in (False, True):
        flags = ["--algo.advantage.estimator", "rspo_pass", "--rspo.k", "4", "--rollout.n_samples_per_prompt", str(N),
                 "--rollout.micro_batch_size", str(P * N)]  # one batch: train.batch_size = P * N, nothing removed
        args = parse_flags(*flags, *(["--rspo.drop_zero_weight"] if drop else []))
        out = maker_factory(RSPOExperienceMaker, args).compute_advantages_and_returns(
            make_experiences(rewards, n=N, micro_batch=P * N))
        (exp,) = out
        loss_fn = PolicyLoss(token_level_loss=args.actor.loss_agg_mode == "token-mean")
        log_probs = torch.zeros_like(exp.advantages, requires_grad=True)
        loss, *_ = loss_fn(log_probs, log_probs.detach(), exp.advantages, action_mask=exp.action_mask)
        loss.backward()
        tokens = exp.action_mask.sum()
        expected = -exp.info["rspo_weight"].unsqueeze(1) * exp.action_mask / tokens
        torch.testing.assert_close(log_probs.grad, expected)
        if drop:
            assert tokens < sum(int(length) for length in exp.response_length)


# ---------------------------------------------------------------------------------------------------------------------
# built-in estimators are untouched


@pytest.mark.parametrize("name", ["group_norm", "rloo", "dr_grpo", "reinforce_baseline", "reinforce"])
def test_builtin_estimators_match_stock_maker(parse_flags, make_experiences, maker_factory, name):
    from openrlhf.trainer.ppo_utils.experience_maker import RemoteExperienceMaker

    args = parse_flags("--algo.advantage.estimator", name, "--rollout.n_samples_per_prompt", str(N))
    experiences = make_experiences(_real_rewards(), n=N, micro_batch=5, kl_scale=0.2)
    ours = maker_factory(RSPOExperienceMaker, copy.deepcopy(args), kl_coef=0.01).compute_advantages_and_returns(
        copy.deepcopy(experiences))
    stock = maker_factory(RemoteExperienceMaker, copy.deepcopy(args), kl_coef=0.01).compute_advantages_and_returns(
        copy.deepcopy(experiences))
    for a, b in zip(ours, stock):
        assert a.index == b.index
        torch.testing.assert_close(a.advantages, b.advantages, rtol=0, atol=0)
        torch.testing.assert_close(a.returns, b.returns, rtol=0, atol=0)
        assert set(a.info) == set(b.info)
        assert not any(key.startswith("rspo_") for key in a.info)


@pytest.mark.parametrize("name, expected", [
    ("group_norm", [.866, -.866, -.866, .866, -.5, -.5, -.5, 1.5]),
    ("dr_grpo", [.5, -.5, -.5, .5, -.25, -.25, -.25, .75]),
    ("rloo", [.667, -.667, -.667, .667, -.333, -.333, -.333, 1.0]),
])
def test_builtin_reference_values(parse_flags, make_experiences, maker_factory, name, expected):
    args = parse_flags("--algo.advantage.estimator", name, "--rollout.n_samples_per_prompt", "4",
                       "--rollout.batch_size", "2", "--train.batch_size", "8")
    out = maker_factory(RSPOExperienceMaker, args).compute_advantages_and_returns(
        make_experiences([1, 0, 0, 1, 0, 0, 0, 1], n=4, micro_batch=3))
    got = _last_token_values(out, "advantages")
    assert [round(got[j], 3) for j in range(8)] == pytest.approx(expected, abs=1e-3)


# ---------------------------------------------------------------------------------------------------------------------
# pure pieces


def test_group_and_scatter_roundtrip(make_experiences):
    rewards = torch.arange(P * N, dtype=torch.float32)
    experiences = make_experiences(rewards, n=N, micro_batch=7, seed=5)
    grouped, indices, exp_len = group_rewards(experiences, N)
    torch.testing.assert_close(grouped, rewards.reshape(P, N))
    back = scatter_to_experiences(grouped, indices, exp_len)
    for exp, values in zip(experiences, back):
        torch.testing.assert_close(values, exp.rewards)


def test_group_rewards_rejects_bad_groups(make_experiences):
    experiences = make_experiences(torch.zeros(2 * 4), n=4, micro_batch=3)
    with pytest.raises(ValueError, match="n_samples_per_prompt=3"):
        group_rewards(experiences, 3)
    experiences[0].index[0] = experiences[1].index[0]
    with pytest.raises(ValueError, match="permutation"):
        group_rewards(experiences, 4)


def test_keep_last_token_only():
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]], dtype=torch.bool)
    out = keep_last_token_only(mask, torch.tensor([True, False, True]))
    assert out.tolist() == [[False, False, True, False], [True, True, False, False], [False, False, False, True]]
    assert out.dtype == mask.dtype


def test_parse_hyperparameters():
    assert parse_hyperparameters(["beta=2", "norm_by_std=False", "eps=1e-6"]) == {
        "beta": 2.0, "norm_by_std": False, "eps": 1e-6}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_hyperparameters(["beta"])
    with pytest.raises(ValueError, match="beta"):
        parse_hyperparameters(["beta=high"])


def test_registry_estimator_needs_launcher_args(parse_flags, maker_factory):
    args = parse_flags("--algo.advantage.estimator", "rspo_pass", "--rspo.k", "2",
                       "--rollout.n_samples_per_prompt", "4", "--rollout.batch_size", "2", "--train.batch_size", "8")
    del args.rspo
    with pytest.raises(ValueError, match="rspo_patch.openrlhf.launch"):
        maker_factory(RSPOExperienceMaker, args)


# ---------------------------------------------------------------------------------------------------------------------
# reward file -> OpenRLHF Experience -> rollout split -> weights


def test_reward_func_to_weights_pipeline(parse_flags, maker_factory, monkeypatch):
    """OpenRLHF's own path from a reward_func result to advantages: SingleTurnAgentExecutor grades each response,
    SamplesGenerator turns it into an Experience, split_rollout_samples sets Experience.index and batches."""
    import asyncio

    from openrlhf.trainer.ppo_utils.samples_generator import SamplesGenerator
    from openrlhf.utils.agent import SingleTurnAgentExecutor

    from rspo_patch.charlm import BASE_CHARS, build_char_tokenizer
    from rspo_patch.openrlhf.launch import REWARD_FUNC_FILE

    monkeypatch.setenv("RSPO_REWARD", "pass")
    monkeypatch.delenv("RSPO_TOKENIZER", raising=False)
    args = parse_flags("--algo.advantage.estimator", "rspo_pass", "--rspo.k", "2", "--rollout.n_samples_per_prompt",
                       "4", "--rollout.batch_size", "2", "--rollout.micro_batch_size", "3", "--train.batch_size", "8")
    tokenizer = build_char_tokenizer(BASE_CHARS + "\\{}")
    executor = SingleTurnAgentExecutor(remote_rm_url=[str(REWARD_FUNC_FILE)])
    generator = SamplesGenerator(SimpleNamespace(args=args), None, None, tokenizer, None)
    problems = [("2+3=", "5", ["\\boxed{5}", "\\boxed{6}", "\\boxed{5}", "7"]),
                ("4*4=", "16", ["\\boxed{15}", "\\boxed{16}", "\\boxed{1}", "\\boxed{61}"])]
    samples, correct = [], []
    for prompt, gold, outputs in problems:
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        for text in outputs:
            ids = prompt_ids + tokenizer(text, add_special_tokens=False)["input_ids"]
            query = tokenizer.decode(ids, skip_special_tokens=False)
            (info,) = asyncio.run(executor._fetch_rewards_via_func([query], [prompt], [gold]))
            response = {"prompt": prompt, "label": gold, "images": None, "mm_train_inputs": None,
                        "observation_tokens": ids, "action_ranges": [(len(prompt_ids), len(ids))],
                        "rollout_log_probs": None, "truncated": False, "reward": info["rewards"],
                        "scores": info["scores"], "extra_logs": info["extra_logs"]}
            samples.append(generator._process_response_into_experience(response, max_len=64))
            correct.append(text.startswith("\\boxed{" + gold + "}"))
    maker = maker_factory(RSPOExperienceMaker, args)
    maker.tokenizer = tokenizer
    experiences = maker.split_rollout_samples(samples)
    for exp in experiences:  # what make_experience sets without a reference model
        exp.kl = torch.zeros_like(exp.action_mask, dtype=torch.float32)
    out = maker.compute_advantages_and_returns(experiences)

    rewards = torch.tensor(correct, dtype=torch.float32).reshape(2, 4)
    got = _by_index(out, lambda exp, row: float(exp.info["rspo_weight"][row]))
    torch.testing.assert_close(torch.tensor([got[j] for j in range(8)]),
                               compute_weights("rspo_pass", rewards, k=2).reshape(-1))
    assert torch.cat([e.info["rspo_correct"] for e in out]).sum().item() == sum(correct)


def test_dropping_every_response_keeps_the_loss_finite(parse_flags, make_experiences, maker_factory):
    """All weights zero (no group solved) with --rspo.drop_zero_weight: OpenRLHF's PolicyLoss stays finite with zero
    gradient, because one token per dropped response stays in the mask; a fully cleared mask would give 0/0 = NaN."""
    from openrlhf.models.loss import PolicyLoss
    from openrlhf.utils.loss_utils import get_loss_batch_info

    args = parse_flags("--algo.advantage.estimator", "rspo_pass", "--rspo.k", "4", "--rollout.n_samples_per_prompt",
                       str(N), "--rspo.drop_zero_weight", "--rollout.micro_batch_size", str(P * N))
    (exp,) = maker_factory(RSPOExperienceMaker, args).compute_advantages_and_returns(
        make_experiences(torch.zeros(P, N), n=N, micro_batch=P * N))
    assert exp.info["rspo_dropped"].sum() == P * N
    loss_fn = PolicyLoss(token_level_loss=True)
    for mask, finite in ((exp.action_mask, True), (torch.zeros_like(exp.action_mask), False)):
        log_probs = torch.zeros_like(exp.advantages, requires_grad=True)
        batch_info = get_loss_batch_info(SimpleNamespace(), mask)  # global token / sample counts, as in training
        loss, *_ = loss_fn(log_probs, log_probs.detach(), exp.advantages, action_mask=mask, **batch_info)
        loss.backward()
        assert bool(torch.isfinite(loss)) is finite
        if finite:
            assert loss.item() == 0.0 and torch.all(log_probs.grad == 0)


# ------------------------------------------------------------------------- the engine's finish reason (item 4)


@pytest.mark.parametrize("kind", ["pass", "max"])
def test_rewards_use_the_engines_finish_reason_and_token_count(parse_flags, make_experiences, maker_factory,
                                                               monkeypatch, kind):
    """A response vLLM cut at max_new_tokens (finish_reason "length" -> Experience.truncated) is graded as evaluation
    grades it (rspo_core.grading: wrong), however right its text looks to reward_func; the max reward's length is the
    engine's token count (Experience.response_length), not a re-tokenisation."""
    from rspo_core import grading as verify

    monkeypatch.setenv("RSPO_REWARD", kind)
    monkeypatch.setenv("RSPO_MAX_NEW_TOKENS", "8")
    name = "rspo_pass" if kind == "pass" else "rspo_max"
    args = parse_flags("--algo.advantage.estimator", name, "--rspo.k", "2", "--rollout.n_samples_per_prompt", str(N),
                       "--rollout.max_new_tokens", "8")
    text_verdict = torch.tensor([1.0, 1, 0, 1, 1, 1, 0, 0] * P)  # reward_func's verdict on each text
    truncated = torch.tensor([0, 1, 0, 0, 1, 0, 1, 0] * P, dtype=torch.bool)  # the engine's finish_reason
    lengths = torch.tensor([3, 8, 5, 2, 8, 7, 8, 4] * P)
    experiences = make_experiences(text_verdict, n=N, micro_batch=5)
    for exp in experiences:  # what SamplesGenerator builds from the engine output and reward_func's extra_logs
        exp.truncated = truncated[exp.index]
        exp.response_length = lengths[exp.index].float()
        exp.info["rspo_correct"] = text_verdict[exp.index].clone()
    maker = maker_factory(RSPOExperienceMaker, args)
    out = maker.compute_advantages_and_returns(experiences)

    # evaluation's verdict: the same right answer is wrong when the engine says the sample was truncated
    right = "so the answer is \\boxed{4}"
    eval_correct = torch.tensor([float(bool(c) and verify.grade(right, "4", finish_reason="length" if t else "stop"))
                                 for c, t in zip(text_verdict.tolist(), truncated.tolist())])
    if kind == "pass":
        expected_rewards = eval_correct
    else:  # paper §5.5: 1 - 0.5 * L / max_new_tokens for a correct response
        expected_rewards = eval_correct * (1 - 0.5 * lengths.float() / 8)
    got = _by_index(out, lambda exp, row: float(exp.info["reward"][row]))
    torch.testing.assert_close(torch.tensor([got[j] for j in range(N * P)]), expected_rewards)
    weights = _by_index(out, lambda exp, row: float(exp.info["rspo_weight"][row]))
    expected_w = compute_weights(name, expected_rewards.reshape(P, N), k=2).reshape(-1)
    torch.testing.assert_close(torch.tensor([weights[j] for j in range(N * P)]), expected_w)


def test_rollout_token_nll_is_the_mean_negative_log_prob_of_every_sampled_token(make_experiences):
    """rollout/rspo_token_nll over the whole rollout: sampled tokens' -log pi, averaged over action-mask tokens (by
    hand: the first experience's tokens at log-prob -1.0, every other token at -0.25)."""
    from rspo_patch.openrlhf.experience import rollout_means

    exps = make_experiences(_binary_rewards(), n=N, micro_batch=5)
    for i, exp in enumerate(exps):
        exp.action_log_probs = torch.full_like(exp.action_log_probs, -1.0 if i == 0 else -0.25)
    first = float(exps[0].action_mask.sum())
    total = float(sum(exp.action_mask.sum() for exp in exps))
    assert 0 < first < total
    stats = rollout_means(exps)
    assert stats["rollout/rspo_token_nll"] == pytest.approx((1.0 * first + 0.25 * (total - first)) / total)
