"""Gradient-weight estimators for Pass@k / Max@k policy optimisation: RSPO and its peers, behind one registry.

Every estimator maps the rewards of a batch of prompt groups to one weight per response::

    weights = get_estimator(name).fn(rewards, k=k, **hyperparameters)
    rewards: Tensor (P, n)   P prompts, n sampled responses each (any real dtype; computed in float64 inside)
    weights: Tensor (P, n)   same device; same dtype as ``rewards`` when it is floating, else float32

The weights multiply each response's sequence log-likelihood gradient,
``loss = -(1/(P n)) sum_{p,i} w_{p,i} log pi(y_{p,i})``.

Scale convention (tested by exact enumeration in tests/estimators): for every estimator whose ``unbiased`` flag is set,
with y_1..y_n drawn iid from the policy,

    E[(1/n) sum_i w_i grad log pi(y_i)] = grad J_k,     J_k = E[max(R(y_1), ..., R(y_k))]

(Pass@k for 0/1 rewards). Key identity behind RSPO (Theorem C.4; equal to PKPO's s^(loo-1) times n):

    w_i = k * E_T[(R_i - max T)^+],  T a uniformly random (k-1)-subset of the other n-1 responses
        = k / C(n-1, k-1) * sum_{j <= c_<[i]} (R_i - R_(j)) C(j-1, k-2)      (R_(j) ascending, k >= 2)

No estimator loops over prompts in Python; binomial ratios are exact integer ratios rounded once (per sorted position)
or log-gamma in float64 (per group), so n up to 4096 and any 1 <= k <= n stay finite. The Max@k estimators sort each group once: O(n log n) per group instead of the O(n^2 k) of
the paper's Algorithm 2.

Layout: ``registry`` (the spec, input checks, the decorator), ``builtin`` (the suite's estimators, registered on
import), ``plugins`` (users' estimators: config ``plugins:`` and the entry-point group ``rspo_bench.estimators``).

Built-in names (see ../shared/DESIGN.md "Estimators"): pg, grpo, baseline, rspo_pass, rspo_pass_plugin, rspo_max,
rspo_max_sorted, rspo_max_plugin, pkpo_s, pkpo_sloo, passk_chen, grpo_passk, rs_grpo, maxpo. Which published code or
equation each one was checked against, and by which test: docs/estimators.md.
"""

from __future__ import annotations

from rspo_patch.estimators.registry import (  # noqa: F401  (the public API, re-exported)
    ESTIMATORS,
    K_SCHEDULES,
    RESERVED_NAMES,
    Estimator,
    EstimatorSpec,
    check_estimator_args,
    compute_weights,
    get_estimator,
    k_schedule,
    register_estimator,
)
from rspo_patch.estimators import builtin, registry  # noqa: F401,E402  (builtin registers the built-ins)
from rspo_patch.estimators.builtin import _comb_ratio, _tie_counts  # noqa: F401,E402  (tests and the GPU check)
from rspo_patch.estimators.plugins import PluginError, load_plugins  # noqa: F401,E402

__all__ = [*registry.__all__, "load_plugins", "PluginError"]  # the registry's API and the plugin loader
