"""The cell manifest ``results/cells.json``: which cells the DAG trains and evaluates, per family (written by the
workflow's ``effective_config`` rule, read by the figures and the claims table; nothing re-expands config families).

Layout (``MANIFEST_VERSION`` 2)::

    {"version": 2,
     "families": {"main": {"description": str, "benchmarks": ["arithmetic"], "models": ["tiny"],
                           "cells": [{"cell": "model~tiny/algo~pg/k~1/n~8/reward~pass/seed~0", "model": "tiny",
                                      "algo": "pg", "train_k": 1, "k_schedule": "constant", "n": 8,
                                      "reward": "pass", "seed": 0}, ...]},   # base cells first where base: true
                  ...},
     "trained": [cell path, ...],                 # every cell trained, once
     "evaluated": {cell path: [benchmark, ...]},  # every (cell, benchmark) evaluated, once
     "contamination": {"benchmarks": [...]},      # the config's contamination.benchmarks
     "methods": {algo: {"estimator": NAME, "hyperparameters": {name: value as written}, "uses_k": bool,
                        "unbiased": bool, "binary_only": bool, "origin": "builtin" | plugin, "description": str}}}
                                                  # only where a cell's algo is a plugin estimator or carries
                                                  # hyperparameters (rspo_core.cells.algo_key); absent otherwise

The figures and the claims table know the built-in estimators from the registry; ``methods`` tells them what they
cannot know without the config's plugins: how a user's method is named and whether its weights use k.

Cell dicts carry the tidy tables' cell columns (rspo_core.cells.TABLE_COLUMNS), so a family's cells select table rows
by their ``cell`` column directly.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

from rspo_core.atomic import write_text_atomic
from rspo_core.cells import TABLE_COLUMNS, Cell, eval_targets, family_cells, split_algo, unique_cells

MANIFEST_VERSION = 2
# Family names of the paper's experiments that configs may spell differently (first = the default config's name).
# The larger model's repetition of the main comparison (Figure 9, claim C7): `main_large` in config/config.yaml
# (the ~2.4M char model), `main_7b` in config/paper.yaml (Qwen2.5-Math-7B).
LARGER_MODEL_FAMILIES = ("main_large", "main_7b", "7b")
N_SCALING_FAMILIES = ("n_scaling", "nscale")


def registry_uses_k(algo: str) -> bool:
    """Whether estimator ``algo``'s weights depend on k (rspo_patch.estimators registry ``uses_k``; an algo with
    hyperparameters is looked up by its estimator's name); True for a name the registry lacks (the config check
    rejects those before any job; the figures take a plugin's uses_k from the manifest's ``methods``)."""
    from rspo_patch.estimators import ESTIMATORS

    name = split_algo(algo)[0]
    return ESTIMATORS[name].uses_k if name in ESTIMATORS else True


def method_entries(algos: Iterable[str], estimators: Mapping) -> dict:
    """The manifest's ``methods`` block for these algo components: one entry per algo that is a plugin estimator
    (spec.origin != "builtin") or carries hyperparameters; {} when there is none (the block is then left out).
    estimators: the registry (name -> EstimatorSpec)."""
    out = {}
    for algo in dict.fromkeys(algos):
        name, hp = split_algo(algo)
        spec = estimators.get(name)
        if spec is None or (spec.origin == "builtin" and not hp):
            continue
        out[algo] = {"estimator": name, "hyperparameters": hp, "uses_k": bool(spec.uses_k),
                     "unbiased": bool(spec.unbiased), "binary_only": bool(spec.binary_only), "origin": spec.origin,
                     "description": spec.description}
    return out


def manifest_methods(manifest: Mapping) -> dict:
    """The ``methods`` block of a manifest ({} when absent)."""
    return dict(manifest.get("methods") or {})


def _as_list(v) -> list:
    return [str(x) for x in (v if isinstance(v, (list, tuple)) else [v])]


def build_manifest(families: Mapping[str, Mapping], per_family: Mapping[str, Iterable[Cell]], *,
                   contamination_benchmarks: Iterable[str] = (), estimators: Mapping | None = None) -> dict:
    """The manifest dict (layout in the module docstring) from the config's ``families`` block and its expansion
    ``per_family`` (rspo_core.cells.family_cells: family -> cells, base cells included); ``estimators`` (the
    registry, plugins loaded) gives the ``methods`` block."""
    per_family = {name: list(cells) for name, cells in per_family.items()}
    fams = {}
    for name, cells in per_family.items():
        spec = families[name]
        fams[name] = {"description": str(spec.get("description", "")),
                      "benchmarks": _as_list(spec.get("benchmarks", [])),
                      "models": list(dict.fromkeys(c.model for c in cells)),
                      "cells": [c.columns() for c in cells]}
    manifest = {
        "version": MANIFEST_VERSION,
        "families": fams,
        "trained": [c.path for c in unique_cells(per_family, trained_only=True)],
        "evaluated": {c.path: b for c, b in eval_targets(families, per_family).items()},
        "contamination": {"benchmarks": _as_list(contamination_benchmarks)},
    }
    methods = method_entries((c.algo for cells in per_family.values() for c in cells if not c.is_base),
                             estimators or {})
    if methods:
        manifest["methods"] = methods
    return manifest


def manifest_for_config(config: Mapping, *, uses_k=registry_uses_k) -> dict:
    """build_manifest for a whole (validated) workflow config dict: expands its families with rspo_core.cells."""
    families = config.get("families") if isinstance(config, Mapping) else None
    if not isinstance(families, Mapping) or not families:
        raise ValueError("config has no 'families' mapping; expected family name -> {grid, benchmarks, ...}")
    from rspo_patch.estimators import ESTIMATORS, load_plugins

    load_plugins(config.get("plugins") or [])
    return build_manifest(families, family_cells(families, uses_k=uses_k),
                          contamination_benchmarks=(config.get("contamination") or {}).get("benchmarks", []),
                          estimators=ESTIMATORS)


def write_manifest(manifest: Mapping, path: Path) -> Path:
    """The manifest as indented JSON, written atomically; returns path."""
    write_text_atomic(Path(path), json.dumps(manifest, indent=1) + "\n")
    return Path(path)


def check_manifest(data, source: str = "manifest") -> dict:
    """data if it has the module docstring's layout, else ValueError with one line naming what is wrong."""
    if not isinstance(data, dict) or not isinstance(data.get("families"), dict):
        raise ValueError(f"{source}: expected a JSON object with a 'families' mapping (results/cells.json layout)")
    if data.get("version") != MANIFEST_VERSION:
        raise ValueError(f"{source}: version {data.get('version')!r}, expected {MANIFEST_VERSION}; rerun the "
                         f"workflow's effective_config rule to rewrite it")
    for name, fam in data["families"].items():
        if not isinstance(fam, dict) or not isinstance(fam.get("cells"), list) \
                or not isinstance(fam.get("benchmarks"), list):
            raise ValueError(f"{source}: family {name!r} needs a 'cells' list and a 'benchmarks' list")
        for c in fam["cells"]:
            missing = [col for col in TABLE_COLUMNS if not isinstance(c, dict) or col not in c]
            if missing:
                raise ValueError(f"{source}: family {name!r}: cell {c!r} lacks {missing}; expected keys "
                                 f"{list(TABLE_COLUMNS)}")
    return data


def read_manifest(path: Path) -> dict:
    """results/cells.json as a dict (checked by check_manifest); ValueError naming the file when absent or bad."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"cell manifest {str(path)!r} does not exist (written by the workflow's effective_config "
                         f"rule: results/cells.json)")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"cell manifest {path}: not JSON ({e})") from None
    return check_manifest(data, str(path))


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m analysis.manifest --config CONFIG.yaml --out cells.json`` (the manifest of a config file)."""
    import argparse

    import yaml

    p = argparse.ArgumentParser(prog="python -m analysis.manifest", description="Write the cell manifest of a config.")
    p.add_argument("--config", type=Path, required=True, help="workflow config YAML (its 'families' block)")
    p.add_argument("--out", type=Path, required=True, help="where cells.json goes")
    a = p.parse_args(argv)
    if not a.config.is_file():
        p.error(f"--config {a.config} does not exist")
    write_manifest(manifest_for_config(yaml.safe_load(a.config.read_text()) or {}), a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
