# Figures: one job per figure of analysis.figures (the list comes from its FIGURES registry, never from here).
# Analytic figures need no data; "tables" figures need the aggregate tables; "bandit" figures the toy policy lab.

import importlib.util

# Used only when analysis.figures cannot be imported (e.g. a checkout without matplotlib): the analytic figures.
FALLBACK_FIGURES = {
    "fig01_risk_preference": "analytic",
    "fig02_hitchhiking_weights": "analytic",
    "fig03_max_probability": "analytic",
    "fig04_passk_weight": "analytic",
    "fig05_maxk_gaussian_weight": "analytic",
}


def figure_registry():
    """figure name -> what it needs ("analytic", "tables" or "bandit"), from analysis.figures.FIGURES."""
    try:
        from analysis.figures import FIGURES
    except ImportError as e:
        logger.warning(f"analysis.figures not importable ({e}); building only the analytic figures")
        return dict(FALLBACK_FIGURES)
    return {name: spec["needs"] for name, spec in FIGURES.items()}


HAVE_BANDIT = importlib.util.find_spec("rspo_patch.bandit") is not None
FIGURE_NEEDS = {
    name: needs
    for name, needs in figure_registry().items()
    if (needs != "bandit" or HAVE_BANDIT)
    and (config.get("figures", {}).get("only") is None or name in config["figures"]["only"])
    and name not in config.get("figures", {}).get("exclude", [])
}
TABLES = [f"{R}/tables/passk.csv", f"{R}/tables/maxk.csv", f"{R}/tables/train_curves.csv"]
BANDIT_JSON = f"{R}/bandit/bandit.json"


def figure_targets():
    return [f"{R}/figures/{name}.pdf" for name in FIGURE_NEEDS]


def _figure_inputs(wildcards):
    needs = FIGURE_NEEDS.get(wildcards.fig)
    if needs is None:
        raise WorkflowError(f"unknown figure {wildcards.fig!r}; expected one of {', '.join(FIGURE_NEEDS)}")
    inputs = {"config": f"{R}/config.yaml"}
    if needs == "tables":
        inputs["tables"] = TABLES
    elif needs == "bandit":
        inputs["bandit"] = BANDIT_JSON
    return inputs


def _figure_flags(wildcards, input):
    flags = f"--config {input.config}"
    if "tables" in input.keys():
        flags += f" --tables {R}/tables"
    if "bandit" in input.keys():
        flags += f" --bandit {input.bandit}"
    return flags


if HAVE_BANDIT:

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
