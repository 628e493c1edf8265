# Contamination: re-evaluate every trained checkpoint on benchmarks released after the base model (AIME25,
# LiveMathBench 202505), and audit every benchmark for n-gram overlap with the training set.


def audited_benchmarks():
    """Every benchmark the config evaluates on, plus the contamination ones (sorted, unique)."""
    benches = {b for fam in FAMILIES.values() for b in fam["benchmarks"]} | set(CONTAM_BENCHES)
    return sorted(benches - {config["data"]["train"]})


rule ngram_audit:
    """n-gram overlap of one benchmark's questions (and answers) with the training set."""
    input:
        train=train_data_path(),
        bench=lambda wc: data_path(wc.bench),
    output:
        f"{R}/contamination/{{bench}}.json",
    log:
        f"{LOGS}/contamination/{{bench}}.log",
    params:
        args=C.cli_args(config.get("contamination", {}).get("args")),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "python -m analysis.contamination --train {input.train} --benchmark {input.bench} --out {output} "
        "{params.args} > {log} 2>&1"


rule contamination:
    """Target: every trained cell on the contamination benchmarks + the n-gram audit of every benchmark."""
    input:
        evals=eval_files(contamination_eval_pairs()),
        audits=[f"{R}/contamination/{b}.json" for b in audited_benchmarks()],
