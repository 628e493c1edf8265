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

A grid entry (or the family) may set estimator hyperparameters with ``hp``, each value a scalar or a list (the product
is taken like the other keys): ``{algo: rs_grpo, hp: {beta: [1.0, 4.0]}}``. They are part of the method, written into
the algo component: ``algo~rs_grpo+beta=4.0`` (names sorted; :func:`algo_key` / :func:`split_algo`), so two settings
are two cells, two lines in the figures and two methods in the tables. Without ``hp`` the algo component is the
estimator's name alone, as before.

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
ENTRY_KEYS = GRID_KEYS + ("hp",)  # what a grid entry (or the family level) may set
BASE_ALGO = "base"
HP_SEP = "+"  # algo~NAME+key=value+key=value
_HP_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HP_STR = re.compile(r"^[A-Za-z0-9_.-]+$")
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

    @property
    def estimator(self) -> str:
        """The estimator's registry name: the algo component without its hyperparameters."""
        return split_algo(self.algo)[0]

    @property
    def hyperparameters(self) -> dict[str, str]:
        """The hyperparameters written into the algo component, name -> value as written (``{}`` for none)."""
        return split_algo(self.algo)[1]

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


def format_hp_value(value) -> str:
    """A hyperparameter value as written in a cell path: true/false, an int, a float's repr, or a plain word.

    ValueError for other types or for a string with characters outside [A-Za-z0-9_.-]."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str) and _HP_STR.match(value):
        return value
    raise ValueError(f"hyperparameter value {value!r} must be a number, true/false or a word of [A-Za-z0-9_.-]")


def algo_key(name: str, hyperparameters: Mapping | None = None) -> str:
    """The algo component of a cell path: ``name`` alone, or ``name+a=1+b=0.5`` (names sorted). Inverse: split_algo."""
    hp = dict(hyperparameters or {})
    for key in hp:
        if not isinstance(key, str) or not _HP_NAME.match(key):
            raise ValueError(f"hyperparameter name {key!r} must be an identifier")
    return HP_SEP.join([str(name), *(f"{k}={format_hp_value(hp[k])}" for k in sorted(hp))])


def split_algo(algo: str) -> tuple[str, dict[str, str]]:
    """``"rs_grpo+beta=4.0"`` -> ``("rs_grpo", {"beta": "4.0"})``; ``"pg"`` -> ``("pg", {})``. ValueError if a part
    after the name is not key=value."""
    name, *parts = str(algo).split(HP_SEP)
    hp = {}
    for part in parts:
        key, sep, value = part.partition("=")
        if not sep or not _HP_NAME.match(key) or not value:
            raise ValueError(f"algo {algo!r}: {part!r} is not key=value (expected NAME+key=value+...)")
        hp[key] = value
    return name, hp


def base_cell(model: str) -> Cell:
    """The untrained model as a cell: ``model~M/algo~base/k~1/n~1/reward~pass/seed~0``."""
    return Cell(model=model, algo=BASE_ALGO, k=1, n=1, reward="pass", seed=0)


def _as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def expand_family(name: str, family: Mapping, *, uses_k: Callable[[str], bool]) -> list[Cell]:
    """Cells of one family, in grid order, without duplicates (base cells not included).

    Each grid entry is merged over the family-level defaults (keys of ENTRY_KEYS); every value may be a scalar or a
    list and the cartesian product is taken, over each ``hp`` value too. Missing k -> 1, missing k_schedule ->
    "constant". Raises ValueError naming the family for a missing key, an unknown key or a non-integer k/n/seed.
    """
    grid = family.get("grid")
    if not grid:
        raise ValueError(f"family {name!r}: 'grid' is missing or empty; expected a list of sub-grids")
    defaults = {key: family[key] for key in ENTRY_KEYS if key in family}
    cells: list[Cell] = []
    seen: set[Cell] = set()
    for i, entry in enumerate(grid):
        unknown = set(entry) - set(ENTRY_KEYS)
        if unknown:
            raise ValueError(f"family {name!r}, grid entry {i}: unknown key(s) {sorted(unknown)}; "
                             f"expected some of {', '.join(ENTRY_KEYS)}")
        merged = {"k": 1, "k_schedule": "constant", **defaults, **entry}
        missing = [key for key in CELL_KEYS if key not in merged]
        if missing:
            raise ValueError(f"family {name!r}, grid entry {i}: missing {', '.join(missing)} "
                             f"(set it in the entry or at family level)")
        hp = merged.get("hp") or {}
        if not isinstance(hp, Mapping):
            raise ValueError(f"family {name!r}, grid entry {i}: hp must map hyperparameter names to values, "
                             f"got {hp!r}")
        hp_names = sorted(hp)
        axes = [_as_list(merged[key]) for key in GRID_KEYS] + [_as_list(hp[h]) for h in hp_names]
        for values in itertools.product(*axes):
            v = dict(zip(GRID_KEYS, values))
            for key in ("k", "n", "seed"):
                if isinstance(v[key], bool) or not isinstance(v[key], int):
                    raise ValueError(f"family {name!r}, grid entry {i}: {key}={v[key]!r} is not an integer")
            algo = str(v["algo"])
            if HP_SEP in algo:
                raise ValueError(f"family {name!r}, grid entry {i}: algo {algo!r}: set hyperparameters with the "
                                 f"'hp' key, e.g. {{algo: {algo.split(HP_SEP)[0]}, hp: {{name: value}}}}")
            if algo == BASE_ALGO:
                raise ValueError(f"family {name!r}, grid entry {i}: algo 'base' is not trained; "
                                 f"set 'base: true' on the family instead")
            k, sched = v["k"], str(v["k_schedule"])
            if not uses_k(algo):  # pg, grpo, rs_grpo: k has no effect -> one cell whatever k the config says
                k, sched = 1, "constant"
            try:
                algo = algo_key(algo, dict(zip(hp_names, values[len(GRID_KEYS):])))
            except ValueError as e:
                raise ValueError(f"family {name!r}, grid entry {i}: {e}") from None
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
