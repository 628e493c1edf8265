# Aggregate: every cell's metrics and training log -> tidy tables; the effective config and the cell manifest.


rule effective_config:
    """The validated config with schema defaults filled in (what the figures read to know each family's cells)."""
    output:
        config=f"{R}/config.yaml",
        cells=f"{R}/cells.json",
    log:
        f"{LOGS}/effective_config.log",
    params:
        config=config,
        manifest={
            "families": {
                name: {"cells": [c.path for c in cells], "benchmarks": list(FAMILIES[name]["benchmarks"])}
                for name, cells in PER_FAMILY.items()
            },
            "trained": [c.path for c in TRAINED],
            "evaluated": {c.path: b for c, b in EVAL.items()},
        },
    localrule: True
    run:
        import yaml

        for path, text in (
            (output.config, yaml.safe_dump(params.config, sort_keys=False)),
            (output.cells, json.dumps(params.manifest, indent=1)),
        ):
            tmp = path + ".tmp"
            with open(tmp, "w") as fh:
                fh.write(text)
            os.replace(tmp, path)
        with open(log[0], "w") as fh:
            fh.write(f"{len(TRAINED)} trained cells, {sum(map(len, EVAL.values()))} evaluations\n")


rule aggregate:
    """Tidy tables: passk.csv, maxk.csv (one row per cell, benchmark, k) and train_curves.csv (per cell and step)."""
    input:
        metrics=eval_files(main_eval_pairs()),
        train_logs=[f"{R}/train/{c.path}/train_log.jsonl" for c in TRAINED],
    output:
        passk=f"{R}/tables/passk.csv",
        maxk=f"{R}/tables/maxk.csv",
        curves=f"{R}/tables/train_curves.csv",
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
