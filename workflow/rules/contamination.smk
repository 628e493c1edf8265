# Contamination: re-evaluate every trained checkpoint on benchmarks released after the base model (AIME25,
# LiveMathBench 202505; offline: the synthetic arithmetic_clean, with arithmetic_seen as the deliberately contaminated
# control), and audit every benchmark for n-gram overlap with the training set.


def audited_benchmarks():
    """Every benchmark the config evaluates on, plus the contamination ones (sorted, unique, not the train set).

    The synthetic train set is arithmetic_train.jsonl, so the 'arithmetic' benchmark (its test split) is audited,
    as are arithmetic_clean (expected: nothing flagged) and arithmetic_seen (expected: every row flagged).
    """
    benches = {b for fam in FAMILIES.values() for b in fam["benchmarks"]} | set(CONTAM_BENCHES)
    train = config["data"]["train"]
    return sorted(benches - ({train} if train != "arithmetic" else set()))


rule ngram_audit:
    """n-gram overlap of every benchmark's problems with the training set (python -m analysis.contamination)."""
    input:
        train=train_data_path(),
        benches=[data_path(b) for b in audited_benchmarks()],
    output:
        json=f"{R}/contamination/ngram_overlap.json",
        csv=f"{R}/contamination/ngram_overlap.csv",
    log:
        f"{LOGS}/contamination/ngram_overlap.log",
    params:
        benches=" ".join(f"--bench {b}={data_path(b)}" for b in audited_benchmarks()),
        args=C.cli_args(config.get("contamination", {}).get("args")),
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    shell:
        "python -m analysis.contamination --train {input.train} {params.benches} --out-json {output.json} "
        "--out-csv {output.csv} {params.args} > {log} 2>&1"


rule contamination:
    """Target: every trained cell on the contamination benchmarks + the n-gram audit of every benchmark."""
    input:
        evals=eval_files(contamination_eval_pairs()),
        audit=rules.ngram_audit.output.json,
