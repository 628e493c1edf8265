# rspo-bench: train every cell of the RSPO experiment grid, evaluate it, aggregate, and draw every figure.
#
#   snakemake --cores all                                   # default: tiny char-level model, CPU, ~15 min
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

    configfile: os.path.join(workflow.basedir, "config", "config.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/contamination.smk"


rule all:
    default_target: True
    input:
        all_targets(),
