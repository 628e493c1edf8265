# rspo-bench: train every cell of the RSPO experiment grid, evaluate it, aggregate, and draw every figure.
#
#   snakemake --cores all                                   # default: tiny char-level model, CPU, ~15-16 min
#   snakemake --cores all --configfile config/smollm2.yaml  # SmolLM2-135M-Instruct on CPU, ~1 hour
#   snakemake --profile slurm --configfile config/paper.yaml    # the paper's grid on a Slurm GPU cluster
#   snakemake --cores all figures | report | contamination  # other targets
#
# A --configfile REPLACES config/config.yaml (each config file is complete): Snakemake would otherwise deep-merge the
# default's experiment families into the chosen config. Override single keys with --config key=value.

import os

from snakemake.utils import min_version

min_version("9.0")

if not workflow.overwrite_configfiles:
    # loaded by our own reader: a YAML syntax error names its line and column (a --configfile is read by Snakemake
    # itself before this file runs, and its syntax errors give no position)
    import sys
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import update_config

    sys.path.insert(0, os.path.join(workflow.basedir, "workflow", "lib"))
    import checks

    try:
        update_config(config, checks.load_yaml_config(os.path.join(workflow.basedir, "config", "config.yaml")))
    except checks.ConfigError as e:
        raise WorkflowError(str(e)) from None
    update_config(config, workflow.config_settings.overwrite_config)  # --config wins, as with `configfile:`


report: "workflow/report/workflow.rst"  # `snakemake --report report.html` (or .zip): figures, tables, claims


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/contamination.smk"
include: "workflow/rules/validate.smk"  # last: checks every CLI's flags with the rules' own helpers


rule all:
    default_target: True
    input:
        all_targets(),
