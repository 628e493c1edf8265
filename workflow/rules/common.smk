# Shared by every stage: config validation (schema, then semantic checks), the experiment grid -> cells, paths.

import json
import os
import re
import sys
from types import SimpleNamespace

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

# workflow/lib/checks.py: the semantic config checks; the cell grammar is rspo_core.cells (shared with the figures)
sys.path.insert(0, os.path.join(workflow.basedir, "workflow", "lib"))
sys.path.insert(0, workflow.basedir)  # the rspo_core / rspo_patch / analysis packages of this checkout

import checks  # noqa: E402
from rspo_core import cells as C  # noqa: E402


import yaml  # noqa: E402

with open(os.path.join(workflow.basedir, "workflow", "schemas", "config.schema.yaml"), encoding="utf-8") as _fh:
    CONFIG_SCHEMA = yaml.safe_load(_fh)
# --config 'eval={"n": 64}' arrives as strings (Snakemake parses nested overrides with YAML's BaseLoader): type them
checks.coerce_overrides(config, workflow.config_settings.config, CONFIG_SCHEMA)
_schema_error = checks.schema_error_line(config, CONFIG_SCHEMA)  # one line naming key, value and expectation
if _schema_error:
    raise WorkflowError(_schema_error)
validate(config, schema="../schemas/config.schema.yaml")  # passes now; fills in the schema's defaults

# the CPU math libraries' instruction set (rspo_core.cpu_math; config key cpu_isa): a shell prefix for the jobs of the
# CPU reference path (pre-training, the local trainer, hf generation), so they compute the same bits on any x86-64
# machine with AVX2; OpenRLHF and vLLM jobs get CPU_NATIVE (inherited pins removed, nothing set)
import platform  # noqa: E402

from rspo_core.cpu_math import shell_env_prefix  # noqa: E402

CPU_PIN = shell_env_prefix(config["cpu_isa"], platform.machine())
CPU_NATIVE = shell_env_prefix("native", platform.machine())


def gpu_wrapper(requests_gpus):
    """Shell prefix of the command of a rule whose jobs ask for GPUs (train, generate, verify): rspo_core.devices gives
    each job CUDA_VISIBLE_DEVICES of its own on one machine without a scheduler, and leaves a Slurm job's assignment
    alone. Decided when the workflow is parsed, from the config: a config without GPUs keeps its commands unchanged."""
    return "python -m rspo_core.devices --gpus {resources.gpu} -- " if requests_gpus else ""


from analysis.datasets import BENCHMARKS  # noqa: E402
from rspo_patch.estimators import ESTIMATORS, PluginError, check_estimator_args, load_plugins  # noqa: E402
from rspo_patch.estimators.plugins import plugin_of  # noqa: E402

# users' estimators (config 'plugins', installed entry points): registered before the config check, so their names are
# algos like the built-ins'; a plugin that fails to load stops the run here, in one line
try:
    PLUGINS = load_plugins(config.get("plugins") or [])
except PluginError as e:
    raise WorkflowError(f"config error: plugins: {e}") from None

try:
    checks.check_config(
        config,
        estimators=ESTIMATORS,
        check_estimator_args=check_estimator_args,
        benchmarks=BENCHMARKS,
    )
except checks.ConfigError as e:
    raise WorkflowError(str(e)) from None


# ----------------------------------------------------------------------------------------------------------------------
# Cells


def _uses_k(algo):
    name = C.split_algo(algo)[0]
    return ESTIMATORS[name].uses_k if name in ESTIMATORS else True


def estimator_flags(cell, *, hp_flag, plugin_flag, source_flag):
    """A cell's estimator flags beyond its name: the hyperparameters of its algo component (KEY=VALUE list), and for a
    plugin estimator the plugin to load and its source digest, which the trainer checks (a plugin edited after the
    DAG was planned is refused) and which makes the digest part of the job's params: a changed plugin reruns its own
    cells, nothing else. Empty for a built-in without hyperparameters: those commands are unchanged."""
    flags = {}
    if cell.hyperparameters:
        flags[hp_flag] = [f"{k}={v}" for k, v in sorted(cell.hyperparameters.items())]
    plugin = plugin_of(cell.estimator)
    if plugin is not None:
        if not plugin.spec.startswith("entry point "):  # entry points are found by every process itself
            flags[plugin_flag] = [plugin.target]
        flags[source_flag] = plugin.source_sha256
    return flags


R = config["results"].rstrip("/")  # results root

# One run per results folder, even from two working copies (Snakemake's lock is per working directory). Taken in
# onstart: after the DAG is built, before any job or any deletion of incomplete outputs; never in a dry run, and not in
# cluster jobs (they run with --no-hooks).
_RESULTS_LOCK = []


onstart:
    from rspo_core.locks import FolderBusy, lock_folder

    try:
        _RESULTS_LOCK.append(lock_folder(R))  # held (the file stays open) until this snakemake process exits
    except FolderBusy as e:
        raise WorkflowError(str(e)) from None


LOGS = f"{R}/logs"
FAMILIES = config["families"]
PER_FAMILY = C.family_cells(FAMILIES, uses_k=_uses_k)  # family -> cells (base cells included)
EVAL = C.eval_targets(FAMILIES, PER_FAMILY)  # cell -> benchmarks (deduplicated across families)
TRAINED = C.unique_cells(PER_FAMILY, trained_only=True)  # every cell to train, once
CONTAM_BENCHES = list(config.get("contamination", {}).get("benchmarks", []))
MODELS = config["models"]
EV = config["eval"]
TR = config["train"]


wildcard_constraints:
    cell=C.CELL_WILDCARD_REGEX,
    bench=r"[A-Za-z0-9_]+",
    model=r"[^/~]+",
    fig=r"fig[A-Za-z0-9_]+",


def _names_regex(names):
    """Regex matching exactly these names (one that matches nothing when the list is empty)."""
    names = list(names)
    return "|".join(re.escape(n) for n in names) if names else r"(?!x)x"


def cell_of(wildcards):
    return C.parse_cell(wildcards.cell)


def base_model_dir(model):
    """Folder of a base model: the DAG builds it under results/models, except source 'path' (used in place)."""
    spec = MODELS[model]
    return spec["path"] if spec["source"] == "path" else f"{R}/models/{model}"


def cell_model_dir(wildcards):
    """Model evaluated for a cell: the base model for algo~base, else the trained model."""
    cell = cell_of(wildcards)
    return base_model_dir(cell.model) if cell.is_base else f"{R}/train/{cell.path}/model"


def data_path(name):
    return f"{R}/data/{name}.jsonl"


def generate_partial(cell_path, bench):
    """The resumable partial samples file of one (cell, benchmark) evaluation (analysis.generate --partial): written by
    the generate job, or pre-filled by the cell's local training job (analysis.train_and_prefill)."""
    return f"{R}/partial/generate/{cell_path}/{bench}.jsonl"


def train_data_path():
    name = config["data"]["train"]
    return f"{R}/data/arithmetic_train.jsonl" if name == "arithmetic" else data_path(name)


def eval_n(bench):
    return int(EV.get("n_per_benchmark", {}).get(bench, EV["n"]))


def merged_args(base, override):
    out = dict(base or {})
    out.update(override or {})
    return out


def eval_files(pairs, name="metrics.csv"):
    return [f"{R}/eval/{c.path}/{b}/{name}" for c, b in pairs]


def main_eval_pairs():
    return [(c, b) for c, benches in EVAL.items() for b in benches]


def contamination_eval_pairs():
    return [(c, b) for c in TRAINED for b in CONTAM_BENCHES]


def all_targets():
    """What `rule all` builds: every figure and the report (which need the tables, which need every cell)."""
    return figure_targets() + [f"{R}/report.html"]
