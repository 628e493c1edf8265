"""Read-only weight-sync probe (test tier tests/openrlhf_e2e, RSPO_CPU_PROBE_FILE=path): for every policy-loss call of
OpenRLHF's trainer, append one JSON line with the token-level gap between the log-probs vLLM reported while sampling
(``rollout_log_probs``) and the actor's log-probs of the same tokens before the update (``old_log_probs``):

    {"pid": ..., "mean_abs": mean_t |lp_vllm - lp_actor|, "max_abs": max_t |...|, "tokens": T,
     "rows": B, "weighted_rows": rows with a non-zero advantage, "zero_rows_tokens": loss tokens of the other rows}

over the response tokens (action_mask). ``rows`` / ``weighted_rows`` / ``zero_rows_tokens`` say which sequences the
actor trained on (the zero-weight dropping check: with ``--rspo.drop_zero_weight`` the zero-advantage rows are only
the padding responses, one loss token each). The wrapped ``PolicyLoss.forward`` is called with the same arguments
and its result returned unchanged. vLLM reports log-probs only when OpenRLHF's IS correction is on
(``--algo.advantage.is_correction_level token``, which the tier's config sets), else nothing is written.
"""

from __future__ import annotations

import json
import os

from rspo_import_hooks import when_imported


def gap_stats(rollout_log_probs, old_log_probs, action_mask) -> dict:
    """mean and max |rollout - old| over masked tokens; tensors (B, A), mask (B, A) bool/0-1."""
    mask = action_mask.bool()
    diff = (rollout_log_probs.float() - old_log_probs.float()).abs()[mask]
    return {"mean_abs": float(diff.mean()) if diff.numel() else 0.0,
            "max_abs": float(diff.max()) if diff.numel() else 0.0, "tokens": int(diff.numel())}


def row_stats(advantages, action_mask) -> dict:
    """Sequences of one policy-loss micro-batch: advantages (B, A), mask (B, A) -> rows B, rows whose masked
    advantages are not all zero, and the loss tokens of the all-zero rows."""
    mask = action_mask.bool()
    weighted = ((advantages.float().abs() * mask).sum(dim=1) > 0)
    return {"rows": int(mask.size(0)), "weighted_rows": int(weighted.sum()),
            "zero_rows_tokens": int(mask[~weighted].sum())}


def _patch_loss(module) -> None:
    original = module.PolicyLoss.forward
    path = os.environ["RSPO_CPU_PROBE_FILE"]

    def forward(self, log_probs, old_log_probs, advantages, action_mask=None, rollout_log_probs=None, *args, **kwargs):
        if rollout_log_probs is not None and action_mask is not None:
            row = {"pid": os.getpid(), **gap_stats(rollout_log_probs.detach(), old_log_probs.detach(), action_mask),
                   **row_stats(advantages.detach(), action_mask)}
            with open(path, "a") as fh:
                fh.write(json.dumps(row) + "\n")
        return original(self, log_probs, old_log_probs, advantages, action_mask, rollout_log_probs, *args, **kwargs)

    module.PolicyLoss.forward = forward


def install() -> None:
    when_imported("openrlhf.models.loss")(_patch_loss)
