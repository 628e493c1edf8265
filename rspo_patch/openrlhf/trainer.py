"""The Ray actor that trains with RSPO weights: OpenRLHF's PPOTrainer with ``RSPOExperienceMaker`` swapped in.

Advantages are computed inside the ``PPOTrainer`` Ray actor, not in the driver, so a monkeypatch made in the driver
never reaches them. ``RSPOPPOTrainer`` is a real subclass of the stock actor class; ``install_trainer()`` rebinds
``openrlhf.trainer.ppo_trainer.PPOTrainer`` in the driver before ``train()`` runs (``train`` imports that name inside
the function), so OpenRLHF's own ``train()`` starts our actor. The async trainer (``--train.async_enable``) builds its
training actor inside another actor; that path is covered by ``rspo_patch.openrlhf.hooks`` instead.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import ray

from rspo_patch.openrlhf._version import check_openrlhf_version

check_openrlhf_version()

import openrlhf.trainer.ppo_trainer as _ppo_trainer_module  # noqa: E402

from rspo_patch.openrlhf.ckpt import ACTOR_DIR, prune_hf_copies, write_complete_marker  # noqa: E402
from rspo_patch.openrlhf.experience import RSPOExperienceMaker, rollout_stats  # noqa: E402
from rspo_patch.openrlhf.sampling import install_stop_tokens, training_stop_token_ids  # noqa: E402,F401

logger = logging.getLogger(__name__)

#: OpenRLHF's PPOTrainer as shipped (the ActorClass), kept before any rebinding.
STOCK_PPO_TRAINER = getattr(_ppo_trainer_module, "_rspo_stock_PPOTrainer", _ppo_trainer_module.PPOTrainer)
_ppo_trainer_module._rspo_stock_PPOTrainer = STOCK_PPO_TRAINER


def rollout_steps(args, num_prompts: int, max_steps: int | None = None) -> int:
    """Rollout steps ``PPOTrainer.fit`` runs: num_episodes * ceil(num_prompts / rollout.batch_size) (the k schedule's
    length; ``SamplesGenerator`` also runs the last, partial batch of an episode).

    ``num_prompts`` is ``len(prompts_dataloader)`` (a batch-1 loader over the prompts ``prepare_datasets`` kept) and
    ``max_steps`` OpenRLHF's optimizer-step total (its LR schedule): prompts * n // train.batch_size * num_episodes *
    max_epochs. With whole rollout batches (the launcher's ``--data.max_samples``) the two agree; a warning says so
    when they do not (the LR schedule and the k schedule would then span different runs).
    """
    batch = max(1, args.rollout.batch_size)
    total = max(1, args.train.num_episodes * math.ceil(num_prompts / batch))
    if max_steps is not None:
        updates = batch * args.rollout.n_samples_per_prompt // args.train.batch_size * args.train.max_epochs
        if updates and max_steps != total * updates:
            logger.warning("OpenRLHF's max_steps %s (LR schedule) != %s rollout steps x %s updates: the prompt count "
                           "%s is not a multiple of --rollout.batch_size %s", max_steps, total, updates, num_prompts,
                           batch)
    return total


def attach_rspo_experience_maker(trainer) -> RSPOExperienceMaker:
    """Replace ``trainer.experience_maker`` by an RSPOExperienceMaker built from the same models, controller and
    strategy (idempotent); returns it."""
    maker = trainer.experience_maker
    if not isinstance(maker, RSPOExperienceMaker):
        maker = RSPOExperienceMaker(
            trainer.actor_model_group,
            trainer.critic_model_group,
            trainer.reward_model_group,
            trainer.reference_model_group,
            trainer.kl_ctl,
            trainer.strategy,
            trainer.tokenizer,
        )
        trainer.experience_maker = maker
    return maker


class RSPOPPOTrainerActor(STOCK_PPO_TRAINER.__ray_actor_class__):
    """The stock synchronous PPOTrainer with the RSPO experience maker, a k-schedule step counter, rollouts that stop
    where evaluation stops (``install_stop_tokens``), and at most ``--ckpt.max_num`` HF checkpoint copies."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        maker = attach_rspo_experience_maker(self)
        install_stop_tokens(training_stop_token_ids(self.args.actor.model_name_or_path, self.tokenizer))
        if maker.total_steps is None:
            maker.total_steps = rollout_steps(self.args, len(self.prompts_dataloader), self.max_steps)

    def experience_maker_class(self) -> str:
        """Qualified name of the experience maker in use (for checks from the driver)."""
        cls = type(self.experience_maker)
        return f"{cls.__module__}.{cls.__qualname__}"

    def compute_advantages(self, experiences):
        """Run the experience maker's advantage step on given experiences and return them (diagnostics: lets the
        driver check the weights inside the actor without a rollout)."""
        return self.experience_maker.compute_advantages_and_returns(experiences)

    def train_step(self, rollout_samples, global_step: int):
        self.experience_maker.global_step = global_step
        return super().train_step(rollout_samples, global_step)

    def _compute_rollout_stats(self, experiences):
        """OpenRLHF's rollout statistics over the WHOLE rollout (before ``--rspo.drop_zero_weight`` removed
        responses), plus the drop statistics."""
        return rollout_stats(super()._compute_rollout_stats, self.experience_maker, experiences)

    def save_logs_and_checkpoints(self, global_step: int, logs_dict=None, client_states=None) -> None:
        """OpenRLHF's save (it returns once every actor rank's ``save_checkpoint`` did), then the tag's completion
        marker (``ckpt.write_complete_marker``: DeepSpeed's ``latest`` may name a tag whose other shards were still
        being written) and at most ``--ckpt.max_num`` ``global_step<N>_hf`` copies (OpenRLHF never rotates them)."""
        super().save_logs_and_checkpoints(global_step, logs_dict, client_states)
        if global_step % self.args.ckpt.save_steps:
            return
        tag_dir = Path(self.args.ckpt.path) / ACTOR_DIR / f"global_step{global_step}"
        if not self.args.ckpt.disable_ds and tag_dir.is_dir():
            write_complete_marker(tag_dir)
        if self.args.ckpt.save_hf:
            prune_hf_copies(self.args.ckpt.path, self.args.ckpt.max_num)


RSPOPPOTrainer = ray.remote(RSPOPPOTrainerActor)


def install_trainer() -> None:
    """Make OpenRLHF's ``train()`` start RSPOPPOTrainer: rebind ``openrlhf.trainer.ppo_trainer.PPOTrainer``."""
    _ppo_trainer_module.PPOTrainer = RSPOPPOTrainer


def uninstall_trainer() -> None:
    """Undo ``install_trainer`` (tests)."""
    _ppo_trainer_module.PPOTrainer = STOCK_PPO_TRAINER
