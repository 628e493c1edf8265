"""RSPO's estimator registry in verl 0.9.1: each ``ESTIMATORS`` entry as verl estimator ``rspo_bench.<name>``.

Importing this module registers each registry estimator in verl's ``ADV_ESTIMATOR_REGISTRY``
(``verl.trainer.ppo.core_algos.register_adv_est``); ``register_all()`` registers names added to ``ESTIMATORS`` later
(users' plugins), and is idempotent. verl's PPO trainer then runs RSPO with::

    VERL_USE_EXTERNAL_MODULES=rspo_patch.verl python -m verl.trainer.main_ppo \\
        algorithm.adv_estimator=rspo_bench.rspo_max +algorithm.rspo.k=4 actor_rollout_ref.rollout.n=16 \\
        actor_rollout_ref.actor.loss_agg_mode=seq-mean-token-sum ...

(``verl/__init__.py`` imports every module named in ``VERL_USE_EXTERNAL_MODULES`` on ``import verl``, in every process
where the variable is set, the TaskRunner Ray actor that computes advantages included.) Full recipe, caveats and what
is tested: docs/verl.md. Only this module imports verl; nothing else in the project imports this module.

What verl passes, and what we return (``verl/trainer/ppo/ray_trainer.py::compute_advantage``, every name but gae/grpo)::

    token_level_rewards  Tensor (bs, L)   outcome reward on the last valid token (any token layout: we sum over L)
    response_mask        Tensor (bs, L)   1 on response tokens; an all-zero row is a padding row (V1, uid "pad<hex>")
    index                ndarray (bs,)    uid of each row's prompt; groups need not be contiguous (balance_batch)
    config               the ``algorithm`` config node: k, hyperparameters and seed from its ``rspo`` child
    -> (advantages, returns), both float32 (bs, L) = w[:, None] * response_mask

with, for each uid group G of n valid rows (n may differ between groups: one (P, n) call per distinct n),

    R_G = token_level_rewards[G].sum(-1)          (n,)
    w_G = get_estimator(name).fn(R_G, k=k, **hp)  (the registry's weights, convention loss = -(1/(P n)) sum w log pi)

and w = 0 on padding rows. Order-dependent estimators (``spec.k_divides_n``: ``baseline``'s blocks of k consecutive
responses) see each group in the order ``block_permutation(uid, n, seed)`` instead of batch order: verl's
``_balance_batch`` sorts the batch by sequence length before advantages, which would make the blocks depend on the
responses; a permutation drawn from (seed, uid) -- the uid is a fresh uuid4 per prompt -- is independent of them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf  # a verl dependency
from verl.trainer.ppo.core_algos import register_adv_est

from rspo_patch.estimators import ESTIMATORS, get_estimator, load_plugins

__all__ = ["PREFIX", "RSPO_KEYS", "rspo_settings", "group_positions", "block_permutation", "response_weights",
           "advantage_fn", "register_all", "REGISTERED"]

PREFIX = "rspo_bench."  # verl owns "grpo" and "grpo_passk", and register_adv_est raises on a name taken by another fn
RSPO_KEYS = ("k", "hyperparameters", "seed")  # the keys of +algorithm.rspo.*


# ---------------------------------------------------------------------------------------------------------------------
# config


def _plain(node) -> dict:
    """A config node (DictConfig, Mapping or None) as a plain dict."""
    if node is None:
        return {}
    if isinstance(node, DictConfig):
        return OmegaConf.to_container(node, resolve=True)
    if isinstance(node, Mapping):
        return dict(node)
    raise ValueError(f"+algorithm.rspo must be a mapping of {', '.join(RSPO_KEYS)}, got {type(node).__name__}")


def rspo_settings(name: str, config) -> tuple[int, dict, int]:
    """(k, hyperparameters, seed) of registry estimator ``name`` from verl's algorithm config ``config.rspo``.

    ``config`` is what verl passes: the ``algorithm`` DictConfig of the Hydra config (``+algorithm.rspo.k=4``,
    ``+algorithm.rspo.hyperparameters.beta=0.5``, ``+algorithm.rspo.seed=0``), a dict, or the ``AlgoConfig`` dataclass
    (which cannot hold ``rspo``: its ``get`` returns None). k is required when ``spec.uses_k`` (else 1, as in the
    OpenRLHF plugin); seed defaults to 0. Raises a one-line ValueError naming the missing or unknown flag.
    """
    spec = get_estimator(name)
    node = _plain(config.get("rspo", None) if config is not None else None)
    unknown = sorted(set(node) - set(RSPO_KEYS))
    if unknown:
        raise ValueError(f"{PREFIX}{name}: unknown key(s) +algorithm.rspo.{', +algorithm.rspo.'.join(unknown)}; "
                         f"allowed: {', '.join(RSPO_KEYS)} "
                         f"(hyperparameters go under +algorithm.rspo.hyperparameters.*)")
    k = node.get("k")
    if k is None:
        if spec.uses_k:
            raise ValueError(f"{PREFIX}{name} needs k: add +algorithm.rspo.k=<int> to verl's command line "
                             f"(verl's algorithm config has no rspo.k)")
        k = 1
    hp = _plain(node.get("hyperparameters"))
    seed = node.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"{PREFIX}{name}: +algorithm.rspo.seed must be an int, got {seed!r}")
    return k, hp, seed


# ---------------------------------------------------------------------------------------------------------------------
# grouping


def group_positions(index, valid: np.ndarray) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Batch positions of each uid group, bucketed by group size.

    index: (bs,) uids (strings, or anything ``str`` tells apart); valid: (bs,) bool, False rows are left out.
    Returns {n: (pos (P, n) int64, uids (P,) str)}: row p of ``pos`` is one uid group's valid rows in batch order.
    """
    rows = np.flatnonzero(valid)
    if rows.size == 0:
        return {}
    uids = np.asarray(index, dtype=object)[rows].astype(str)
    names, inverse, counts = np.unique(uids, return_inverse=True, return_counts=True)
    by_group = rows[np.argsort(inverse, kind="stable")]  # group-major, batch order within a group
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    buckets = {}
    for n in np.unique(counts):
        groups = np.flatnonzero(counts == n)
        buckets[int(n)] = (by_group[starts[groups][:, None] + np.arange(n)], names[groups])
    return buckets


def block_permutation(uid: str, n: int, seed: int) -> np.ndarray:
    """The order (n,) in which an order-dependent estimator sees uid group ``uid``: a uniform random permutation.

    perm = numpy.random.default_rng(s).permutation(n), s = the first 8 bytes (little-endian) of
    sha256(f"{seed}:{uid}"). Deterministic given (seed, uid), and independent of the responses because verl's uid
    is a fresh uuid4 per prompt.
    """
    s = int.from_bytes(hashlib.sha256(f"{seed}:{uid}".encode()).digest()[:8], "little")
    return np.random.default_rng(s).permutation(n)


def response_weights(name: str, scores: torch.Tensor, index, valid: torch.Tensor, *, k: int, hp: dict,
                     seed: int = 0) -> torch.Tensor:
    """The registry's weight of every response: float32 (bs,), 0 where ``valid`` is False.

    scores: (bs,) one reward per response; index: (bs,) uids; valid: (bs,) bool. Each uid group of n valid rows is one
    row of a (P, n) call ``get_estimator(name).fn(scores[pos], k=k, **hp)``, one call per distinct n; with
    ``spec.k_divides_n`` the row is in ``block_permutation`` order. ValueError (one line) if the registry refuses a
    group size (e.g. n < k, k not dividing n) or the rewards (non-binary for a binary-only estimator).
    """
    spec = get_estimator(name)
    out = torch.zeros(scores.shape[0], dtype=torch.float32, device=scores.device)
    for n, (pos, uids) in group_positions(index, valid.cpu().numpy()).items():
        if spec.k_divides_n:
            pos = np.stack([p[block_permutation(u, n, seed)] for p, u in zip(pos, uids)])
        pos_t = torch.as_tensor(pos, device=scores.device)  # (P, n)
        try:
            w = spec.fn(scores[pos_t], k=k, **hp)  # (P, n)
        except ValueError as e:
            raise ValueError(f"{PREFIX}{name} on {len(pos)} verl uid group(s) of {n} responses: {e}") from e
        out[pos_t.reshape(-1)] = w.reshape(-1).to(torch.float32)
    return out


# ---------------------------------------------------------------------------------------------------------------------
# verl's estimator signature, and registration


def advantage_fn(name: str):
    """verl advantage estimator for registry estimator ``name`` (see the module docstring for the contract)."""

    def compute(token_level_rewards: torch.Tensor, response_mask: torch.Tensor, config=None, index=None,
                **unused) -> tuple[torch.Tensor, torch.Tensor]:
        # **unused: verl adds reward_baselines (ReMax) when the batch has them; registry estimators take none
        if index is None:
            raise ValueError(f"{PREFIX}{name}: verl passed no index (the batch has no non_tensor_batch['uid'])")
        k, hp, seed = rspo_settings(name, config)
        with torch.no_grad():
            scores = token_level_rewards.sum(dim=-1)  # (bs,)
            valid = response_mask.sum(dim=-1) > 0  # (bs,) padding rows have an all-zero mask
            w = response_weights(name, scores, index, valid, k=k, hp=hp, seed=seed)
            advantages = w.unsqueeze(-1) * response_mask.to(torch.float32)  # (bs, L)
        return advantages, advantages

    compute.__name__ = compute.__qualname__ = f"rspo_bench_{name}_advantage"
    compute.__doc__ = f"verl advantage estimator {PREFIX}{name}: the registry's {name!r} weights x response_mask."
    return compute


_ADV_FNS: dict[str, object] = {}  # name -> its one verl function (re-registering the same object is a no-op in verl)


def register_all() -> list[str]:
    """Register every ``ESTIMATORS`` name in verl as ``PREFIX + name``; return the verl names. Idempotent."""
    for name in ESTIMATORS:
        if name not in _ADV_FNS:
            _ADV_FNS[name] = advantage_fn(name)
        register_adv_est(PREFIX + name)(_ADV_FNS[name])
    return [PREFIX + name for name in ESTIMATORS]


load_plugins()  # users' estimators: installed entry points (rspo_bench.estimators) and RSPO_BENCH_PLUGINS
REGISTERED = register_all()  # the verl names registered at import
