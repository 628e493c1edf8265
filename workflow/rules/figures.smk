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
    needs = _figure_spec(wildcards)["needs"]
    inputs = {}
    if needs == "tables":
        inputs["tables"] = TABLES
        inputs["cells"] = CELLS_JSON
    elif needs == "bandit":
        inputs["bandit"] = BANDIT_JSON
    return inputs


FIGURE_KINDS = {  # needs -> the figure's subcategory in Snakemake's report (snakemake --report)
    "tables": "From the runs",
    "analytic": "Analytic",
    "bandit": "Toy policy lab",
}


def _rst_text(text):
    """text with rST's inline markup characters (backslash, *, `, |, _) backslash-escaped, shown verbatim in a
    report caption."""
    return re.sub(r"([\\*`|_])", r"\\\1", text)


def _figure_spec(wildcards):
    """FIGURES[fig] of analysis.figures; an unknown name is a WorkflowError naming the known ones."""
    if wildcards.fig not in FIGURE_NEEDS:
        raise WorkflowError(f"unknown figure {wildcards.fig!r}; expected one of {', '.join(FIGURE_NEEDS)}")
    return FIGURES[wildcards.fig]


def _figure_report_labels(wildcards):
    """Columns of the figure's row in Snakemake's report: name and the paper figure it reproduces (or "-")."""
    paper = _figure_spec(wildcards)["paper_figure"]
    return {"figure": wildcards.fig, "paper figure": f"Fig. {paper}" if paper else "-"}


def _figure_report(ext):
    """{R}/figures/{fig}.{ext} flagged as an item of Snakemake's report: category Figures, subcategory
    FIGURE_KINDS[needs], caption workflow/report/figure.rst, label columns figure, paper figure, format."""
    return report(
        f"{R}/figures/{{fig}}.{ext}",
        caption="../report/figure.rst",
        category="Figures",
        subcategory=lambda wc: FIGURE_KINDS[_figure_spec(wc)["needs"]],
        labels=lambda wc: {**_figure_report_labels(wc), "format": ext.upper()},
    )


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
    """One figure: PDF + PNG + JSON sidecar (config, inputs, cells used, missing cells). PNG and PDF are items of
    Snakemake's report (category Figures, subcategory FIGURE_KINDS[needs]); their caption, workflow/report/figure.rst,
    renders the registry's caption from params (defined once, in analysis.figures)."""
    input:
        unpack(_figure_inputs),
    output:
        pdf=_figure_report("pdf"),
        png=_figure_report("png"),
        sidecar=f"{R}/figures/{{fig}}.json",
    log:
        f"{LOGS}/figures/{{fig}}.log",
    params:
        out=f"{R}/figures",
        flags=_figure_flags,
        # read by the report caption workflow/report/figure.rst (not by the command)
        needs=lambda wc: _figure_spec(wc)["needs"],
        paper_figure=lambda wc: _figure_spec(wc)["paper_figure"] or "",
        caption=lambda wc: _rst_text(_figure_spec(wc)["caption"]),
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
