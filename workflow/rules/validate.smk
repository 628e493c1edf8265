# Validate, before any job: every CLI whose flags come from the config parses them with its OWN parser and checks them
# with its own validation (``check_argv`` of each module), on the exact flags the rules will pass; figure names exist.
# Included last: it builds the flags with the rules' own helpers (_trainer_flags, _generate_flags, _verify_flags).
# One line per mistake (config key, value, what was expected), raised before Snakemake schedules anything.

import importlib
import shlex
from types import SimpleNamespace


def _cli_calls():
    """(config key, module, argv) of every config-driven command line, with placeholder paths (nothing is read)."""
    if config["data"]["train"] == "arithmetic" or config["data"].get("arithmetic"):
        outputs = [f"--{role}={ARITH_OUTPUTS[role]}" for role in ("clean", "seen") if role in ARITH_OUTPUTS]
        yield "data.arithmetic", "analysis.datasets", ["arithmetic", "--train", "T", "--test", "E", *outputs,
                                                         *shlex.split(C.cli_args(ARITH))]
    for m in PRETRAINED:
        yield f"models.{m}.pretrain_args", "rspo_patch.pretrain", [
            "--train", "T", "--heldout", "H", "--out", "O", *shlex.split(C.cli_args(MODELS[m].get("pretrain_args")))]
    if TR["trainer"] == "local":
        for cell in TRAINED:
            yield f"train.args / models.{cell.model}.train_args (cell {cell.path})", "rspo_patch.train_local", [
                "--model", "M", "--data", "D", "--out", "O", "--ckpt-dir", "C",
                *shlex.split(_trainer_flags(SimpleNamespace(cell=cell.path)))]
    seen = set()
    for cell, bench in main_eval_pairs() + contamination_eval_pairs():
        key = (cell.model, eval_n(bench))
        if key in seen:
            continue  # flags differ only by model (template, eval_args) and n
        seen.add(key)
        wc = SimpleNamespace(cell=cell.path, bench=bench)
        yield f"eval / models.{cell.model}.eval_args", "analysis.generate", [
            "--model", "M", "--data", "D", "--out", "O", "--benchmark", bench, *shlex.split(_generate_flags(wc))]
    wc = SimpleNamespace(cell=TRAINED[0].path if TRAINED else "", bench="b")
    yield "eval.verify_args", "analysis.verify", ["--samples", "S", "--data", "D", "--out", "O",
                                                  *shlex.split(_verify_flags(wc, SimpleNamespace(judge="J"), 1))]
    if CONTAM_BENCHES or config.get("contamination", {}).get("args"):
        yield "contamination.args", "analysis.contamination", [
            "--train", "T", "--bench", "b=B", "--out-json", "J", "--out-csv", "C",
            *shlex.split(C.cli_args(config.get("contamination", {}).get("args")))]


def _check_figure_names():
    from analysis.figures import FIGURES

    for key in ("only", "exclude"):
        for name in config.get("figures", {}).get(key) or []:
            if name not in FIGURES:
                raise WorkflowError(f"config error: figures.{key}: unknown figure {name!r}; expected one of "
                                    f"{', '.join(sorted(FIGURES))}")


def _check_cli_flags():
    for where, module, argv in _cli_calls():
        try:
            importlib.import_module(module).check_argv(argv)
        except ValueError as e:
            raise WorkflowError(f"config error: {where}: {' '.join(str(e).split())} (checked by python -m {module})")


_check_figure_names()
_check_cli_flags()
