"""The cell grammar: experiment grid -> training/evaluation cells, deduplicated across families (pure Python, no Snakemake needed).

A *family* is one experiment of the paper (main, n-scaling, max@k, ...). It names a grid over
(model, algo, k, n, reward, seed[, k_schedule]) and the benchmarks its cells are evaluated on:

    main:
      model: tiny            # family-level defaults, each a scalar or a list
      n: 8
      reward: pass
      seed: [0]
      grid:                  # sub-grids; each key a scalar or a list; the cartesian product of each entry is taken
        - {algo: pg}
        - {algo: [baseline, rspo_pass], k: [2, 4, 8]}
      benchmarks: [arithmetic]
      base: true             # also evaluate each model before training (the cell algo~base/k~1/n~1/reward~pass/seed~0)

A *cell* is one training run; its readable path is ``model~M/algo~A/k~K/n~N/reward~R/seed~S``. A k schedule other
than ``constant`` (k annealing, DESIGN.md ``k_schedule``) is written into the k component: ``k~8-linear`` = start at
k=8, linear schedule. Estimators that ignore k (``pg``, ``grpo``, ``rs_grpo``: ``uses_k`` False in the registry) are
normalised to k=1, constant schedule, so ``pg`` listed by two families with different k is trained once.

Cells shared by several families are trained once and evaluated once per benchmark (:func:`eval_targets` takes the
union of the benchmarks of every family that contains the cell).
"""

from __future__ import annotations

import itertools
import re
import shlex
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from rspo_core.schedules import K_SCHEDULES  # noqa: F401  (re-exported: the grammar's k-schedule suffixes)

CELL_KEYS = ("model", "algo", "k", "n", "reward", "seed")
GRID_KEYS = CELL_KEYS + ("k_schedule",)
BASE_ALGO = "base"
# a cell's columns in the tidy tables (analysis.aggregate): ``train_k`` is the cell's k, kept apart from the
# evaluation k of pass@k
TABLE_COLUMNS = ("cell", "model", "algo", "train_k", "k_schedule", "n", "reward", "seed")

_CELL_RE = re.compile(
    r"^model~(?P<model>[^/~]+)/algo~(?P<algo>[^/~]+)/k~(?P<k>\d+)(?:-(?P<k_schedule>[a-z]+))?"
    r"/n~(?P<n>\d+)/reward~(?P<reward>[^/~]+)/seed~(?P<seed>\d+)$"
)
# Snakemake wildcard constraint for a cell path (one wildcard spanning the six components).
CELL_WILDCARD_REGEX = r"model~[^/~]+/algo~[^/~]+/k~\d+(?:-[a-z]+)?/n~\d+/reward~[^/~]+/seed~\d+"


@dataclass(frozen=True, order=True)
class Cell:
    """One training run (or the untrained base model when ``algo == "base"``)."""

    model: str
    algo: str
    k: int
    n: int
    reward: str
    seed: int
    k_schedule: str = "constant"

    @property
    def path(self) -> str:
        """Readable relative path, e.g. ``model~tiny/algo~rspo_pass/k~4/n~8/reward~pass/seed~0``."""
        k = str(self.k) if self.k_schedule == "constant" else f"{self.k}-{self.k_schedule}"
        return f"model~{self.model}/algo~{self.algo}/k~{k}/n~{self.n}/reward~{self.reward}/seed~{self.seed}"

    @property
    def is_base(self) -> bool:
        return self.algo == BASE_ALGO

    def as_dict(self) -> dict:
        """JSON-serialisable dict of the cell's fields plus its path."""
        return {**{key: getattr(self, key) for key in GRID_KEYS}, "path": self.path}

    def columns(self) -> dict:
        """The cell as a table row, keys TABLE_COLUMNS: {cell: path, model, algo, train_k: k, k_schedule, n, reward,
        seed}."""
        return {"cell": self.path, "model": self.model, "algo": self.algo, "train_k": self.k,
                "k_schedule": self.k_schedule, "n": self.n, "reward": self.reward, "seed": self.seed}


def parse_cell(path: str) -> Cell:
    """Inverse of :attr:`Cell.path`; ValueError for a path that is not a cell path."""
    m = _CELL_RE.match(path.strip("/"))
    if m is None:
        raise ValueError(f"not a cell path: {path!r}; expected model~M/algo~A/k~K/n~N/reward~R/seed~S")
    g = m.groupdict()
    return Cell(
        model=g["model"], algo=g["algo"], k=int(g["k"]), n=int(g["n"]), reward=g["reward"],
        seed=int(g["seed"]), k_schedule=g["k_schedule"] or "constant",
    )


def base_cell(model: str) -> Cell:
    """The untrained model as a cell: ``model~M/algo~base/k~1/n~1/reward~pass/seed~0``."""
    return Cell(model=model, algo=BASE_ALGO, k=1, n=1, reward="pass", seed=0)


def _as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def expand_family(name: str, family: Mapping, *, uses_k: Callable[[str], bool]) -> list[Cell]:
    """Cells of one family, in grid order, without duplicates (base cells not included).

    Each grid entry is merged over the family-level defaults (keys of GRID_KEYS); every value may be a scalar or a
    list and the cartesian product is taken. Missing k -> 1, missing k_schedule -> "constant". Raises ValueError
    naming the family for a missing key, an unknown key or a non-integer k/n/seed.
    """
    grid = family.get("grid")
    if not grid:
        raise ValueError(f"family {name!r}: 'grid' is missing or empty; expected a list of sub-grids")
    defaults = {key: family[key] for key in GRID_KEYS if key in family}
    cells: list[Cell] = []
    seen: set[Cell] = set()
    for i, entry in enumerate(grid):
        unknown = set(entry) - set(GRID_KEYS)
        if unknown:
            raise ValueError(f"family {name!r}, grid entry {i}: unknown key(s) {sorted(unknown)}; "
                             f"expected some of {', '.join(GRID_KEYS)}")
        merged = {"k": 1, "k_schedule": "constant", **defaults, **entry}
        missing = [key for key in CELL_KEYS if key not in merged]
        if missing:
            raise ValueError(f"family {name!r}, grid entry {i}: missing {', '.join(missing)} "
                             f"(set it in the entry or at family level)")
        axes = [_as_list(merged[key]) for key in GRID_KEYS]
        for values in itertools.product(*axes):
            v = dict(zip(GRID_KEYS, values))
            for key in ("k", "n", "seed"):
                if isinstance(v[key], bool) or not isinstance(v[key], int):
                    raise ValueError(f"family {name!r}, grid entry {i}: {key}={v[key]!r} is not an integer")
            algo = str(v["algo"])
            if algo == BASE_ALGO:
                raise ValueError(f"family {name!r}, grid entry {i}: algo 'base' is not trained; "
                                 f"set 'base: true' on the family instead")
            k, sched = v["k"], str(v["k_schedule"])
            if not uses_k(algo):  # pg, grpo, rs_grpo: k has no effect -> one cell whatever k the config says
                k, sched = 1, "constant"
            cell = Cell(model=str(v["model"]), algo=algo, k=k, n=v["n"], reward=str(v["reward"]), seed=v["seed"],
                        k_schedule=sched)
            if cell not in seen:
                seen.add(cell)
                cells.append(cell)
    return cells


def family_models(name: str, family: Mapping) -> list[str]:
    """Models a family uses (family-level and grid-level), in first-seen order."""
    models: list[str] = []
    for entry in [family, *family.get("grid", [])]:
        for m in _as_list(entry.get("model", [])):
            if str(m) not in models:
                models.append(str(m))
    return models


def family_cells(families: Mapping[str, Mapping], *, uses_k: Callable[[str], bool]) -> dict[str, list[Cell]]:
    """family name -> its cells; base cells (one per model) first where ``base`` is true (default true)."""
    out: dict[str, list[Cell]] = {}
    for name, fam in families.items():
        cells = expand_family(name, fam, uses_k=uses_k)
        if fam.get("base", True):
            cells = [base_cell(m) for m in family_models(name, fam)] + cells
        out[name] = cells
    return out


def unique_cells(per_family: Mapping[str, Iterable[Cell]], *, trained_only: bool = False) -> list[Cell]:
    """Union of the families' cells in first-seen order: a cell listed by several families appears once."""
    seen: dict[Cell, None] = {}
    for cells in per_family.values():
        for c in cells:
            if not (trained_only and c.is_base):
                seen.setdefault(c, None)
    return list(seen)


def eval_targets(families: Mapping[str, Mapping], per_family: Mapping[str, Iterable[Cell]]) -> dict[Cell, list[str]]:
    """cell -> sorted union of the benchmarks of every family containing it (one evaluation per (cell, benchmark))."""
    out: dict[Cell, set[str]] = {}
    for name, cells in per_family.items():
        benches = _as_list(families[name].get("benchmarks", []))
        for c in cells:
            out.setdefault(c, set()).update(str(b) for b in benches)
    return {c: sorted(b) for c, b in out.items()}


def cli_args(args: Mapping | None) -> str:
    """``{"lr": 1e-4, "prompts_per_step": 32, "tiers": [1, 2], "bf16": True}`` -> ``--lr 0.0001 --prompts-per-step 32
    --tiers 1 2 --bf16`` (shell-quoted). Underscores become dashes unless the key holds a dot (OpenRLHF's dotted
    flags such as ``actor.learning_rate`` are kept verbatim). False/None values are left out."""
    parts: list[str] = []
    for key, value in (args or {}).items():
        flag = "--" + (key if "." in key else key.replace("_", "-"))
        if value is None or value is False:
            continue
        if value is True:
            parts.append(flag)
        elif isinstance(value, (list, tuple)):
            parts.append(flag + " " + " ".join(shlex.quote(str(v)) for v in value))
        else:
            parts.append(f"{flag} {shlex.quote(str(value))}")
    return " ".join(parts)
