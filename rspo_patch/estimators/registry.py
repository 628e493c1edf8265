"""The estimator registry: one spec per name (function + metadata), input checks, and the registering decorator.

``register_estimator`` is the public decorator for the built-ins (``builtin``) and users' plugins (``plugins``) alike;
``ESTIMATORS`` maps name -> :class:`EstimatorSpec` and is the only dispatch (config checks, trainers, figures, claims).
The shapes and the scale convention are in the package docstring (``rspo_patch/estimators/__init__.py``).
"""

from __future__ import annotations

import functools
import inspect
import math
import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Callable

import torch

from rspo_core.schedules import K_SCHEDULES, k_schedule  # re-exported: callers import them from here too

__all__ = [
    "Estimator",
    "EstimatorSpec",
    "ESTIMATORS",
    "RESERVED_NAMES",
    "register_estimator",
    "get_estimator",
    "compute_weights",
    "check_estimator_args",
    "k_schedule",
    "K_SCHEDULES",
]


class Estimator(str, Enum):
    """The built-in estimator names (a str enum: catches spelling mistakes at the call site). Plugins register plain
    string names (``plugins``)."""

    PG = "pg"
    GRPO = "grpo"
    BASELINE = "baseline"
    RSPO_PASS = "rspo_pass"
    RSPO_PASS_PLUGIN = "rspo_pass_plugin"
    RSPO_MAX = "rspo_max"
    RSPO_MAX_SORTED = "rspo_max_sorted"
    RSPO_MAX_PLUGIN = "rspo_max_plugin"
    PKPO_S = "pkpo_s"
    PKPO_SLOO = "pkpo_sloo"
    PASSK_CHEN = "passk_chen"
    GRPO_PASSK = "grpo_passk"
    RS_GRPO = "rs_grpo"
    MAXPO = "maxpo"


# A name is one component of a cell path (``algo~NAME``, rspo_core.cells) and an OpenRLHF --algo.advantage.estimator
# value: lower-case letters, digits and underscores, starting with a letter.
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
# Names no estimator may take: the cell grammar's untrained model, and OpenRLHF 0.11.2's own advantage estimators
# (its --algo.advantage.estimator choices), so that a registry name means the same method in every trainer.
RESERVED_NAMES = frozenset({"base", "gae", "reinforce", "rloo", "reinforce_baseline", "group_norm", "dr_grpo",
                            "flash_reinforce"})
# Types a hyperparameter default may have: they travel to both trainers as KEY=VALUE strings (rspo_core.hparams).
HP_TYPES = (bool, int, float)


@dataclass(frozen=True)
class EstimatorSpec:
    """Metadata of one estimator, kept next to its function.

    fn            validated estimator: fn(rewards (P, n), *, k, **hp) -> weights (P, n)
    raw_fn        the undecorated function (no input checks; for benchmarks)
    unbiased      E[(1/n) sum_i w_i grad log pi(y_i)] = grad J_k for every valid k
    unbiased_at_k1  unbiased for grad J_1 = grad E[R] (policy gradient)
    binary_only   rewards must be 0/1
    k_divides_n   k must divide n (the block baseline)
    uses_k        the weights depend on k
    min_n         smallest group size accepted (2 where a leave-one-out or a std is needed)
    n_minus_k     smallest allowed n - k (0: n >= k; 1: n > k for a leave-one-out over k-subsets); None: k > n allowed
    hyperparameters  names and defaults of the keyword hyperparameters besides k
    sorted_input  raw_fn takes each row sorted ascending (float64) and returns the weights in that sorted order; the
                  registered fn sorts once in the input dtype and scatters the weights back to response order. Such a
                  raw_fn owns its argument (a fresh tensor) and may overwrite it: fewer (P, n) temporaries, which on
                  CPU cost page faults as much as arithmetic
    origin        "builtin", or where a plugin came from (its file, module or entry point: rspo_patch.estimators.plugins)
    source_sha256 for a plugin, the SHA-256 of its source (a changed plugin retrains its cells); None for built-ins
    """

    name: str
    fn: Callable[..., torch.Tensor]
    raw_fn: Callable[..., torch.Tensor]
    description: str
    unbiased: bool
    unbiased_at_k1: bool = True
    binary_only: bool = False
    k_divides_n: bool = False
    uses_k: bool = True
    min_n: int = 1
    n_minus_k: int | None = 0
    hyperparameters: dict = field(default_factory=dict)
    sorted_input: bool = False
    origin: str = "builtin"
    source_sha256: str | None = None

    def unbiased_for(self, k: int) -> bool:
        """Whether the registry guarantees unbiasedness for grad J_k at this k."""
        return self.unbiased or (k == 1 and self.unbiased_at_k1)


ESTIMATORS: dict[str, EstimatorSpec] = {}


# ---------------------------------------------------------------------------------------------------------------------
# validation


def _is_binary(r: torch.Tensor) -> bool:
    return bool(((r == 0) | (r == 1)).all())


def check_estimator_args(
    name: str,
    *,
    n: int,
    k: int,
    binary_rewards: bool | None = None,
    k_schedule: str = "constant",
    **hyperparameters,
) -> EstimatorSpec:
    """Check (name, n, k, reward kind, schedule, hyperparameters) without any tensor; return the spec.

    Raises ValueError naming the bad value and what was expected. ``binary_rewards=False`` declares a non-binary reward
    (e.g. the length-penalised max reward); None means unknown (checked later on the actual tensor).
    """
    spec = get_estimator(name)
    if isinstance(k, bool) or not isinstance(k, int):
        raise ValueError(f"{name}: k must be an int >= 1, got {k!r}")
    if isinstance(n, bool) or not isinstance(n, int):
        raise ValueError(f"{name}: n must be an int, got {n!r}")
    if k < 1:
        raise ValueError(f"{name}: k must be >= 1, got k={k}")
    if n < spec.min_n:
        raise ValueError(f"{name}: needs at least n={spec.min_n} responses per prompt (leave-one-out/std), got n={n}")
    if spec.uses_k and spec.n_minus_k is not None and n - k < spec.n_minus_k:
        need = "n > k" if spec.n_minus_k == 1 else "n >= k"
        raise ValueError(f"{name}: needs {need} responses per prompt, got k={k} > n={n}" if k > n else
                         f"{name}: needs {need} responses per prompt, got k={k}, n={n}")
    if spec.k_divides_n and n % k != 0:
        raise ValueError(f"{name}: k must divide n (groups are consecutive blocks of size k), got k={k}, n={n}")
    if spec.binary_only and binary_rewards is False:
        raise ValueError(f"{name}: requires binary 0/1 rewards (Pass@k); use a Max@k estimator for non-binary rewards")
    if k_schedule not in K_SCHEDULES:
        raise ValueError(f"unknown k schedule {k_schedule!r}; expected one of {', '.join(K_SCHEDULES)}")
    if k_schedule != "constant" and spec.k_divides_n:
        raise ValueError(f"{name}: k must divide n at every step, so only the 'constant' k schedule is allowed, "
                         f"got {k_schedule!r}")
    unknown = set(hyperparameters) - set(spec.hyperparameters)
    if unknown:
        allowed = ", ".join(sorted(spec.hyperparameters)) or "none"
        raise ValueError(f"{name}: unknown hyperparameter(s) {', '.join(sorted(unknown))}; allowed: {allowed}")
    return spec


def _validate(spec_name: str, rewards: torch.Tensor, k: int, hp: dict) -> None:
    if not isinstance(rewards, torch.Tensor):
        raise ValueError(f"{spec_name}: rewards must be a torch.Tensor of shape (P, n), got {type(rewards).__name__}")
    if rewards.dim() != 2:
        raise ValueError(f"{spec_name}: rewards must have rank 2, shape (P, n), got shape {tuple(rewards.shape)}")
    if rewards.is_complex():
        raise ValueError(f"{spec_name}: rewards must be real, got dtype {rewards.dtype}")
    if rewards.is_floating_point() and rewards.numel() and not all(map(math.isfinite, torch.aminmax(rewards))):
        # one reduction pass, no (P, n) temporaries: NaN propagates to both, +-inf shows in max / min
        bad = rewards[~torch.isfinite(rewards)].flatten()[0].item()
        raise ValueError(f"{spec_name}: rewards must be finite, got {bad}")
    spec = check_estimator_args(spec_name, n=int(rewards.shape[1]), k=k, **hp)
    if spec.binary_only and rewards.numel() and not _is_binary(rewards):
        bad = rewards[~((rewards == 0) | (rewards == 1))].flatten()[0].item()
        raise ValueError(f"{spec_name}: requires binary 0/1 rewards, got value {bad}")


def _finite_in(name: str, w64: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``w64`` (float64 weights) cast to ``dtype``; ValueError if a weight is not finite there (e.g. float16 overflow).

    Weights are computed in float64; float16 rewards of 3e4 can give weights above 65504, which would silently become
    inf. One reduction pass (aminmax), no (P, n) temporaries."""
    w = w64.to(dtype)
    if w.numel() and not all(map(math.isfinite, torch.aminmax(w))):
        big = w64.abs().max().item()
        raise ValueError(f"{name}: weights are not finite in {dtype} (largest |weight| {big:.4g} in float64, "
                         f"{dtype} holds up to {torch.finfo(dtype).max:.4g}); pass the rewards as float32 or float64, "
                         f"or rescale them")
    return w


def metadata_problem(*, unbiased, unbiased_at_k1, binary_only, k_divides_n, uses_k, min_n, n_minus_k,
                     hyperparameters, sorted_input, description) -> str | None:
    """The first contradiction or bad value in an estimator's declared metadata, as one phrase; None if consistent."""
    for flag, value in (("unbiased", unbiased), ("unbiased_at_k1", unbiased_at_k1), ("binary_only", binary_only),
                        ("k_divides_n", k_divides_n), ("uses_k", uses_k), ("sorted_input", sorted_input)):
        if not isinstance(value, bool):
            return f"{flag} must be True or False, got {value!r}"
    if not isinstance(description, str) or not description.strip():
        return "description must be a non-empty string"
    if isinstance(min_n, bool) or not isinstance(min_n, int) or min_n < 1:
        return f"min_n must be an int >= 1, got {min_n!r}"
    if n_minus_k is not None and (isinstance(n_minus_k, bool) or not isinstance(n_minus_k, int) or n_minus_k < 0):
        return f"n_minus_k must be None or an int >= 0, got {n_minus_k!r}"
    if unbiased and not unbiased_at_k1:
        return "unbiased=True (for every k) contradicts unbiased_at_k1=False (k = 1 is one of them)"
    if unbiased and not uses_k:
        return "unbiased=True contradicts uses_k=False: grad J_k changes with k, so weights that ignore k cannot " \
               "follow it"
    if k_divides_n and not uses_k:
        return "k_divides_n=True contradicts uses_k=False (an estimator that ignores k cannot need k to divide n)"
    if not isinstance(hyperparameters, dict):
        return f"hyperparameters must be a dict of name -> default, got {type(hyperparameters).__name__}"
    for hp, default in hyperparameters.items():
        if not isinstance(hp, str) or not hp.isidentifier() or hp == "k":
            return f"hyperparameter name {hp!r} must be a Python identifier other than 'k'"
        if not isinstance(default, HP_TYPES):
            return f"hyperparameter {hp!r}: default {default!r} must be a bool, int or float (hyperparameters travel as KEY=VALUE: rspo_core.hparams)"
    return None


def _signature_problem(raw: Callable, hyperparameters: dict) -> str | None:
    """Whether ``raw`` accepts (rewards, *, k, **hyperparameters) by keyword; the first missing piece, else None."""
    try:
        sig = inspect.signature(raw)
    except (TypeError, ValueError):
        return None  # builtins / C functions: nothing to check
    params = sig.parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return None
    for name in ("k", *hyperparameters):
        if name not in params or params[name].kind is inspect.Parameter.POSITIONAL_ONLY:
            return (f"{raw.__qualname__}{sig} does not take the keyword argument {name!r}; expected "
                    f"fn(rewards, *, k{''.join(', ' + h for h in hyperparameters)})")
    return None


def register_estimator(
    name: str | Estimator,
    *,
    description: str,
    unbiased: bool,
    unbiased_at_k1: bool = True,
    binary_only: bool = False,
    k_divides_n: bool = False,
    uses_k: bool = True,
    min_n: int = 1,
    n_minus_k: int | None = 0,
    hyperparameters: dict | None = None,
    sorted_input: bool = False,
):
    """Decorator: register ``fn(rewards64 (P, n), *, k, **hp) -> weights64 (P, n)`` under ``name``.

    The public entry point for built-ins and plugins alike. The registered (and returned) function validates its
    inputs, converts to float64, calls ``fn`` without gradients, and casts back. With ``sorted_input`` the rows reach
    ``fn`` sorted ascending and ``fn`` answers in that order: the sort runs once, in the input dtype (a float64 cast
    preserves order, so this is the float64 order, at the cost of the cheaper sort), and the weights are scattered back
    to response order after the cast to the output dtype.

    Raises ValueError (one line) for a name outside NAME_PATTERN or in RESERVED_NAMES, a name taken by a different
    function, contradictory metadata (``metadata_problem``) or a function that does not take ``k`` / the declared
    hyperparameters as keywords.
    """
    key = name.value if isinstance(name, Estimator) else name
    if not isinstance(key, str) or not NAME_PATTERN.match(key):
        raise ValueError(f"estimator name {key!r} is not valid: expected lower-case letters, digits and underscores, "
                         f"starting with a letter (it becomes the cell path component algo~NAME)")
    if key in RESERVED_NAMES:
        why = "the untrained model of the cell grammar" if key == "base" else "an OpenRLHF built-in advantage estimator"
        raise ValueError(f"estimator name {key!r} is reserved ({why}); choose another name")
    defaults = dict(hyperparameters or {})
    problem = metadata_problem(unbiased=unbiased, unbiased_at_k1=unbiased_at_k1, binary_only=binary_only,
                               k_divides_n=k_divides_n, uses_k=uses_k, min_n=min_n, n_minus_k=n_minus_k,
                               hyperparameters=defaults, sorted_input=sorted_input, description=description)
    if problem:
        raise ValueError(f"estimator {key!r}: contradictory or bad metadata: {problem}")

    def decorator(raw: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        if not callable(raw):
            raise ValueError(f"estimator {key!r}: register_estimator decorates a function, got {type(raw).__name__}")
        if key in ESTIMATORS and ESTIMATORS[key].raw_fn is not raw:
            raise ValueError(f"estimator {key!r} is already registered by {ESTIMATORS[key].raw_fn.__qualname__} "
                             f"({ESTIMATORS[key].origin})")
        sig_problem = _signature_problem(raw, defaults)
        if sig_problem:
            raise ValueError(f"estimator {key!r}: {sig_problem}")

        @functools.wraps(raw)
        def fn(rewards: torch.Tensor, *, k: int, **hp) -> torch.Tensor:
            if isinstance(rewards, torch.Tensor):
                rewards = rewards.detach()  # weights are constants of the loss; no autograd warnings in the checks
            _validate(key, rewards, k, hp)
            out_dtype = rewards.dtype if rewards.is_floating_point() else torch.float32
            with torch.no_grad():
                if rewards.shape[0] == 0:
                    return torch.zeros(rewards.shape, dtype=out_dtype, device=rewards.device)
                if not sorted_input:
                    return _finite_in(key, raw(rewards.to(torch.float64), k=k, **{**defaults, **hp}), out_dtype)
                vals, idx = torch.sort(rewards.to(torch.uint8) if rewards.dtype == torch.bool else rewards, dim=1,
                                       stable=True)
                w = _finite_in(key, raw(vals.to(torch.float64), k=k, **{**defaults, **hp}), out_dtype)
                return torch.empty(rewards.shape, dtype=out_dtype, device=rewards.device).scatter_(1, idx, w)

        if key in ESTIMATORS:  # the same function again (a module imported twice): keep the spec, origin included
            return ESTIMATORS[key].fn
        ESTIMATORS[key] = EstimatorSpec(
            name=key, fn=fn, raw_fn=raw, description=description, unbiased=unbiased, unbiased_at_k1=unbiased_at_k1,
            binary_only=binary_only, k_divides_n=k_divides_n, uses_k=uses_k, min_n=min_n,
            n_minus_k=n_minus_k if uses_k else None, hyperparameters=defaults, sorted_input=sorted_input,
        )
        return fn

    return decorator


def get_estimator(name: str | Estimator) -> EstimatorSpec:
    """The spec registered under ``name``; ValueError listing the valid names otherwise."""
    key = name.value if isinstance(name, Estimator) else name
    if key not in ESTIMATORS:
        raise ValueError(f"unknown estimator {name!r}; valid names: {', '.join(ESTIMATORS)}")
    return ESTIMATORS[key]


def compute_weights(name: str, rewards: torch.Tensor, k: int, **hyperparameters) -> torch.Tensor:
    """Weights (P, n) of estimator ``name`` for ``rewards`` (P, n): the one dispatch point trainers call."""
    return get_estimator(name).fn(rewards, k=k, **hyperparameters)


