# Figures: one job per figure of analysis.figures (the list comes from its FIGURES registry, never from here).
# Analytic figures need no data; "tables" figures need the aggregate tables; "bandit" figures the toy policy lab.

from analysis.figures import FIGURES  # noqa: E402

FIGURE_NEEDS = {
    name: spec["needs"]  # "analytic", "tables" or "bandit"
    for name, spec in FIGURES.items()
    if (config.get("figures", {}).get("only") is None or name in config["figures"]["only"])
    and name not in config.get("figures", {}).get("exclude", [])
}
TABLES = [f"{R}/tables/passk.csv", f"{R}/tables/maxk.csv", f"{R}/tables/train_curves.csv"]
CELLS_JSON = f"{R}/cells.json"
BANDIT_JSON = f"{R}/bandit/bandit.json"


def figure_targets():
    return [f"{R}/figures/{name}.pdf" for name in FIGURE_NEEDS]


def _figure_inputs(wildcards):
    needs = FIGURE_NEEDS.get(wildcards.fig)
    if needs is None:
        raise WorkflowError(f"unknown figure {wildcards.fig!r}; expected one of {', '.join(FIGURE_NEEDS)}")
    inputs = {}
    if needs == "tables":
        inputs["tables"] = TABLES
        inputs["cells"] = CELLS_JSON
    elif needs == "bandit":
        inputs["bandit"] = BANDIT_JSON
    return inputs


def _figure_flags(wildcards, input):
    flags = ""
    if "tables" in input.keys():
        flags += f" --tables {R}/tables --cells {input.cells}"
    if "bandit" in input.keys():
        flags += f" --bandit {input.bandit}"
    return flags


rule bandit:
    """The toy policy lab (exact bandit experiments behind the analytic/mechanism figures)."""
    output:
        BANDIT_JSON,
    log:
        f"{LOGS}/bandit.log",
    threads: 1
    shell:
        "python -m rspo_patch.bandit --out {output} > {log} 2>&1"


rule figure:
    """One figure: PDF + PNG + JSON sidecar (config, inputs, cells used, missing cells)."""
    input:
        unpack(_figure_inputs),
    output:
        pdf=f"{R}/figures/{{fig}}.pdf",
        png=f"{R}/figures/{{fig}}.png",
        sidecar=f"{R}/figures/{{fig}}.json",
    log:
        f"{LOGS}/figures/{{fig}}.log",
    params:
        out=f"{R}/figures",
        flags=_figure_flags,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "python -m analysis.figures --out {params.out} --only {wildcards.fig} "
        "{params.flags} > {log} 2>&1"


rule figures:
    """Target: every figure."""
    input:
        figure_targets(),
