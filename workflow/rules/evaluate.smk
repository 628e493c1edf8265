# Evaluate: for every (cell, benchmark) pair, once: generate n samples -> verify -> score (unbiased pass@k, max@k).
# The base model is the cell algo~base/k~1/n~1/reward~pass/seed~0 and is evaluated like any trained cell.


def _generate_flags(wildcards):
    cell = cell_of(wildcards)
    spec = MODELS[cell.model]
    args = merged_args(EV.get("generate_args"), spec.get("eval_args"))
    args.update(
        {
            "n": eval_n(wildcards.bench),
            "temperature": EV["temperature"],
            "top_p": EV["top_p"],
            "max_new_tokens": EV["max_new_tokens"],
            "template": spec.get("template", "qwen_math_cot"),
            "seed": EV["seed"],
            "backend": EV["backend"],
        }
    )
    return C.cli_args(args)


# Partial samples live in results/partial/generate/{cell}/{bench}.jsonl, which Snakemake does not know about (as
# training's results/ckpt): a killed job that is rerun resumes from it instead of starting over (Snakemake deletes an
# incomplete declared output). analysis.generate ties it to the sha256 of the model and the data and to the sampling
# config (a partial file made from other inputs is deleted), and renames it to samples.jsonl once complete. A trained
# cell's local training job pre-fills these files (train.smk, _prefill_flags): its generate job then only checks the
# inputs record and renames, in a fraction of a second.


rule generate:
    """n samples per problem of one benchmark from one cell's model (resumable from results/partial/generate)."""
    input:
        model=cell_model_dir,
        data=lambda wc: data_path(wc.bench),
    output:
        f"{R}/eval/{{cell}}/{{bench}}/samples.jsonl",
    log:
        f"{LOGS}/eval/{{cell}}/{{bench}}/generate.log",
    params:
        flags=_generate_flags,
        partial=lambda wc: generate_partial(wc.cell, wc.bench),
        cpu_pin=CPU_PIN if EV["backend"] == "hf" else CPU_NATIVE,
    threads: EV.get("threads", 2)
    priority: 40
    resources:
        gpu=EV.get("gpus", 0),
        mem_mb=8000,
        runtime=240,
    shell:
        "{params.cpu_pin} OMP_NUM_THREADS={threads} " + gpu_wrapper(EV.get("gpus", 0) > 0) + "python -m "
        "analysis.generate --model {input.model} --data {input.data} --out {output} --partial {params.partial} "
        "--benchmark {wildcards.bench} {params.flags} > {log} 2>&1"


def _xverify_input(wildcards):
    if config["grader"]["verifier"] == "xverify":
        return {"judge": base_model_dir(config["grader"]["xverify_model"])}
    return {}


def _verify_flags(wildcards, input, threads):
    """Flags of analysis.verify: eval.verify_args, then the config's grader block (the one the train rule uses too)."""
    grader = config["grader"]
    args = dict(EV.get("verify_args") or {})
    args["max_new_tokens"] = EV["max_new_tokens"]
    args.setdefault("workers", threads)
    args["fallback"] = grader["fallback"] or "none"
    args["timeout"] = grader["timeout_s"]
    args["verifier"] = grader["verifier"]
    if grader["verifier"] == "xverify":
        args["xverify_model"] = input.judge
    return C.cli_args(args)


_VERIFY_GPUS = EV.get("gpus", 0) if config["grader"]["verifier"] == "xverify" else 0  # the xVerify judge's GPUs


rule verify:
    """Grade every sample (extracted answer, correct, pass and max rewards; math-verify, or xVerify beside it)."""
    input:
        unpack(_xverify_input),
        samples=f"{R}/eval/{{cell}}/{{bench}}/samples.jsonl",
        data=lambda wc: data_path(wc.bench),
    output:
        f"{R}/eval/{{cell}}/{{bench}}/verified.jsonl",
    log:
        f"{LOGS}/eval/{{cell}}/{{bench}}/verify.log",
    params:
        flags=_verify_flags,
    threads: 1
    resources:
        gpu=_VERIFY_GPUS,
        mem_mb=4000,
        runtime=120,
    shell:
        gpu_wrapper(_VERIFY_GPUS > 0) + "python -m analysis.verify --samples {input.samples} --data {input.data} "
        "--out {output} {params.flags} > {log} 2>&1"


rule score:
    """Unbiased pass@k and max@k with bootstrap CIs (tidy CSV + JSON)."""
    input:
        f"{R}/eval/{{cell}}/{{bench}}/verified.jsonl",
    output:
        json=f"{R}/eval/{{cell}}/{{bench}}/metrics.json",
        csv=f"{R}/eval/{{cell}}/{{bench}}/metrics.csv",
    log:
        f"{LOGS}/eval/{{cell}}/{{bench}}/score.log",
    params:
        flags=lambda wc: C.cli_args(
            {
                "ks": ",".join(str(k) for k in EV["ks"]),
                "n_boot": EV.get("n_boot", 1000),
                "seed": EV["seed"],
                "n_expected": eval_n(wc.bench),  # a problem with fewer samples stops scoring, never a silent gap
            }
        ),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "python -m analysis.metrics --verified {input} --out-json {output.json} --out-csv {output.csv} "
        "{params.flags} > {log} 2>&1"
