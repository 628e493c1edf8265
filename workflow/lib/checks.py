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

from analysis.arithmetic import SYNTHETIC_BENCHMARKS  # made by the arithmetic rule (not in BENCHMARKS)
from rspo_core.cells import BASE_ALGO, K_SCHEDULES, Cell, expand_family, family_models, split_algo
from rspo_core.hparams import parse_value
from rspo_core.rewards import REWARD_KINDS


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
        src = spec.get("source")  # one of the schema's enum (checked before this runs)
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
    grader = config.get("grader") or {}
    if grader.get("verifier", "math-verify") == "xverify":
        xv = grader.get("xverify_model")
        if xv not in models:
            _fail("grader.xverify_model", f"verifier 'xverify' needs grader.xverify_model naming a model under "
                                          f"'models', got {xv!r}")
    for bench in (config.get("contamination") or {}).get("benchmarks", []):
        if bench not in known_benchmarks:
            _fail("contamination.benchmarks", f"unknown benchmark {bench!r}; expected one of "
                                              f"{', '.join(sorted(known_benchmarks))}")

    # --- families -------------------------------------------------------------------------------------------------
    families = config.get("families") or {}
    if not families:
        _fail("families", "no experiment family is declared")

    def uses_k(algo: str) -> bool:
        spec = estimators.get(split_algo(algo)[0])
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
    name = cell.estimator
    if name not in estimators:
        plugins = sorted(n for n, s in estimators.items() if getattr(s, "origin", "builtin") != "builtin")
        _fail(where, f"unknown algorithm (estimator) {name!r}; expected one of {', '.join(sorted(estimators))}"
                     + (f" (from plugins: {', '.join(plugins)})" if plugins else " (no plugin is loaded: config "
                        "'plugins' lists users' estimators)"))
    hp = cell_hyperparameters(cell, estimators[name], where)
    if cell.reward not in REWARD_KINDS:
        _fail(where, f"unknown reward {cell.reward!r}; expected one of {', '.join(REWARD_KINDS)}")
    if cell.k_schedule not in K_SCHEDULES:
        _fail(where, f"unknown k_schedule {cell.k_schedule!r}; expected one of {', '.join(K_SCHEDULES)}")
    if cell.k < 1:
        _fail(where, f"k={cell.k} must be >= 1")
    try:
        check_estimator_args(name, n=cell.n, k=cell.k, binary_rewards=(cell.reward == "pass"),
                             k_schedule=cell.k_schedule, **hp)
    except ValueError as e:
        _fail(where, " ".join(str(e).split()))  # one line, whatever the registry's message looks like


def cell_hyperparameters(cell: Cell, spec, where: str = "cell") -> dict:
    """The hyperparameters of a cell's algo component, typed (rspo_core.hparams.parse_value; a word stays a string)
    and checked against the estimator's declared defaults: an unknown name or a value of another kind than the
    default (true/false for a bool, a number for a number) is a ConfigError naming both."""
    declared = dict(getattr(spec, "hyperparameters", {}) or {})
    out = {}
    for key, raw in cell.hyperparameters.items():
        if key not in declared:
            allowed = ", ".join(sorted(declared)) or "none"
            _fail(where, f"{cell.estimator}: unknown hyperparameter {key!r}; allowed: {allowed}")
        try:
            value = parse_value(raw)
        except ValueError:
            value = raw
        default = declared[key]
        if isinstance(default, bool) != isinstance(value, bool) or \
                (isinstance(default, (int, float)) and not isinstance(value, (int, float))):
            _fail(where, f"{cell.estimator}: hyperparameter {key}={raw!r} is not of the kind of its default "
                         f"{default!r}")
        out[key] = value
    return out


# ----------------------------------------------------------------------------------------------------------------------
# Schema errors as one line, and --config overrides typed like the schema says


def _dotted(path: Iterable) -> str:
    """('families', 'main', 'grid', 0, 'k') -> 'families.main.grid[0].k' (the key a user edits)."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _resolve(schema, root: Mapping):
    """Follow local ``$ref`` pointers (``#/$defs/...``) of ``schema`` inside ``root``."""
    while isinstance(schema, Mapping) and "$ref" in schema:
        ref = schema["$ref"]
        if not ref.startswith("#/"):
            raise ValueError(f"schema $ref {ref!r}: only local references (#/...) are supported")
        node = root
        for part in ref[2:].split("/"):
            node = node[part]
        schema = node
    return schema


def _declared_keys(schema: Mapping, validator) -> set[str]:
    """Property names an object schema declares itself or through allOf/anyOf/oneOf (``$ref`` followed)."""
    declared = set(schema.get("properties", {}))
    refs = [{"$ref": schema["$ref"]}] if "$ref" in schema else []
    for sub in refs + schema.get("allOf", []) + schema.get("anyOf", []) + schema.get("oneOf", []):
        declared |= set(_resolve(sub, validator.schema).get("properties", {}))
    return declared


def _unknown_keys(error, validator) -> list[str]:
    """Keys of the object of an additional/unevaluatedProperties error that its schema does not declare at all."""
    if not isinstance(error.instance, Mapping):
        return []
    declared = _declared_keys(error.schema, validator)
    return sorted(k for k in error.instance if k not in declared)


def _what_expected(error, validator) -> str:
    """The expectation of one jsonschema error, in words (never the schema dump)."""
    import difflib

    kind, sch = error.validator, error.schema
    if kind in ("additionalProperties", "unevaluatedProperties"):
        declared = _declared_keys(sch, validator)
        if not declared:
            return str(error.message)
        key = _unknown_keys(error, validator)[0]
        near = difflib.get_close_matches(key, declared, n=1)
        return ("unknown key" + (f" (did you mean {near[0]!r}?)" if near else "")
                + f"; expected one of: {', '.join(sorted(declared))}")
    if kind == "type":
        want = sch["type"] if isinstance(sch["type"], str) else " or ".join(sch["type"])
        return f"expected {want}, got {type(error.instance).__name__}"
    if kind == "enum":
        return f"expected one of: {', '.join(map(str, sch['enum']))}"
    if kind in ("minItems", "minLength", "minProperties"):
        return f"must not be empty (schema {kind} {sch[kind]})"
    if kind in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        sign = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}[kind]
        return f"expected a value {sign} {sch[kind]}"
    if kind == "not":  # a retired key: its schema's description says where it went
        return " ".join(str(sch.get("description", "this key is not allowed")).split())
    if kind == "required":
        return str(error.message)
    if kind == "not" and sch.get("description"):  # a key that moved: its schema says where to
        return " ".join(str(sch["description"]).split())
    if kind in ("oneOf", "anyOf"):
        # the alternatives' own errors say more than "is not valid under any of the given schemas"
        leaves = sorted(error.context, key=lambda e: (len(e.path), e.validator != "type"), reverse=True)
        if leaves:
            return _what_expected(leaves[0], validator)
        return "does not match any allowed form"
    return str(error.message)


def schema_error_line(config: Mapping, schema: Mapping) -> str | None:
    """None if ``config`` satisfies ``schema`` (JSON Schema 2020-12), else ONE line naming the key, the value and what
    was expected, e.g. ``config error: train.args.stpes: ... unknown key 'stpes' (did you mean 'steps'?)``."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    validator = Draft202012Validator(schema)
    errors = list(validator.iter_errors(config))
    if not errors:
        return None
    # A failing subschema drops its annotations, so `unevaluatedProperties` then lists every key of the object as
    # "unexpected" -- valid ones included. Such an error is a symptom; the subschema's own error is the cause.
    causes = [e for e in errors if e.validator != "unevaluatedProperties" or _unknown_keys(e, validator)]
    error = best_match(causes or errors)
    path = list(error.absolute_path)
    if error.validator in ("additionalProperties", "unevaluatedProperties") and _unknown_keys(error, validator):
        key = _unknown_keys(error, validator)[0]
        return f"config error: {_dotted(path + [key])}: {_what_expected(error, validator)}"
    if error.validator in ("oneOf", "anyOf") and error.context:
        deepest = max(error.context, key=lambda e: len(e.absolute_path))
        path = list(error.absolute_path) + list(deepest.path)
        value = deepest.instance
    else:
        value = error.instance
    shown = repr(value) if not isinstance(value, Mapping) else "{" + ", ".join(map(repr, value)) + "}"
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return f"config error: {_dotted(path)}: {shown}: {_what_expected(error, validator)}"


def _schema_at(schema: Mapping, root: Mapping, key) -> Mapping | None:
    """The subschema that validates ``instance[key]`` (properties, additionalProperties, items; $ref followed)."""
    def resolve(s):
        return _resolve(s, root)

    schema = resolve(schema)
    if not isinstance(schema, Mapping):
        return None
    for sub in [schema] + [resolve(s) for s in schema.get("allOf", [])]:
        if isinstance(key, int) and isinstance(sub.get("items"), Mapping):
            return resolve(sub["items"])
        if key in sub.get("properties", {}):
            return resolve(sub["properties"][key])
    if isinstance(schema.get("additionalProperties"), Mapping):
        return resolve(schema["additionalProperties"])
    return None


def _types_of(schema: Mapping | None, root: Mapping) -> set[str]:
    """JSON types a schema accepts at its top (type, or the alternatives of oneOf/anyOf)."""
    if not isinstance(schema, Mapping):
        return set()
    t = schema.get("type")
    out = {t} if isinstance(t, str) else set(t or ())
    for alt in schema.get("oneOf", []) + schema.get("anyOf", []):
        if "$ref" in alt:
            alt = _schema_at({"properties": {"x": alt}}, root, "x")
        out |= _types_of(alt, root)
    return out


def _coerce_scalar(text: str, types: set[str]):
    """'64' -> 64 where the schema wants an integer, '0.6' -> 0.6 for a number, 'true' -> True for a boolean."""
    s = text.strip()
    if "integer" in types:
        try:
            return int(s)
        except ValueError:
            pass
    if "number" in types:
        try:
            return float(s)
        except ValueError:
            pass
    if "boolean" in types and s.lower() in ("true", "false"):
        return s.lower() == "true"
    if "null" in types and s.lower() in ("null", "none", "~"):
        return None
    return text


def coerce_overrides(config: dict, overrides: Mapping, schema: Mapping) -> None:
    """Give the values of ``--config`` overrides the schema's types, in place in ``config``.

    Snakemake parses a nested override (``--config 'eval={"n": 64}'``) with YAML's BaseLoader, so every scalar inside
    arrives as a string; a top-level ``--config results=out`` is already typed. Only paths present in ``overrides``
    are touched, and only strings the schema does not accept as strings: a string in a config FILE is never changed.
    """
    def walk(node, over, sch):
        items = over.items() if isinstance(over, Mapping) else enumerate(over) if isinstance(over, list) else ()
        for key, sub_over in items:
            try:
                value = node[key]
            except (KeyError, IndexError, TypeError):
                continue
            sub = _schema_at(sch, schema, key) if sch is not None else None
            if isinstance(value, str) and isinstance(sub_over, str):
                types = _types_of(sub, schema)
                if types and "string" not in types:
                    node[key] = _coerce_scalar(value, types)
            elif isinstance(value, (Mapping, list)):
                walk(value, sub_over, sub)

    walk(config, overrides, schema)


def load_yaml_config(path: str | os.PathLike) -> dict:
    """A config file as a dict; ConfigError naming file, line and column of a YAML syntax error (Snakemake's own loader
    only says "not valid JSON or YAML"), or saying that the top level is not a mapping."""
    import yaml

    with open(path, encoding="utf-8") as fh:
        try:
            data = yaml.safe_load(fh)
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
            _fail(where, f"YAML syntax error: {e.problem or e.context}")
    if not isinstance(data, dict):
        _fail(str(path), f"expected a mapping of config keys at the top level, got {type(data).__name__}")
    return data


# ----------------------------------------------------------------------------------------------------------------------
# Pre-flight of a --configfile: the YAML syntax check Snakemake cannot report


def main(argv: list[str] | None = None) -> int:
    """``python -m workflow.lib.checks FILE...``: 0 if every file is YAML with a mapping at the top level, else 1 with
    one ``config error: FILE:LINE:COLUMN: YAML syntax error: ...`` line per bad file on stderr.

    Snakemake 9 reads a ``--configfile`` (from the command line or a profile) itself, before the Snakefile runs, and
    reports a syntax error as "Config file is not valid JSON or YAML" with no file, line or column
    (snakemake/common/configfile.py ``_load_configfile``); this reader names them. Every other check (schema, cells,
    each CLI's flags) runs in the workflow itself: ``snakemake -n --configfile FILE``.
    """
    import argparse
    import sys

    p = argparse.ArgumentParser(prog="python -m workflow.lib.checks", description=main.__doc__.split("\n")[0])
    p.add_argument("files", nargs="+", help="config YAML files (as given to --configfile)")
    bad = 0
    for path in p.parse_args(argv).files:
        try:
            load_yaml_config(path)
        except ConfigError as e:
            print(e, file=sys.stderr)
            bad += 1
        except OSError as e:
            print(f"config error: {path}: cannot read it ({e.strerror})", file=sys.stderr)
            bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
