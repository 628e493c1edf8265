"""Synthetic result fixtures in the real schema: results/eval/{cell}/{bench}/metrics.csv and train_log.jsonl.

Values are generated from a simple model of a trained policy (per-problem success probabilities drawn from a Beta
distribution whose parameters depend on the algorithm and k), seeded, so every figure has realistic curves to draw.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import yaml

KS = (1, 2, 4, 8, 16)
GRADER = "test-grader-1"


def _registered(*names: str) -> list[str]:
    from rspo_patch.estimators import ESTIMATORS

    return [n for n in names if n in ESTIMATORS]


# peers that figures must draw when the estimator registry has them (issue 14): MaxPO beside PKPO s-loo
PEERS_FROM_REGISTRY = _registered("maxpo")

# the default config's families, in the workflow's grammar (rspo_core/cells.py)
CONFIG = {
    "families": {
        "main": {"model": "tiny", "n": 8, "reward": "pass", "seed": [0, 1],
                 "grid": [{"algo": "pg"}, {"algo": ["baseline", "rspo_pass"], "k": [2, 4, 8]}],
                 "benchmarks": ["aime24", "math500"]},
        "n_scaling": {"model": "tiny", "reward": "pass", "seed": 0,
                      "grid": [{"algo": "rspo_pass", "k": 4, "n": [4, 8, 16]}], "benchmarks": ["aime24", "math500"]},
        "maxk": {"model": "tiny", "n": 8, "reward": "max", "seed": 0,
                 "grid": [{"algo": "pg"}, {"algo": ["baseline", "rspo_max"], "k": 4}], "benchmarks": ["aime24"]},
        "grpo": {"model": "tiny", "n": 8, "reward": "pass", "seed": 0, "grid": [{"algo": ["pg", "grpo"]}],
                 "benchmarks": ["aime24"]},
        "peers": {"model": "tiny", "n": 8, "reward": "pass", "seed": 0,
                  "grid": [{"algo": ["rspo_pass", "pkpo_sloo"] + PEERS_FROM_REGISTRY, "k": 4},
                           {"algo": "rspo_pass", "k": 8, "k_schedule": "linear"}],
                  "benchmarks": ["aime24"]},
        "main_7b": {"model": "big7b", "n": 8, "reward": "pass", "seed": 0,
                    "grid": [{"algo": "pg"}, {"algo": "rspo_pass", "k": 4}], "benchmarks": ["aime24"]},
    },
    "contamination": {"benchmarks": ["aime25"]},
}


def cell_path(model, algo, k, n, reward, seed, sched="constant"):
    """The cell's path in the one cell grammar (rspo_core.cells)."""
    from rspo_core.cells import Cell

    return Cell(model=model, algo=algo, k=k, n=n, reward=reward, seed=seed, k_schedule=sched).path


def _beta_params(algo: str, k: int, model: str) -> tuple[float, float]:
    """Success-probability distribution of a synthetic trained policy: risk-seeking k spreads mass (more problems
    solved sometimes), the hitchhiking baseline gets worse with k."""
    a, b = 0.6, 1.6
    if algo in ("pg", "grpo"):
        a, b = 0.9, 1.2
    elif algo in ("rspo_pass", "rspo_max", "pkpo_sloo", "maxpo"):
        a, b = 0.9 - 0.08 * np.log2(k), 1.2 - 0.12 * np.log2(k)
    elif algo == "baseline":
        a, b = 0.85 - 0.1 * np.log2(k), 1.3 + 0.15 * np.log2(k)
    if "7b" in model:
        a += 0.5
    return max(a, 0.15), max(b, 0.3)


def metrics_rows(cell: dict, bench: str, *, metric: str = "pass@k", problems: int = 40, ks=KS) -> list[dict]:
    seed = zlib.crc32(repr((cell["algo"], cell["k"], cell["n"], cell["seed"], bench, cell["model"])).encode())
    rng = np.random.default_rng(seed)
    a, b = _beta_params(cell["algo"], cell["k"], cell["model"])
    p = rng.beta(a, b, size=problems)
    scale = 0.75 if metric == "max@k" else 1.0
    rows = []
    for k in ks:
        per = scale * (1.0 - (1.0 - p) ** k)
        boots = rng.choice(per, (50, problems)).mean(axis=1)  # percentile bootstrap over problems
        rows.append({"benchmark": bench, "metric": metric, "k": k, "value": float(per.mean()),
                     "ci_low": float(np.quantile(boots, 0.025)), "ci_high": float(np.quantile(boots, 0.975)),
                     "n_problems": problems, "n_samples": 16, "grader_version": GRADER})
    return rows


def write_cell(root: Path, cell: dict, benches, *, steps=30, train=True) -> None:
    import pandas as pd

    path = cell_path(cell["model"], cell["algo"], cell["k"], cell["n"], cell["reward"], cell["seed"],
                     cell.get("sched", "constant"))
    for bench in benches:
        d = root / "eval" / path / bench
        d.mkdir(parents=True, exist_ok=True)
        # analysis.metrics scores both metrics for every cell (max@k from the length-penalised reward)
        rows = metrics_rows(cell, bench, metric="pass@k") + metrics_rows(cell, bench, metric="max@k")
        pd.DataFrame(rows).to_csv(d / "metrics.csv", index=False)
    if train and cell["algo"] != "base":
        d = root / "train" / path
        d.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(cell["seed"] + 7 * cell["k"])
        keep = 0.3 + 0.1 * np.log2(cell["k"]) if cell["algo"] == "rspo_pass" else 0.2
        with open(d / "train_log.jsonl", "w") as f:
            for s in range(steps):
                ent = 0.65 * (keep + (1 - keep) * np.exp(-s / 12)) + 0.01 * rng.standard_normal()
                rew = 0.2 + 0.25 * (1 - np.exp(-s / 10)) + 0.02 * rng.standard_normal()
                f.write(json.dumps({"step": s, "k": cell["k"], "reward_mean": rew, "pass_rate": rew,
                                    "entropy": ent, "weight_mean": 1.0, "weight_std": 0.5, "weight_min": 0.0,
                                    "weight_max": cell["k"], "frac_zero_weight": 0.5 + 0.1 * rng.random(),
                                    "tokens_per_s": 1000.0, "wall_time": 0.3 * s}) + "\n")


def all_fixture_cells(config: dict, *, drop: set[str] = frozenset()) -> list[tuple[dict, list[str]]]:
    """(cell dict, benchmarks) for every cell of the config's families (base cells included), minus `drop` paths."""
    from analysis.manifest import registry_uses_k
    from rspo_core import cells as lib

    fams = config["families"]
    per = lib.family_cells(fams, uses_k=registry_uses_k)
    extra = config.get("contamination", {}).get("benchmarks", [])
    out: dict[str, tuple[dict, set]] = {}
    for name, cells in per.items():
        benches = set(fams[name]["benchmarks"]) | (set(extra) if name == "main" else set())
        for c in cells:
            if c.path in drop:
                continue
            d = {"model": c.model, "algo": c.algo, "k": c.k, "n": c.n, "reward": c.reward, "seed": c.seed,
                 "sched": c.k_schedule}
            out.setdefault(c.path, (d, set()))[1].update(benches)
    return [(d, sorted(b)) for d, b in out.values()]


def make_results(root: Path, config: dict = CONFIG, *, drop: set[str] = frozenset()) -> Path:
    """Write the synthetic results tree for every cell of `config` (minus `drop`), the config YAML and the cell
    manifest cells.json (as the workflow's effective_config rule writes it); return root."""
    from analysis.manifest import manifest_for_config, write_manifest

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for cell, benches in all_fixture_cells(config, drop=drop):
        write_cell(root, cell, benches)
    (root / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    write_manifest(manifest_for_config(config), root / "cells.json")
    return root


def run_bandit(out: Path) -> Path:
    """The real toy policy lab (rspo_patch.bandit) at tiny settings, in the structure of its --out JSON."""
    from rspo_patch import bandit

    res = {
        "quick": True,
        "figure1": bandit.figure1(steps=4),
        "hitchhiking": bandit.hitchhiking(ks=(2, 4), steps=2, replicates=2, P=2, m=4),
        "k_matching": bandit.k_matching(steps=8, sampled_steps=1, replicates=1),
        "estimator_variance": bandit.estimator_variance(ns=(4, 8), replicates=20, m=4),
    }
    out.write_text(json.dumps(res))
    return out
