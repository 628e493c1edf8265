"""Semantic checks of a workflow config, run before any job (the JSON Schema checks types and shapes first).

Each problem raises ``ValueError`` with ONE line that names the family and the cell (or the config key) and says what
was expected, e.g.::

    config error: family 'main', cell model~tiny/algo~baseline/k~3/n~8/reward~pass/seed~0: ...k=3 does not divide n=8...

The estimator rules (k <= n, k | n for ``baseline``, binary-only estimators with the max reward, a minimum n) are the
registry's own: :func:`rspo_patch.estimators.check_estimator_args` is called for every cell, so the workflow and the
trainers can never disagree about which cells are legal.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping

from rspo_core.cells import BASE_ALGO, K_SCHEDULES, Cell, expand_family, family_models

REWARDS = ("pass", "max")
MODEL_SOURCES = ("pretrain", "smollm2", "hf", "path")
# Benchmarks the workflow makes itself (not in analysis.datasets.BENCHMARKS): the synthetic arithmetic test set.
SYNTHETIC_BENCHMARKS = ("arithmetic",)


class ConfigError(ValueError):
    """A config that passes the schema but cannot be run."""


def _fail(where: str, msg: str) -> None:
    raise ConfigError(f"config error: {where}: {msg}")


def check_config(
    config: Mapping,
    *,
    estimators: Mapping,
    check_estimator_args: Callable[..., None],
    benchmarks: Iterable[str],
    path_exists: Callable[[str], bool] = os.path.exists,
) -> None:
    """Raise ConfigError (a ValueError) on the first semantic problem of ``config``; return None if it can run.

    estimators: the registry (name -> spec with ``uses_k``); check_estimator_args(name, n=, k=, binary_rewards=,
    k_schedule=)
    raises ValueError for an illegal (estimator, n, k, reward) combination; benchmarks: the known benchmark names
    (analysis.datasets.BENCHMARKS plus the synthetic ones); path_exists: injectable for tests.
    """
    known_benchmarks = set(benchmarks) | set(SYNTHETIC_BENCHMARKS)
    models = config.get("models") or {}
    if not models:
        _fail("models", "no model is declared; expected at least one entry under 'models'")

    # --- models -------------------------------------------------------------------------------------------------
    for name, spec in models.items():
        src = spec.get("source")
        if src not in MODEL_SOURCES:
            _fail(f"model {name!r}", f"unknown source {src!r}; expected one of {', '.join(MODEL_SOURCES)}")
        if src == "path":
            path = spec.get("path")
            if not path or not path_exists(str(path)):
                _fail(f"model {name!r}", f"model path {path!r} does not exist (source: path needs an HF model folder)")
        if src == "hf" and not spec.get("repo"):
            _fail(f"model {name!r}", "source 'hf' needs 'repo' (an HF hub id such as Qwen/Qwen2.5-Math-1.5B)")

    # --- data and evaluation --------------------------------------------------------------------------------------
    train_set = (config.get("data") or {}).get("train")
    if train_set not in known_benchmarks:
        _fail("data.train", f"unknown training set {train_set!r}; expected one of {', '.join(sorted(known_benchmarks))}")
    ev = config.get("eval") or {}
    ks = ev.get("ks") or [1]
    n_default = int(ev.get("n", 1))
    for bench, n_b in {"(default)": n_default, **(ev.get("n_per_benchmark") or {})}.items():
        if bench != "(default)" and bench not in known_benchmarks:
            _fail("eval.n_per_benchmark", f"unknown benchmark {bench!r}; expected one of "
                                          f"{', '.join(sorted(known_benchmarks))}")
        if max(ks) > int(n_b):
            _fail("eval", f"largest k in eval.ks ({max(ks)}) exceeds the {n_b} samples per problem of benchmark "
                          f"{bench}; unbiased pass@k needs n >= k")
    verifier = ev.get("verifier", "math-verify")
    if verifier == "xverify":
        xv = ev.get("xverify_model")
        if xv not in models:
            _fail("eval.xverify_model", f"verifier 'xverify' needs eval.xverify_model naming a model under 'models', "
                                        f"got {xv!r}")
    for bench in (config.get("contamination") or {}).get("benchmarks", []):
        if bench not in known_benchmarks:
            _fail("contamination.benchmarks", f"unknown benchmark {bench!r}; expected one of "
                                              f"{', '.join(sorted(known_benchmarks))}")

    # --- families -------------------------------------------------------------------------------------------------
    families = config.get("families") or {}
    if not families:
        _fail("families", "no experiment family is declared")

    def uses_k(algo: str) -> bool:
        spec = estimators.get(algo)
        return True if spec is None else bool(getattr(spec, "uses_k", True))

    for fam_name, fam in families.items():
        where = f"family {fam_name!r}"
        benches = fam.get("benchmarks") or []
        if not benches:
            _fail(where, "no benchmarks; expected a non-empty 'benchmarks' list")
        for bench in benches:
            if bench not in known_benchmarks:
                _fail(where, f"unknown benchmark {bench!r}; expected one of {', '.join(sorted(known_benchmarks))}")
        for model in family_models(fam_name, fam):
            if model not in models:
                _fail(where, f"unknown model {model!r}; expected one of {', '.join(models)} (declared under 'models')")
        try:
            cells = expand_family(fam_name, fam, uses_k=uses_k)
        except ValueError as e:
            _fail(where, str(e))
        for cell in cells:
            _check_cell(fam_name, cell, estimators, check_estimator_args)


def _check_cell(fam_name: str, cell: Cell, estimators: Mapping, check_estimator_args: Callable[..., None]) -> None:
    where = f"family {fam_name!r}, cell {cell.path}"
    if cell.algo == BASE_ALGO:
        return
    if cell.algo not in estimators:
        _fail(where, f"unknown algorithm (estimator) {cell.algo!r}; expected one of {', '.join(sorted(estimators))}")
    if cell.reward not in REWARDS:
        _fail(where, f"unknown reward {cell.reward!r}; expected one of {', '.join(REWARDS)}")
    if cell.k_schedule not in K_SCHEDULES:
        _fail(where, f"unknown k_schedule {cell.k_schedule!r}; expected one of {', '.join(K_SCHEDULES)}")
    if cell.k < 1:
        _fail(where, f"k={cell.k} must be >= 1")
    try:
        check_estimator_args(cell.algo, n=cell.n, k=cell.k, binary_rewards=(cell.reward == "pass"),
                             k_schedule=cell.k_schedule)
    except ValueError as e:
        _fail(where, " ".join(str(e).split()))  # one line, whatever the registry's message looks like
