"""Read-only probe of OpenRLHF's training loop (test tier tests/openrlhf_e2e, RSPO_CPU_PROBE_FILE=path): JSON lines
appended by every process of a run, each with its ``pid`` and, in the DeepSpeed actor ranks, its ``rank``.

Policy-loss rows (one per actor micro-batch, no ``event`` key), from a wrapper of OpenRLHF's ``PolicyLoss.forward``:
the token-level gap between the log-probs vLLM reported while sampling (``rollout_log_probs``) and the actor's
log-probs of the same tokens before the update (``old_log_probs``) over the response tokens (action_mask):

    {"pid", "rank", "call", "mean_abs": mean_t |lp_vllm - lp_actor|, "max_abs", "tokens": T,
     "rows": B, "weighted_rows": rows with a non-zero advantage, "zero_rows_tokens": loss tokens of the other rows,
     "engines": {engine pid: [sum_t |lp_vllm - lp_actor|, T]}}

``engines`` splits the gap by the vLLM engine that sampled each row: the reward function runs inside each engine's
Ray actor (OpenRLHF's SingleTurnAgentExecutor), so a wrapper there adds that actor's pid to the response's extra_logs
(``rspo_cpu_engine_pid``), which OpenRLHF carries into ``experience.info`` up to the actor's ``training_step``.
``rows`` / ``weighted_rows`` / ``zero_rows_tokens`` say which sequences the actor trained on (with
``--rspo.drop_zero_weight`` the zero-advantage rows are only the padding responses, one loss token each).

Per rank and rollout step (``call`` counts this process's ``ActorPPOTrainer.ppo_train`` calls, 1-based), from a
wrapper of ``ppo_train`` and ``DeepspeedStrategy.load_ckpt``:

    {"event": "fit_start", "pid", "rank", "call", "step": resumed global step + call, "opt_steps": optimizer steps
     so far (DeepSpeed's global_steps), "buffer": responses in this rank's replay buffer}
    {"event": "fit_end", ..., "micro_batches": training_step calls of this fit, "opt_steps": after it}
    {"event": "loaded", "pid", "rank", "global_step": the resumed checkpoint's step, "opt_steps"}

Every wrapped function is called with the same arguments and its result returned unchanged. The one exception is the
fault injection of the hang control (RSPO_CPU_HANG=RANK:CALL): that rank drops one response from its replay buffer at
that call (if it has more than one), so it runs one micro-batch fewer than the others and the ranks' collectives no
longer pair up: what OpenRLHF's unequal splits would do on a cluster, made on purpose to show the tier catches it.

vLLM reports log-probs only when OpenRLHF's IS correction is on (``--algo.advantage.is_correction_level token``, which
the tier's config sets), else no policy-loss rows are written.
"""

from __future__ import annotations

import json
import os

from rspo_import_hooks import when_imported

ENGINE_KEY = "rspo_cpu_engine_pid"


class _State:
    """Per-process probe state (one DeepSpeed rank per Ray actor process)."""

    call = 0
    micro = 0
    resumed_step = 0
    engines = None  # (B,) engine pids of the micro-batch being trained, or None


def _write(row: dict) -> None:
    with open(os.environ["RSPO_CPU_PROBE_FILE"], "a") as fh:
        fh.write(json.dumps({"pid": os.getpid(), **row}) + "\n")


def _rank() -> int | None:
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else None


def gap_stats(rollout_log_probs, old_log_probs, action_mask) -> dict:
    """mean and max |rollout - old| over masked tokens; tensors (B, A), mask (B, A) bool/0-1."""
    mask = action_mask.bool()
    diff = (rollout_log_probs.float() - old_log_probs.float()).abs()[mask]
    return {"mean_abs": float(diff.mean()) if diff.numel() else 0.0,
            "max_abs": float(diff.max()) if diff.numel() else 0.0, "tokens": int(diff.numel())}


def engine_gaps(rollout_log_probs, old_log_probs, action_mask, engines) -> dict:
    """{engine pid: [sum |rollout - old| over the row's masked tokens, tokens]} for rows tagged by (B,) ``engines``."""
    mask = action_mask.bool()
    diff = (rollout_log_probs.float() - old_log_probs.float()).abs() * mask
    out: dict[str, list] = {}
    for row, pid in enumerate(engines.reshape(-1).tolist()):
        acc = out.setdefault(str(int(pid)), [0.0, 0])
        acc[0] += float(diff[row].sum())
        acc[1] += int(mask[row].sum())
    return out


def row_stats(advantages, action_mask) -> dict:
    """Sequences of one policy-loss micro-batch: advantages (B, A), mask (B, A) -> rows B, rows whose masked
    advantages are not all zero, and the loss tokens of the all-zero rows."""
    mask = action_mask.bool()
    weighted = ((advantages.float().abs() * mask).sum(dim=1) > 0)
    return {"rows": int(mask.size(0)), "weighted_rows": int(weighted.sum()),
            "zero_rows_tokens": int(mask[~weighted].sum())}


def _patch_loss(module) -> None:
    original = module.PolicyLoss.forward

    def forward(self, log_probs, old_log_probs, advantages, action_mask=None, rollout_log_probs=None, *args, **kwargs):
        if rollout_log_probs is not None and action_mask is not None:
            row = {"rank": _rank(), "call": _State.call,
                   **gap_stats(rollout_log_probs.detach(), old_log_probs.detach(), action_mask),
                   **row_stats(advantages.detach(), action_mask)}
            if _State.engines is not None and _State.engines.numel() == action_mask.size(0):
                row["engines"] = engine_gaps(rollout_log_probs.detach(), old_log_probs.detach(), action_mask,
                                             _State.engines)
            _write(row)
        return original(self, log_probs, old_log_probs, advantages, action_mask, rollout_log_probs, *args, **kwargs)

    module.PolicyLoss.forward = forward


def _hang_target() -> tuple[int, int] | None:
    spec = os.environ.get("RSPO_CPU_HANG")
    if not spec:
        return None
    rank, call = spec.split(":")
    return int(rank), int(call)


def _engine_tags(value):
    """The (B,) engine pids of a training micro-batch's ``info`` entry: a tensor, or the list of per-sample 0-d / (1,)
    tensors or floats the replay buffer's collate leaves; None when absent."""
    import torch

    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        return value.detach().reshape(-1).float()
    return torch.tensor([float(torch.as_tensor(v).reshape(-1)[0]) for v in value])


def _patch_actor(module) -> None:
    trainer = module.ActorPPOTrainer
    ppo_train, training_step = trainer.ppo_train, trainer.training_step

    def wrapped_ppo_train(self, kl_ctl, *args, **kwargs):
        _State.call += 1
        _State.micro = 0
        engine = self.actor.model
        rank = _rank()
        if _hang_target() == (rank, _State.call) and len(self.replay_buffer.items) > 1:
            self.replay_buffer.items.pop()  # fault injection of the hang control only (module docstring)
        _write({"event": "fit_start", "rank": rank, "call": _State.call, "step": _State.resumed_step + _State.call,
                "opt_steps": int(engine.global_steps), "buffer": len(self.replay_buffer)})
        out = ppo_train(self, kl_ctl, *args, **kwargs)
        _write({"event": "fit_end", "rank": rank, "call": _State.call, "step": _State.resumed_step + _State.call,
                "micro_batches": _State.micro, "opt_steps": int(engine.global_steps)})
        return out

    def wrapped_training_step(self, experience, *args, **kwargs):
        _State.micro += 1
        _State.engines = _engine_tags(experience.info.get(ENGINE_KEY))
        try:
            return training_step(self, experience, *args, **kwargs)
        finally:
            _State.engines = None

    trainer.ppo_train = wrapped_ppo_train
    trainer.training_step = wrapped_training_step


def _patch_load(module) -> None:
    strategy = module.DeepspeedStrategy
    original = strategy.load_ckpt

    def load_ckpt(self, model, *args, **kwargs):
        out = original(self, model, *args, **kwargs)
        states = out[1] if isinstance(out, tuple) and len(out) > 1 else {}
        _State.resumed_step = int((states or {}).get("global_step", 0) or 0)
        _write({"event": "loaded", "rank": _rank(), "global_step": _State.resumed_step,
                "opt_steps": int(getattr(model, "global_steps", -1))})
        return out

    strategy.load_ckpt = load_ckpt


def _patch_reward(module) -> None:
    """Tag every response with the pid of the engine actor that sampled and graded it."""
    executor = module.SingleTurnAgentExecutor
    original = executor.__init__

    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        func = self.reward_func
        if func is None:
            return

        def tagged(queries, prompts, labels):
            import torch

            out = func(queries, prompts, labels)
            out.setdefault("extra_logs", {})[ENGINE_KEY] = torch.full((len(queries),), float(os.getpid()))
            return out

        self.reward_func = tagged

    executor.__init__ = __init__


def install() -> None:
    when_imported("openrlhf.models.loss")(_patch_loss)
    when_imported("openrlhf.trainer.ray.ppo_actor")(_patch_actor)
    when_imported("openrlhf.utils.deepspeed.deepspeed")(_patch_load)
    when_imported("openrlhf.utils.agent")(_patch_reward)
