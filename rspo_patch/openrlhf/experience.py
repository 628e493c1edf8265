"""RSPO estimators inside OpenRLHF 0.11.2: an experience maker that turns registry weights into per-token advantages.

``RSPOExperienceMaker`` subclasses OpenRLHF's ``RemoteExperienceMaker`` and overrides only
``compute_advantages_and_returns``. For an estimator name from ``rspo_patch.estimators`` it

1. casts rewards to fp32 and applies OpenRLHF's length penalties (DAPO overlong / ProRL stop-properly), as upstream;
2. regroups the per-sample rewards by ``Experience.index`` (the rollout order; experiences may arrive shuffled or
   re-batched) into a tensor ``R`` of shape ``(P, n)``, n = ``--rollout.n_samples_per_prompt``;
3. calls the pure registry function ``W = spec.fn(R, k=k, **hp)`` (no estimator maths here) with k from ``--rspo.k``
   and the ``--rspo.k_schedule`` at the current rollout step;
4. scatters ``W`` back to the experiences and runs OpenRLHF's usual per-token path: the scalar goes on the last response
   token (``compute_reward``, clamped to ``--reward.clip_range``) minus ``kl_coef * kl`` per token, cumulative returns
   with gamma = 1, ``advantages = returns``; there is NO batch whitening (whitening would subtract a batch mean from the
   weights and rescale them, which breaks the estimator's unbiasedness and its exact zeros).

Any other name (``gae``, ``reinforce``, ``rloo``, ``group_norm``, ...) goes to ``super()`` unchanged.

With ``--algo.kl.init_coef 0``, ``--train.batch_size == rollout.batch_size * n`` and ``--train.max_epochs 1`` the PPO
ratio is 1 and the actor's update is the plain weighted policy gradient of the registry's convention.

Token aggregation: use ``--actor.loss_agg_mode token-mean`` (OpenRLHF's default; the launcher warns otherwise).
The registry's convention is ``loss = -(1/(P n)) sum_i w_i log pi(y_i)`` with ``log pi(y_i) = sum_t log pi(y_i,t)``.
token-mean gives ``-(1/T) sum_i w_i sum_t log pi(y_i,t)`` with T the total response tokens of the optimizer step,
i.e. exactly that loss times the positive batch constant ``P n / T = 1 / mean length``: every response keeps the
relative weight the estimator gave it, so an unbiased estimator stays unbiased up to a step-size factor.
seq-mean-token-mean gives ``-(1/(P n)) sum_i (w_i / L_i) sum_t log pi(y_i,t)``: each response is re-weighted by
``1 / L_i``, a length-dependent factor that biases the update towards short responses and breaks unbiasedness.

Zero weights and ``--rspo.drop_zero_weight``: RSPO gives exactly zero weight to wrong answers and to whole groups whose
``n - c < k - 1`` (paper §5.1: "we remove zero gradient weight responses to reduce training time"). With the flag,
``drop_zero_weight`` takes those responses out of the list handed to the actor ranks, so no training forward/backward
runs for them. Two constraints of 0.11.2 shape it: DeepSpeed's gradient-accumulation count is fixed by
``--train.batch_size``, and every rank must run the same number of micro-batches (collectives per micro-batch and per
optimizer step). So the kept count is rounded UP to whole ``--train.batch_size`` steps with the shortest zero-weight
responses as padding; a pad keeps only its last loss token (``keep_last_token_only``) and zero advantages, because
0.11.2 divides by the step's token count all-reduced over ranks (a step of fully masked rows would make the loss NaN);
and the kept responses are dealt to the ranks by length in equal numbers. A zero weight contributes nothing to the
policy gradient with kl_coef = 0 either way; what changes is compute and the token-mean normaliser (dropped tokens no
longer count). OpenRLHF's rollout statistics still see the whole rollout (``take_full_rollout``, trainer.py).

Engine verdicts: OpenRLHF passes the reward file only the decoded text, so ``apply_engine_verdicts`` recomputes every
reward from the text's verdict (``rspo_correct``) and the engine's finish reason / token count (truncated -> wrong, as
evaluation grades it; the max reward's length = the engine's count), for built-in estimators too.

Logged (every tensor in ``experience.info`` reaches train/* in TensorBoard / W&B, averaged over the samples the actor
trained on):
``rspo_weight`` (the weight, before clipping), ``rspo_zero_weight`` (fraction of exactly-zero weights),
``rspo_weight_clipped`` (fraction clamped by ``--reward.clip_range``), ``rspo_k`` (k used this step), and with
``--rspo.drop_zero_weight`` ``rspo_dropped`` (1 on padding responses) and, per rollout step, ``rollout/rspo_*``:
zero-weight, removed and padding fractions, and the fraction of tokens still trained on. Always, over the whole rollout
(``rollout_means``): ``rollout/rspo_correct``, ``rollout/rspo_weight``, ``rollout/rspo_token_nll``. OpenRLHF itself logs
``reward``, ``return``, ``group_reward_std``, ``policy_loss``, ``kl`` and, when ``--actor.entropy_coef`` is not None
(the launcher defaults it to 0: computed and logged, not optimised), ``entropy_loss`` = the token-mean policy entropy.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field
from typing import Any

import torch

from rspo_core.hparams import parse_hp
from rspo_patch.openrlhf._version import check_openrlhf_version

check_openrlhf_version()  # before touching OpenRLHF internals

from openrlhf.models.utils import compute_reward  # noqa: E402
from openrlhf.trainer.ppo_utils.experience_maker import RemoteExperienceMaker  # noqa: E402
from openrlhf.trainer.ppo_utils.length_penalty import apply_length_penalties  # noqa: E402

from rspo_patch.estimators import (  # noqa: E402
    ESTIMATORS,
    K_SCHEDULES,
    RESERVED_NAMES,
    get_estimator,
    k_schedule,
    load_plugins,
)

logger = logging.getLogger(__name__)

# users' estimators in this process (a Ray actor, or the launcher): installed entry points and the plugins the launcher
# exported in RSPO_BENCH_PLUGINS (rspo_patch.openrlhf.launch.load_argv_plugins); nothing without plugins
load_plugins()

#: Advantage estimators OpenRLHF 0.11.2 implements itself (``--algo.advantage.estimator`` choices).
BUILTIN_ESTIMATORS = ("gae", "reinforce", "rloo", "reinforce_baseline", "group_norm", "dr_grpo", "flash_reinforce")

_UNRESERVED = set(BUILTIN_ESTIMATORS) - RESERVED_NAMES
if _UNRESERVED:  # pragma: no cover - guards a future edit: the registry refuses these names, plugins' included
    raise RuntimeError(f"OpenRLHF built-ins missing from rspo_patch.estimators.RESERVED_NAMES: {sorted(_UNRESERVED)}")


def is_registry_estimator(name: str) -> bool:
    """True for a name from ``rspo_patch.estimators`` (handled here), False for an OpenRLHF built-in."""
    return name in ESTIMATORS


# ---------------------------------------------------------------------------------------------------------------------
# settings


def parse_hyperparameters(items: list[str] | None) -> dict[str, Any]:
    """``["beta=2", "norm_by_std=false"]`` -> ``{"beta": 2, "norm_by_std": False}`` (``--rspo.hp KEY=VALUE ...``).

    The one parser both trainers use (:func:`rspo_core.hparams.parse_hp`). ValueError on a malformed item.
    """
    return parse_hp(items, flag="--rspo.hp")


@dataclass(frozen=True)
class RSPOSettings:
    """What the experience maker needs from ``args.rspo`` (filled by ``rspo_patch.openrlhf.launch``).

    k               the estimator's k at step 0 (k0 of the schedule)
    k_schedule      constant | linear | cosine (``rspo_patch.estimators.k_schedule``)
    schedule_steps  rollout steps the schedule spans; None: the trainer derives it from the prompt dataset
    drop_zero_weight remove exactly-zero-weight responses from the actor's update (see module docstring)
    hyperparameters keyword hyperparameters of the estimator (``--rspo.hp``)
    """

    estimator: str
    k: int = 1
    k_schedule: str = "constant"
    schedule_steps: int | None = None
    drop_zero_weight: bool = False
    hyperparameters: dict = field(default_factory=dict)

    @classmethod
    def from_args(cls, args) -> "RSPOSettings":
        """Read ``args.algo.advantage.estimator`` and ``args.rspo.*`` (OpenRLHF's hierarchized namespace)."""
        name = args.algo.advantage.estimator
        rspo = getattr(args, "rspo", None)
        if rspo is None:
            raise ValueError(
                f"estimator {name!r} comes from rspo_patch.estimators but args has no 'rspo' section; "
                f"start training with `python -m rspo_patch.openrlhf.launch ...`"
            )
        spec = get_estimator(name)
        k = getattr(rspo, "k", None)
        if k is None:
            if spec.uses_k:
                raise ValueError(f"{name}: --rspo.k is required (the estimator depends on k)")
            k = 1
        kind = getattr(rspo, "k_schedule", "constant") or "constant"
        if kind not in K_SCHEDULES:
            raise ValueError(f"unknown --rspo.k_schedule {kind!r}; expected one of {', '.join(K_SCHEDULES)}")
        steps = getattr(rspo, "schedule_steps", None)
        return cls(
            estimator=name,
            k=int(k),
            k_schedule=kind,
            schedule_steps=int(steps) if steps else None,
            drop_zero_weight=bool(getattr(rspo, "drop_zero_weight", False)),
            hyperparameters=parse_hyperparameters(getattr(rspo, "hp", None)),
        )


# ---------------------------------------------------------------------------------------------------------------------
# pure pieces


def group_rewards(experiences, n: int) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Regroup per-sample rewards into prompt groups by ``Experience.index``.

    experiences: list of Experience, each with ``rewards`` (B_e,) and ``index`` (B_e ints: rollout positions).
    Returns ``(R, indices, exp_len)``: R (P, n) with row p = the n samples of prompt p in rollout order
    (rollout position j -> R.view(-1)[j]); indices (N,) the concatenated ``index`` lists; exp_len [B_e].
    ValueError if the indices are not a permutation of 0..N-1 or N is not a multiple of n.
    """
    if n < 1:
        raise ValueError(f"n_samples_per_prompt must be >= 1, got {n}")
    exp_len = [len(e.index) for e in experiences]
    indices = torch.tensor(list(itertools.chain.from_iterable(e.index for e in experiences)), dtype=torch.long)
    raw = torch.cat([e.rewards.reshape(-1) for e in experiences], dim=0)
    total = raw.numel()
    if indices.numel() != total:
        raise ValueError(f"experiences carry {total} rewards but {indices.numel()} indices")
    if not torch.equal(torch.sort(indices).values, torch.arange(total)):
        raise ValueError(f"Experience.index values must be a permutation of 0..{total - 1}")
    if total % n != 0:
        raise ValueError(
            f"{total} samples cannot form groups of n_samples_per_prompt={n}: RSPO weights need whole prompt groups"
        )
    rewards = torch.empty_like(raw)
    rewards[indices] = raw
    return rewards.reshape(-1, n), indices, exp_len


def scatter_to_experiences(values: torch.Tensor, indices: torch.Tensor, exp_len: list[int]) -> tuple[torch.Tensor, ...]:
    """Inverse of ``group_rewards``: values (P, n) in rollout order -> one (B_e,) tensor per experience."""
    return values.reshape(-1)[indices].split(exp_len)


def engine_verdicts(correct: torch.Tensor, truncated: torch.Tensor, num_tokens: torch.Tensor, *, kind: str,
                    max_new_tokens: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(rewards, correct) from the grader's verdicts and the ENGINE's finish reason and token count, all (B,).

    correct      the grader's verdict on the text (``reward_func``'s ``rspo_correct``), 0/1
    truncated    vLLM's ``finish_reason == "length"`` (``Experience.truncated``): graded incorrect, as evaluation does
                 (``rspo_core.grading``: a truncated sample never counts)
    num_tokens   generated tokens, stop token included (``Experience.response_length``; evaluation's ``num_tokens``)
    rewards: pass -> correct; max -> correct * (1 - 0.5 * min(num_tokens, M) / M), M = max_new_tokens (§5.5).
    """
    correct = (correct > 0) & ~truncated.to(torch.bool)
    if kind == "pass":
        return correct.float(), correct.float()
    if kind != "max" or not max_new_tokens:
        raise ValueError(f"reward kind {kind!r} with max_new_tokens {max_new_tokens!r}: expected pass, or max with a "
                         f"positive --rollout.max_new_tokens")
    frac = num_tokens.float().clamp(0, max_new_tokens) / max_new_tokens
    return correct.float() * (1.0 - 0.5 * frac), correct.float()


def keep_last_token_only(action_mask: torch.Tensor, drop: torch.Tensor) -> torch.Tensor:
    """action_mask (B, A) with the rows where ``drop`` (B,) is True reduced to their last response token.

    Rows with an empty mask stay empty. Same dtype as ``action_mask``.
    """
    mask = action_mask.clone()
    if not bool(drop.any()):
        return mask
    length = mask.size(1)
    last = length - 1 - mask.long().fliplr().argmax(dim=1)  # (B,) last token with mask > 0
    keep = torch.zeros_like(mask, dtype=torch.bool)
    keep[torch.arange(mask.size(0)), last] = True
    rows = drop.to(torch.bool).unsqueeze(1)
    return torch.where(rows & ~keep, torch.zeros_like(mask), mask)


def kept_after_drop(zero: torch.Tensor, lengths: torch.Tensor, unit: int) -> torch.Tensor:
    """Which responses go to the actor (bool (N,)): every non-zero weight, plus the shortest zero-weight ones needed
    to make the count a multiple of ``unit`` (``--train.batch_size``: whole optimizer steps, equal on every rank),
    at least one ``unit``. If N itself is not a multiple of ``unit`` nothing is dropped (the layout could not be kept).

    zero (N,) bool, lengths (N,) sequence lengths (the compute a response costs); ties broken by position.
    """
    total = zero.numel()
    if unit < 1 or total % unit:
        return torch.ones(total, dtype=torch.bool)
    nonzero = int((~zero).sum())
    target = min(total, max(unit, -(-nonzero // unit) * unit))
    keep = ~zero.clone()
    pads = target - nonzero
    if pads:
        candidates = torch.nonzero(zero).flatten()
        order = torch.argsort(lengths[candidates].float(), stable=True)
        keep[candidates[order[:pads]]] = True
    return keep


def deal_to_ranks(lengths: list[float], ranks: int) -> list[list[int]]:
    """Positions dealt to ``ranks`` ranks round-robin in order of decreasing length (equal counts when
    len(lengths) % ranks == 0, similar compute per rank)."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[r::ranks] for r in range(ranks)]


def undealt_rank_counts(per_experience: list[int], ranks: int) -> list[int]:
    """What each of ``ranks`` ranks would get of a per-experience count (e.g. its non-zero-weight responses) if the
    experiences went to the ranks as OpenRLHF 0.11.2 hands them out, without ``deal_to_ranks``: contiguous chunks of
    ceil(E / R) experiences (``batches.chunk_sizes``). per_experience: [E] ints -> [R] ints."""
    from rspo_patch.openrlhf.batches import chunk_sizes

    out, start = [], 0
    for size in chunk_sizes(len(per_experience), ranks):
        out.append(sum(per_experience[start:start + size]))
        start += size
    return out


def largest_divisor_at_most(value: int, cap: int) -> int:
    """The largest d <= cap dividing value (>= 1)."""
    return max(d for d in range(1, max(1, min(cap, value)) + 1) if value % d == 0)


# ---------------------------------------------------------------------------------------------------------------------
# the experience maker


class RSPOExperienceMaker(RemoteExperienceMaker):
    """OpenRLHF's experience maker with registry estimators; see the module docstring.

    ``global_step`` (rollout steps done, 0-based) and ``total_steps`` drive the k schedule: the trainers in
    ``rspo_patch.openrlhf.trainer`` / ``hooks`` set them; without a trainer the maker counts its own calls.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.rspo = RSPOSettings.from_args(self.args) if is_registry_estimator(self.advantage_estimator) else None
        self.global_step: int | None = None
        self.total_steps: int | None = self.rspo.schedule_steps if self.rspo else None
        self._calls = 0
        self._warned_gamma = False

    def current_k(self) -> int:
        """k for this rollout step: ``k_schedule(kind, k0, step, total_steps)`` (step clamped to the last one)."""
        assert self.rspo is not None
        if self.rspo.k_schedule == "constant":
            return self.rspo.k
        if not self.total_steps:
            raise ValueError(
                f"--rspo.k_schedule {self.rspo.k_schedule} needs the run length: pass --rspo.schedule_steps "
                f"(required with --train.async_enable)"
            )
        step = self.global_step if self.global_step is not None else self._calls
        step = min(max(int(step), 0), self.total_steps - 1)
        return k_schedule(self.rspo.k_schedule, self.rspo.k, step, self.total_steps)

    def apply_engine_verdicts(self, experiences) -> None:
        """Rewards from our reward file's verdicts plus the engine's truncation and token count, in place.

        ``reward_func`` only sees the decoded text (OpenRLHF 0.11.2 passes queries, prompts, labels), so the engine's
        ``finish_reason`` and token count reach the reward here, from ``Experience.truncated`` / ``response_length``.
        Experiences without ``rspo_correct`` (another reward function) are left as they are. Kind: RSPO_REWARD.
        """
        from rspo_patch.openrlhf.reward_func import reward_kind

        kind = reward_kind()
        for experience in experiences:
            verdict = experience.info.get("rspo_correct")
            if verdict is None or experience.truncated is None or experience.response_length is None:
                continue
            rewards, correct = engine_verdicts(
                torch.as_tensor(verdict).reshape(-1), experience.truncated.reshape(-1),
                experience.response_length.reshape(-1), kind=kind, max_new_tokens=self.args.rollout.max_new_tokens)
            experience.rewards = rewards.to(experience.rewards.device)
            experience.info["reward"] = rewards.clone()
            experience.info["rspo_correct"] = correct
            experience.info["rspo_truncated"] = experience.truncated.reshape(-1).float()

    @torch.no_grad()
    def compute_advantages_and_returns(self, experiences):
        """Registry names: weights -> per-token advantages (no whitening); built-in names: ``super()``. Both after
        ``apply_engine_verdicts``."""
        self.apply_engine_verdicts(experiences)
        if not is_registry_estimator(self.advantage_estimator):
            return super().compute_advantages_and_returns(experiences)
        args = self.strategy.args
        n = args.rollout.n_samples_per_prompt
        spec = get_estimator(self.advantage_estimator)

        # fp32 rewards + OpenRLHF's length penalties, exactly as upstream
        for experience in experiences:
            experience.rewards = experience.rewards.to(torch.promote_types(experience.rewards.dtype, torch.float32))
        apply_length_penalties(experiences, args)

        # (P, n) groups in rollout order
        rewards, indices, exp_len = group_rewards(experiences, n)
        if n > 1:
            stds = rewards.std(-1, keepdim=True).expand(-1, n)
            for experience, std in zip(experiences, scatter_to_experiences(stds, indices, exp_len)):
                experience.info["group_reward_std"] = std

        # the registry call: (P, n) -> (P, n)
        k = self.current_k()
        weights = spec.fn(rewards, k=k, **self.rspo.hyperparameters)
        self._calls += 1

        gamma = args.algo.advantage.gamma
        if gamma != 1.0 and not self._warned_gamma:
            logger.warning("gamma=%s ignored: RSPO weights are sequence-level, returns use gamma = 1", gamma)
            self._warned_gamma = True
        clip = args.reward.clip_range
        drop_zero = self.rspo.drop_zero_weight

        for experience, w in zip(experiences, scatter_to_experiences(weights, indices, exp_len)):
            w = w.to(torch.float32)
            zero = w == 0
            # per-token: weight on the last response token, minus kl_coef * kl on every token
            reward = compute_reward(
                w, self.kl_ctl.value, experience.kl, action_mask=experience.action_mask, reward_clip_range=clip
            )
            experience.returns = self.get_cumulative_returns(reward, experience.action_mask, 1.0)
            experience.advantages = experience.returns.clone()
            experience.info["return"] = reward.sum(dim=-1)
            experience.info["rspo_weight"] = w
            experience.info["rspo_zero_weight"] = zero.float()
            experience.info["rspo_k"] = torch.full_like(w, float(k))
            clipped = (w < clip[0]) | (w > clip[1]) if clip else torch.zeros_like(zero)
            experience.info["rspo_weight_clipped"] = clipped.float()
            experience.kl = None
        if drop_zero:
            experiences = self.drop_zero_weight(experiences)
        return experiences

    def drop_zero_weight(self, experiences):
        """Remove exactly-zero-weight responses from the actor's update: no forward/backward runs for them.

        The responses are split into single samples (OpenRLHF's ``split_experience_batch``), ``kept_after_drop``
        keeps every non-zero weight plus the shortest zero-weight ones that round the count up to whole
        ``--train.batch_size`` optimizer steps (DeepSpeed's accumulation count is fixed; every rank must run the same
        number of micro-batches), those pads lose all but their last loss token (``keep_last_token_only``: zero
        advantage, one token in the token-mean normaliser), and the kept samples are dealt to the ranks by length and
        re-batched (``make_experience_batch``) so ``async_run_method_batch`` hands every rank the same count.
        The whole rollout stays in ``self.full_rollout`` for OpenRLHF's rollout statistics (see trainer.py); the
        numbers go to ``self.drop_stats`` (logged as rollout/rspo_*).
        """
        from openrlhf.trainer.ppo_utils.experience import make_experience_batch, split_experience_batch

        args = self.strategy.args
        self.full_rollout = list(experiences)
        items = [item for experience in experiences for item in split_experience_batch(experience)]
        zero = torch.tensor([bool(item.info["rspo_zero_weight"] > 0) for item in items])
        lengths = torch.tensor([float(item.attention_mask.sum()) for item in items])
        keep = kept_after_drop(zero, lengths, args.train.batch_size)
        kept = [item for item, k in zip(items, keep.tolist()) if k]
        for item in kept:
            pad = bool(item.info["rspo_zero_weight"] > 0)
            item.info["rspo_dropped"] = torch.tensor(float(pad))
            if pad:
                item.action_mask = keep_last_token_only(item.action_mask.unsqueeze(0), torch.tensor([True]))[0]
                item.advantages = torch.zeros_like(item.advantages)
                item.returns = torch.zeros_like(item.returns)
        dp_ranks = (args.actor.num_nodes * args.actor.num_gpus_per_node // args.ds.ring_attn_size
                    // args.ds.tensor_parallel_size)
        # 1 only when nothing could be dropped and the step itself is uneven
        ranks = dp_ranks if len(kept) % dp_ranks == 0 else 1
        per_rank = len(kept) // ranks
        size = largest_divisor_at_most(per_rank, args.rollout.micro_batch_size)
        out = []
        for positions in deal_to_ranks([float(item.attention_mask.sum()) for item in kept], ranks):
            for start in range(0, per_rank, size):
                out.append(_stack_info(make_experience_batch([kept[i] for i in positions[start:start + size]])))
        # the non-zero-weight responses each rank would have trained in OpenRLHF's own contiguous split of the
        # rollout: unequal counts are what dealing equal, whole optimizer steps to every rank prevents (a rank that
        # runs one micro-batch more than another waits in its collectives until the timeout)
        undealt = undealt_rank_counts([int((experience.info["rspo_zero_weight"].reshape(-1) == 0).sum())
                                       for experience in experiences], dp_ranks)
        tokens_all = float(lengths.sum())
        tokens_kept = float(sum(float(item.attention_mask.sum()) for item in kept))
        self.drop_stats = {
            "rollout/rspo_zero_weight_fraction": float(zero.float().mean()),
            "rollout/rspo_dropped_fraction": 1.0 - len(kept) / len(items),
            "rollout/rspo_padding_fraction": (len(kept) - int((~zero).sum())) / len(items),
            "rollout/rspo_train_token_fraction": tokens_kept / tokens_all if tokens_all else 1.0,
            "rollout/rspo_undealt_weighted_min": float(min(undealt)),
            "rollout/rspo_undealt_weighted_max": float(max(undealt)),
        }
        return out

    def take_full_rollout(self):
        """(the whole rollout before dropping or None, the drop statistics), then forget both (one step)."""
        full, stats = getattr(self, "full_rollout", None), getattr(self, "drop_stats", None) or {}
        self.full_rollout, self.drop_stats = None, None
        return full, stats


# per-response info fields whose rollout-wide mean is logged as rollout/<field> (the train/<field> scalars OpenRLHF
# logs are averages over the micro-batches the actor trained on, which under --rspo.drop_zero_weight leave out most
# zero-weight responses: train/rspo_correct read 0.625 where the rollout's pass rate was 0.156; the zero-weight
# fraction of the rollout is drop_stats' rollout/rspo_zero_weight_fraction)
ROLLOUT_MEAN_FIELDS = ("rspo_correct", "rspo_weight")


def rollout_means(experiences) -> dict:
    """Rollout-wide statistics of ``experiences`` (every response, before any is dropped):

    - ``rollout/<field>``: mean over responses of each ROLLOUT_MEAN_FIELDS field in ``info`` ((B,) per experience);
    - ``rollout/rspo_token_nll``: sum(-action_log_probs * action_mask) / sum(action_mask) over every response, the
      sampled tokens' mean negative log-probability under the policy that sampled them: a Monte Carlo estimate of the
      per-token entropy of the sampling distribution, the same for every algorithm (OpenRLHF's entropy_loss is
      computed in the training forward, so under dropping over each algorithm's kept responses only).
    """
    out = {}
    for field in ROLLOUT_MEAN_FIELDS:
        values = [exp.info[field].reshape(-1).float() for exp in experiences if field in exp.info]
        if values:
            out[f"rollout/{field}"] = float(torch.cat(values).mean())
    nll = [(-(exp.action_log_probs.float() * exp.action_mask).sum(), exp.action_mask.sum()) for exp in experiences
           if exp.action_log_probs is not None and exp.action_mask is not None]
    if nll and float(sum(n for _, n in nll)) > 0:
        out["rollout/rspo_token_nll"] = float(sum(s for s, _ in nll) / sum(n for _, n in nll))
    return out


def rollout_stats(compute, maker, experiences) -> dict:
    """``compute(full rollout)``, the rollout-wide means of the RSPO info fields (:func:`rollout_means`) and the
    maker's drop statistics (``RSPOExperienceMaker.take_full_rollout``): everything over the whole rollout, before
    any zero-weight response left the update."""
    full, extra = maker.take_full_rollout() if isinstance(maker, RSPOExperienceMaker) else (None, {})
    rollout = full if full is not None else experiences
    stats = compute(rollout)
    stats.update(rollout_means(rollout))
    stats.update(extra)
    return stats


def _stack_info(experience):
    """``make_experience_batch`` leaves per-sample info as a list of 0-d tensors: stack them into (B,) tensors, as
    the experience maker's own output has them (OpenRLHF's rollout statistics torch.cat them)."""
    for key, value in list(experience.info.items()):
        if isinstance(value, list) and value and all(isinstance(v, torch.Tensor) and v.dim() == 0 for v in value):
            experience.info[key] = torch.stack(value)
    return experience
