# Aggregate: every cell's metrics and training log -> tidy tables; the effective config and the cell manifest.

from analysis.manifest import build_manifest, write_manifest  # noqa: E402


rule effective_config:
    """The validated config with schema defaults filled in, and the cell manifest (analysis.manifest): per family its
    cells (with the tables' cell columns) and benchmarks, what the figures and the claims table read."""
    output:
        config=f"{R}/config.yaml",
        cells=f"{R}/cells.json",
    log:
        f"{LOGS}/effective_config.log",
    params:
        config=config,
        manifest=build_manifest(FAMILIES, PER_FAMILY, contamination_benchmarks=CONTAM_BENCHES, estimators=ESTIMATORS),
    localrule: True
    run:
        import yaml

        from rspo_core.atomic import write_text_atomic

        write_text_atomic(output.config, yaml.safe_dump(params.config, sort_keys=False))
        write_manifest(params.manifest, output.cells)
        with open(log[0], "w") as fh:
            fh.write(f"{len(TRAINED)} trained cells, {sum(map(len, EVAL.values()))} evaluations\n")


def _table_report(name, subcategory, what):
    """{R}/tables/{name} flagged as an item of Snakemake's report: category Tables, the given subcategory, caption
    workflow/report/{stem}.rst (stem = name without .csv), label columns table (the file name) and what."""
    stem = name.removesuffix(".csv")
    return report(f"{R}/tables/{name}", caption=f"../report/{stem}.rst", category="Tables", subcategory=subcategory,
                  labels={"table": name, "what": what})


rule aggregate:
    """Tidy tables: passk.csv, maxk.csv (one row per cell, benchmark, k), train_curves.csv (per cell and step),
    gaps.csv (evaluation points a cell lacks although the other cells of its benchmark have them) and the summaries
    passk_summary.csv, maxk_summary.csv (per benchmark and method: mean over seeds [95% CI] at each k). Every CSV is an
    item of Snakemake's report (category Tables), captioned by workflow/report/<table>.rst."""
    input:
        metrics=eval_files(main_eval_pairs()),
        train_logs=[f"{R}/train/{c.path}/train_log.jsonl" for c in TRAINED],
    output:
        passk=_table_report("passk.csv", "Metrics", "Pass@k per cell, benchmark and k"),
        maxk=_table_report("maxk.csv", "Metrics", "Max@k per cell, benchmark and k"),
        passk_summary=_table_report("passk_summary.csv", "Summaries", "Pass@k: mean over seeds [95% CI]"),
        maxk_summary=_table_report("maxk_summary.csv", "Summaries", "Max@k: mean over seeds [95% CI]"),
        curves=_table_report("train_curves.csv", "Training", "training log per cell and step"),
        gaps=_table_report("gaps.csv", "Checks", "evaluation points a cell lacks"),
    log:
        f"{LOGS}/aggregate.log",
    params:
        eval_root=f"{R}/eval",
        train_root=f"{R}/train",
        out_dir=f"{R}/tables",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "python -m analysis.aggregate --eval-root {params.eval_root} --train-root {params.train_root} "
        "--out-dir {params.out_dir} > {log} 2>&1"


rule claims:
    """The claims table (docs/claims.md): each claim C1-C10 of the paper's §5 with per-seed paired differences, a 95%
    t-interval over seeds and a verdict (reproduced / not reproduced / inconclusive / not run); and paired.csv
    (analysis.paired): per-seed values and paired differences of the compared methods at every evaluation k."""
    input:
        passk=f"{R}/tables/passk.csv",
        maxk=f"{R}/tables/maxk.csv",
        curves=f"{R}/tables/train_curves.csv",
        cells=f"{R}/cells.json",
    output:
        report(
            f"{R}/tables/claims.csv",
            caption="../report/claims.rst",
            category="Claims",
            subcategory="§5 of the paper",
            labels={"table": "claims.csv", "what": "each claim C1-C10 of the paper's §5 with its verdict"},
        ),
        paired=report(
            f"{R}/tables/paired.csv",
            caption="../report/paired.rst",
            category="Claims",
            subcategory="§5 of the paper",
            labels={"table": "paired.csv", "what": "per-seed values and paired differences of the compared methods"},
        ),
    log:
        f"{LOGS}/claims.log",
    params:
        tables=f"{R}/tables",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "python -m analysis.claims --tables {params.tables} --cells {input.cells} --out {output[0]} "
        "--paired-out {output.paired} > {log} 2>&1"
