"""Unit tests of rspo_core/cells.py: grid expansion, cross-family dedupe, cell paths, CLI flags."""

from __future__ import annotations

import pytest

from rspo_core import cells as C

K_FREE = {"pg", "grpo", "rs_grpo", "grpo_passk"}


def uses_k(algo: str) -> bool:
    return algo not in K_FREE


FAMILIES = {
    "main": {
        "model": "tiny", "n": 8, "reward": "pass", "seed": [0, 1],
        "grid": [{"algo": "pg"}, {"algo": ["baseline", "rspo_pass"], "k": [2, 4]}],
        "benchmarks": ["arithmetic"],
    },
    "n_scaling": {
        "model": "tiny", "reward": "pass", "seed": 0,
        "grid": [{"algo": "rspo_pass", "k": 4, "n": [4, 8, 16]}],
        "benchmarks": ["arithmetic", "aime25"],
    },
    "grpo": {
        "model": "tiny", "n": 8, "reward": "pass", "seed": 0, "k": 4,  # k given for pg/grpo: has no effect
        "grid": [{"algo": ["pg", "grpo"]}],
        "benchmarks": ["arithmetic"],
        "base": False,
    },
}


def test_cell_path_roundtrip_and_schedule_encoding():
    c = C.Cell(model="tiny", algo="rspo_pass", k=4, n=8, reward="pass", seed=0)
    assert c.path == "model~tiny/algo~rspo_pass/k~4/n~8/reward~pass/seed~0"
    assert C.parse_cell(c.path) == c
    annealed = C.Cell(model="tiny", algo="rspo_pass", k=8, n=8, reward="pass", seed=0, k_schedule="linear")
    assert annealed.path == "model~tiny/algo~rspo_pass/k~8-linear/n~8/reward~pass/seed~0"
    assert C.parse_cell(annealed.path) == annealed
    assert C.base_cell("tiny").path == "model~tiny/algo~base/k~1/n~1/reward~pass/seed~0"
    assert C.base_cell("tiny").is_base
    with pytest.raises(ValueError, match="not a cell path"):
        C.parse_cell("model~tiny/algo~pg/k~x/n~8/reward~pass/seed~0")


def test_cell_wildcard_regex_matches_every_path():
    import re

    rx = re.compile(C.CELL_WILDCARD_REGEX + "$")
    for c in C.unique_cells(C.family_cells(FAMILIES, uses_k=uses_k)):
        assert rx.match(c.path), c.path
    assert not rx.match("model~tiny/algo~pg/k~1/n~8/reward~pass")


def test_expand_family_takes_the_product_of_each_entry():
    cells = C.expand_family("main", FAMILIES["main"], uses_k=uses_k)
    # pg x 2 seeds + (2 algos x 2 k) x 2 seeds
    assert len(cells) == 2 + 8
    assert {c.seed for c in cells} == {0, 1}
    assert {(c.algo, c.k) for c in cells} == {("pg", 1), ("baseline", 2), ("baseline", 4), ("rspo_pass", 2),
                                              ("rspo_pass", 4)}


def test_k_is_normalised_for_estimators_that_ignore_it():
    cells = C.expand_family("grpo", FAMILIES["grpo"], uses_k=uses_k)
    assert [c.path for c in cells] == ["model~tiny/algo~pg/k~1/n~8/reward~pass/seed~0",
                                       "model~tiny/algo~grpo/k~1/n~8/reward~pass/seed~0"]
    sched = C.expand_family("x", {"model": "m", "n": 8, "reward": "pass", "seed": 0,
                                  "grid": [{"algo": "pg", "k": 8, "k_schedule": "linear"}], "benchmarks": ["b"]},
                            uses_k=uses_k)
    assert sched[0].k == 1 and sched[0].k_schedule == "constant"


def test_cells_shared_by_families_are_trained_and_evaluated_once():
    per = C.family_cells(FAMILIES, uses_k=uses_k)
    trained = C.unique_cells(per, trained_only=True)
    paths = [c.path for c in trained]
    assert len(paths) == len(set(paths))
    # main: 10; n_scaling: n=4, n=16 new (rspo_pass k4 n8 seed0 is main's); grpo: grpo new (pg seed0 is main's)
    assert len(trained) == 10 + 2 + 1
    shared = C.Cell("tiny", "rspo_pass", 4, 8, "pass", 0)
    assert shared in per["main"] and shared in per["n_scaling"]
    evals = C.eval_targets(FAMILIES, per)
    # the shared cell is evaluated once per benchmark, on the union of its families' benchmarks
    assert evals[shared] == ["aime25", "arithmetic"]
    assert evals[C.Cell("tiny", "pg", 1, 8, "pass", 0)] == ["arithmetic"]
    # base cells: one per model for families with base (default true); grpo sets base: false
    assert evals[C.base_cell("tiny")] == ["aime25", "arithmetic"]
    assert C.base_cell("tiny") not in per["grpo"]
    assert sum(len(b) for b in evals.values()) == len(C.unique_cells(per)) + 3 + 1  # n_scaling cells + base on aime25


def test_unique_cells_keeps_first_seen_order():
    a, b = C.Cell("m", "pg", 1, 8, "pass", 0), C.Cell("m", "grpo", 1, 8, "pass", 0)
    assert C.unique_cells({"f1": [a, b], "f2": [b, a]}) == [a, b]


@pytest.mark.parametrize("family, message", [
    ({"model": "m", "n": 8, "reward": "pass", "seed": 0, "benchmarks": ["b"]}, "'grid' is missing"),
    ({"n": 8, "reward": "pass", "seed": 0, "grid": [{"algo": "pg"}], "benchmarks": ["b"]}, "missing model"),
    ({"model": "m", "n": 8, "reward": "pass", "seed": 0, "grid": [{"algo": "pg", "lr": 1}], "benchmarks": ["b"]},
     r"unknown key\(s\) \['lr'\]"),
    ({"model": "m", "n": 8.5, "reward": "pass", "seed": 0, "grid": [{"algo": "pg"}], "benchmarks": ["b"]},
     "n=8.5 is not an integer"),
    ({"model": "m", "n": 8, "reward": "pass", "seed": 0, "grid": [{"algo": "base"}], "benchmarks": ["b"]},
     "algo 'base' is not trained"),
])
def test_expand_family_rejects_malformed_grids(family, message):
    with pytest.raises(ValueError, match=message) as err:
        C.expand_family("fam", family, uses_k=uses_k)
    assert "family 'fam'" in str(err.value)


def test_family_models_in_first_seen_order():
    fam = {"model": ["a", "b"], "grid": [{"algo": "pg", "model": "c"}, {"algo": "pg", "model": ["b", "d"]}]}
    assert C.family_models("f", fam) == ["a", "b", "c", "d"]


def test_cli_args_formats_flags():
    flags = C.cli_args({"lr": 1e-4, "prompts_per_step": 32, "tiers": [1, 2], "bf16": True, "skip": False,
                        "none": None, "actor.adam.lr": 3e-6, "template": "a b"})
    assert flags == "--lr 0.0001 --prompts-per-step 32 --tiers 1 2 --bf16 --actor.adam.lr 3e-06 --template 'a b'"
    assert C.cli_args(None) == ""


def test_hyperparameters_are_written_into_the_algo_component_and_read_back():
    from rspo_core.cells import algo_key, expand_family, parse_cell, split_algo

    fam = {"model": "tiny", "n": 8, "reward": "pass", "seed": 0,
           "grid": [{"algo": "rs_grpo", "hp": {"beta": [1.0, 4], "flag": True}}, {"algo": "rs_grpo"}]}
    cells = expand_family("f", fam, uses_k=lambda a: a != "rs_grpo")
    assert [c.algo for c in cells] == ["rs_grpo+beta=1.0+flag=true", "rs_grpo+beta=4+flag=true", "rs_grpo"]
    for c in cells:
        assert parse_cell(c.path) == c and c.estimator == "rs_grpo" and c.k == 1
    assert cells[0].hyperparameters == {"beta": "1.0", "flag": "true"}
    assert algo_key("x", {"b": 0.5, "a": 1e-06}) == "x+a=1e-06+b=0.5"  # names sorted, floats as repr
    assert split_algo("pg") == ("pg", {})
    with pytest.raises(ValueError, match="is not key=value"):
        split_algo("x+beta")
    with pytest.raises(ValueError, match="set hyperparameters with the 'hp' key"):
        expand_family("f", {**fam, "grid": [{"algo": "rs_grpo+beta=2"}]}, uses_k=lambda a: True)
    with pytest.raises(ValueError, match="must be a number, true/false or a word"):
        expand_family("f", {**fam, "grid": [{"algo": "rs_grpo", "hp": {"beta": "a b"}}]}, uses_k=lambda a: True)
