# Train: one job per unique cell (cells shared by several families are trained once).
#
# Declared outputs are the FINAL artifacts only (the model folder and the training log). Resume checkpoints live in
# results/ckpt/{cell}/, which Snakemake does not know about, so a killed or requeued job that is rerun (with
# --rerun-incomplete, set in the profiles) resumes from its newest checkpoint instead of starting over.


def _trainer_flags(wildcards):
    """Trainer-specific CLI flags of one cell: config train.args, then the model's train_args, then the cell (and, for
    the local trainer, the grader block; OpenRLHF's reward_func gets it through the environment)."""
    cell = cell_of(wildcards)
    spec = MODELS[cell.model]
    args = merged_args(TR.get("args"), spec.get("train_args"))
    if TR["trainer"] == "local":
        cell_args = {
            "estimator": cell.estimator,
            **estimator_flags(cell, hp_flag="estimator_hp", plugin_flag="plugin", source_flag="estimator_source"),
            "k": cell.k,
            "n": cell.n,
            "reward": cell.reward,
            "k_schedule": cell.k_schedule,
            "seed": cell.seed,
            "template": spec.get("template", "qwen_math_cot"),
            **_local_grader_flags(),
        }
    else:  # openrlhf: dotted flags of OpenRLHF 0.11.2 plus the launcher's --rspo.* flags
        cell_args = {
            "algo.advantage.estimator": cell.estimator,
            **estimator_flags(cell, hp_flag="rspo.hp", plugin_flag="rspo.plugin", source_flag="rspo.estimator_source"),
            "rspo.k": cell.k if _uses_k(cell.algo) else None,
            "rspo.k_schedule": cell.k_schedule if cell.k_schedule != "constant" else None,
            "rollout.n_samples_per_prompt": cell.n,
            "train.seed": cell.seed,
            **_openrlhf_template_flags(spec.get("template", "qwen_math_cot")),
        }
    return C.cli_args({**args, **cell_args})


def _prefill_flags(wildcards):
    """The local trainer's ``--then-generate`` groups (analysis.train_and_prefill): right after training, the job
    samples the cell's evaluation benchmarks into the generate jobs' partial files, with the generate rule's own flags,
    so that each generate job only checks the inputs record and renames (one torch process less per evaluation).

    Only where the generate job would compute the same bits in the same way: the hf backend, and the same CPU threads
    and math pin for training and evaluation. Elsewhere (OpenRLHF, vLLM, other thread counts) "" and generate samples.
    A change of the evaluation settings reruns the training job (its params): it resumes from its final checkpoint
    and only samples again."""
    if TR["trainer"] != "local" or EV["backend"] != "hf" or TR.get("threads", 2) != EV.get("threads", 2):
        return ""
    cell = cell_of(wildcards)
    groups = []
    for bench in EVAL.get(cell, []):
        wc = SimpleNamespace(cell=wildcards.cell, bench=bench)
        groups.append(
            f"--then-generate --model {cell_model_dir(wildcards)} --data {data_path(bench)} "
            f"--out {eval_files([(cell, bench)], 'samples.jsonl')[0]} --partial {generate_partial(wildcards.cell, bench)} "
            f"--benchmark {bench} {_generate_flags(wc)}"
        )
    return " ".join(groups)


def _local_grader_flags():
    """The config's grader block as flags of rspo_patch.train_local (OpenRLHF's reward_func reads the same values from
    RSPO_GRADE_FALLBACK / RSPO_GRADE_TIMEOUT, exported by the train command)."""
    return {"fallback": config["grader"]["fallback"] or "none", "grade_timeout": config["grader"]["timeout_s"]}


def _train_resource(wildcards, key, default):
    """One resource of a cell's training job: models.<model>.train_resources.<key>, else train.<key>, else default
    (per model size: a 7B cell needs more memory and time than a 1.5B one)."""
    per_model = MODELS[cell_of(wildcards).model].get("train_resources") or {}
    return per_model.get(key, TR.get(key, default))


def _openrlhf_template_flags(template):
    """The prompt template of rspo_core.prompts as a launcher flag: --rspo.template renders it (chat templates with the
    actor's tokenizer, system message included) into OpenRLHF's --data.input_template inside the job."""
    return {"rspo.template": template}


def _train_command():
    # cells with GPUs start through the device wrapper (common.smk gpu_wrapper): "" when no cell asks for any
    gpus = gpu_wrapper(any(_train_resource(SimpleNamespace(cell=c.path), "gpus", 0) > 0 for c in TRAINED))
    if TR["trainer"] == "local":
        return (
            "{params.cpu_pin} OMP_NUM_THREADS={threads} " + gpus + "python -m analysis.train_and_prefill --model "
            "{input.model} --data {input.data} --out {params.out} --ckpt-dir {params.ckpt} {params.flags} "
            "{params.prefill} > {log} 2>&1"
        )
    # OpenRLHF on one node: a private Ray (address local, per-job temp dir) so concurrent jobs on a shared node never
    # join each other's cluster; checkpoints and TensorBoard logs under results/ckpt/{cell} (--ckpt.load_enable
    # resumes a requeued job only if the launcher finds a complete checkpoint made with the same flags, base weights,
    # data and reward file; otherwise it moves the folder aside to {cell}.stale-<time> and starts fresh); the
    # TensorBoard scalars become train_log.jsonl (workflow/scripts/openrlhf_train_log.py). The device wrapper holds the
    # job's GPUs for the launcher only, and sets CUDA_VISIBLE_DEVICES before it starts Ray (which reads it).
    return (
        "export RSPO_REWARD={params.reward} RSPO_MAX_NEW_TOKENS={params.max_new_tokens} "
        "RSPO_GRADE_FALLBACK={params.grade_fallback} RSPO_GRADE_TIMEOUT={params.grade_timeout}; "
        "{params.cpu_pin} " + gpus + "python -m rspo_patch.openrlhf.launch --rspo.ray_temp_dir "
        "$(mktemp -d /tmp/ray-rspo.XXXXXX) "
        "--actor.model_name_or_path {input.model} --data.prompt_dataset {input.data} "
        "--data.input_key question --data.label_key answer --reward.remote_url {params.reward_func} "
        "--ckpt.path {params.ckpt} --ckpt.load_enable --ckpt.save_hf --ckpt.output_dir {output.model} "
        "--logger.tensorboard_dir {params.ckpt}/tensorboard --logger.wandb.run_name rspo {params.flags} > {log} 2>&1 "
        "&& python {params.tb_script} --tensorboard {params.ckpt}/tensorboard --out {output.log} >> {log} 2>&1"
    )


rule train:
    """Train one cell (local reference trainer on CPU/1 GPU, or OpenRLHF on a GPU node, per config train.trainer); the
    local trainer's job then samples the cell's evaluation benchmarks for the generate jobs (_prefill_flags)."""
    input:
        model=lambda wc: base_model_dir(cell_of(wc).model),
        data=train_data_path(),
    output:
        model=directory(f"{R}/train/{{cell}}/model"),
        log=f"{R}/train/{{cell}}/train_log.jsonl",
    log:
        f"{LOGS}/train/{{cell}}.log",
    params:
        out=f"{R}/train/{{cell}}",
        ckpt=f"{R}/ckpt/{{cell}}",
        flags=_trainer_flags,
        reward=lambda wc: cell_of(wc).reward,
        max_new_tokens=lambda wc: merged_args(TR.get("args"), MODELS[cell_of(wc).model].get("train_args")).get(
            "rollout.max_new_tokens", ""
        ),
        grade_fallback=config["grader"]["fallback"] or "none",
        grade_timeout=config["grader"]["timeout_s"],
        reward_func=os.path.join(workflow.basedir, "rspo_patch", "openrlhf", "reward_func.py"),
        tb_script=os.path.join(workflow.basedir, "workflow", "scripts", "openrlhf_train_log.py"),
        cpu_pin=CPU_PIN if TR["trainer"] == "local" else CPU_NATIVE,
        prefill=_prefill_flags,
    threads: TR.get("threads", 2)
    priority: 50  # the long jobs first; analytic figures fill the gaps
    resources:
        gpu=lambda wc: _train_resource(wc, "gpus", 0),
        cpus_per_task=lambda wc: _train_resource(wc, "threads", 2),  # Slurm CPUs, not capped by the submit host
        mem_mb=lambda wc: _train_resource(wc, "mem_mb", 8000),
        runtime=lambda wc: _train_resource(wc, "runtime_min", 60),
    shell:
        _train_command()
