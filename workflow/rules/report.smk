# Report: one self-contained HTML page with every figure, its caption, the claims table and the summary tables.


rule report:
    """results/report.html (python -m analysis.report)."""
    input:
        figures=figure_targets(),
        tables=TABLES,
        claims=f"{R}/tables/claims.csv",
        paired=f"{R}/tables/paired.csv",
        base_models=[f"{R}/tables/base_models.csv"] if PRETRAINED else [],
        config=f"{R}/config.yaml",
    output:
        f"{R}/report.html",
    log:
        f"{LOGS}/report.log",
    params:
        tables=f"{R}/tables",
        figures=f"{R}/figures",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "python -m analysis.report --tables {params.tables} --figures {params.figures} --config {input.config} "
        "--out {output} > {log} 2>&1"
