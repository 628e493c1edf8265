# Train: one job per unique cell (cells shared by several families are trained once).
#
# Declared outputs are the FINAL artifacts only (the model folder and the training log). Resume checkpoints live in
# results/ckpt/{cell}/, which Snakemake does not know about, so a killed or requeued job that is rerun (with
# --rerun-incomplete, set in the profiles) resumes from its newest checkpoint instead of starting over.


def _trainer_flags(wildcards):
    """Trainer-specific CLI flags of one cell: config train.args, then the model's train_args, then the cell."""
    cell = cell_of(wildcards)
    spec = MODELS[cell.model]
    args = merged_args(TR.get("args"), spec.get("train_args"))
    if TR["trainer"] == "local":
        cell_args = {
            "estimator": cell.algo,
            "k": cell.k,
            "n": cell.n,
            "reward": cell.reward,
            "k_schedule": cell.k_schedule,
            "seed": cell.seed,
            "template": spec.get("template", "qwen_math_cot"),
        }
    else:  # openrlhf: dotted flags of OpenRLHF 0.11.2 plus the launcher's --rspo.* flags
        cell_args = {
            "algo.advantage.estimator": cell.algo,
            "rspo.k": cell.k,
            "rspo.k_schedule": cell.k_schedule,
            "rspo.reward": cell.reward,
            "rollout.n_samples_per_prompt": cell.n,
            "train.seed": cell.seed,
            "rspo.template": spec.get("template", "qwen_math_cot"),
        }
    return C.cli_args({**args, **cell_args})


def _train_command():
    if TR["trainer"] == "local":
        return (
            "OMP_NUM_THREADS={threads} python -m rspo_patch.train_local --model {input.model} --data {input.data} "
            "--out {params.out} --ckpt-dir {params.ckpt} --no-progress {params.flags}"
        )
    # OpenRLHF on one node: Ray started inside the job (address local, per-job temp dir), so concurrent jobs on a
    # shared node never join each other's Ray cluster; checkpoints under results/ckpt/{cell} with load_enable resume.
    return (
        "python -m rspo_patch.openrlhf.launch --ray.address local --ray.temp_dir $(mktemp -d /tmp/ray-rspo.XXXXXX) "
        "--actor.model_name_or_path {input.model} --data.prompt_dataset {input.data} "
        "--data.input_key question --data.label_key answer "
        "--ckpt.path {params.ckpt} --ckpt.load_enable --ckpt.save_hf --ckpt.output_dir {output.model} "
        "--rspo.train_log {output.log} --logger.tensorboard_dir {params.ckpt}/tensorboard {params.flags}"
    )


rule train:
    """Train one cell (local reference trainer on CPU/1 GPU, or OpenRLHF on a GPU node, per config train.trainer)."""
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
    threads: TR.get("threads", 2)
    resources:
        gpu=TR.get("gpus", 0),
        mem_mb=TR.get("mem_mb", 8000),
        runtime=TR.get("runtime_min", 60),
    shell:
        _train_command() + " > {log} 2>&1"
