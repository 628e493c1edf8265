"""The patched trainer inside real Ray actors (local CPU Ray) and the lazy async hook."""

from __future__ import annotations

import importlib
import json
import shutil
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

pytest.importorskip("openrlhf", reason="openrlhf is not installed: `pip install --no-deps openrlhf==0.11.2` to run "
                    "the OpenRLHF plugin tier")

from rspo_patch.estimators import compute_weights

N = 4
RAY_FLAGS = ["--algo.advantage.estimator", "rspo_pass", "--rspo.k", "2", "--rollout.n_samples_per_prompt", str(N),
             "--rollout.batch_size", "2", "--train.batch_size", "8", "--rspo.k_schedule", "linear"]


@pytest.fixture()
def tiny_run(tmp_path, parse_flags):
    """A char-level HF tokenizer folder and a 10-prompt JSONL: all PPOTrainer.__init__ loads (no model weights)."""
    from rspo_patch.charlm import build_char_tokenizer

    build_char_tokenizer().save_pretrained(tmp_path / "tok")
    with open(tmp_path / "train.jsonl", "w") as f:
        for i in range(10):
            f.write(json.dumps({"question": f"{i}+1=", "answer": str(i + 1)}) + "\n")
    args = parse_flags(*RAY_FLAGS, "--actor.model_name_or_path", str(tmp_path / "tok"), "--data.prompt_dataset",
                       str(tmp_path / "train.jsonl"), "--data.input_key", "question", "--data.label_key", "answer",
                       base=False)
    return args


def _weights_by_index(experiences):
    out = {}
    for exp in experiences:
        for row, j in enumerate(exp.index):
            out[j] = float(exp.info["rspo_weight"][row])
    return torch.tensor([out[j] for j in range(len(out))])


def test_rspo_trainer_is_the_ray_actor(tiny_run, make_experiences, cpu_stub_installer):
    """RSPOPPOTrainer, started like OpenRLHF's train() starts PPOTrainer, builds and uses RSPOExperienceMaker."""
    ray = pytest.importorskip("ray")
    from openrlhf.utils import get_strategy

    from rspo_patch.openrlhf.trainer import RSPOPPOTrainer

    args = tiny_run
    temp_dir = tempfile.mkdtemp(prefix="rspo_ray_", dir="/tmp")  # short: Ray's socket paths are length-limited
    ray.cloudpickle.register_pickle_by_value(sys.modules[cpu_stub_installer.__module__])
    # only the CPU stand-ins for flash_attn / vllm; the plugin itself arrives through the actor class
    # 24 logical GPUs: what the launcher's flags below ask for (OpenRLHF's defaults: 8 actor, 8 reference and 8 reward-
    # model ranks, launch.required_gpus); with fewer the launcher stops before OpenRLHF's __main__ goes on (checked
    # at the end). Nothing here uses a GPU.
    ray.init(address="local", num_cpus=1, num_gpus=24, include_dashboard=False, _temp_dir=temp_dir,
             log_to_driver=False, runtime_env={"worker_process_setup_hook": cpu_stub_installer})
    try:
        trainer = RSPOPPOTrainer.remote(args.actor.model_name_or_path, get_strategy(args), None, None, None, None,
                                        None, do_sample=True, max_len=64, max_new_tokens=8, temperature=1.0,
                                        top_p=1.0)
        assert ray.get(trainer.experience_maker_class.remote(), timeout=240) == (
            "rspo_patch.openrlhf.experience.RSPOExperienceMaker")
        rewards = torch.tensor([[1.0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]])
        out = ray.get(trainer.compute_advantages.remote(make_experiences(rewards, n=N, micro_batch=5)), timeout=60)
        torch.testing.assert_close(_weights_by_index(out), compute_weights("rspo_pass", rewards, k=2).reshape(-1))
        # the linear k schedule got its length from the prompt set: 10 prompts / rollout.batch_size 2 = 5 steps
        assert float(out[0].info["rspo_k"][0]) == 2.0
        _check_launcher_main(args)
    finally:
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)


def _check_launcher_main(args):
    """launch.main() on a running Ray: parse + validate, rebind PPOTrainer, then OpenRLHF's own __main__ continues.

    ``--train.partial_rollout_enable`` without async mode trips OpenRLHF's post-parse assertion, the last statement
    before ``train(args)``, so the run stops there (train() itself needs GPUs).
    """
    import openrlhf.trainer.ppo_trainer as ppo_trainer_module

    from rspo_patch.openrlhf import launch
    from rspo_patch.openrlhf.trainer import RSPOPPOTrainer, STOCK_PPO_TRAINER, uninstall_trainer

    flags = [*RAY_FLAGS, "--actor.model_name_or_path", args.actor.model_name_or_path, "--train.partial_rollout_enable",
             "--data.prompt_dataset", args.data.prompt_dataset, "--ckpt.path",
             str(Path(args.data.prompt_dataset).parent / "ckpt")]
    try:
        with pytest.raises(AssertionError, match="partial_rollout_enable requires"):
            launch.main(flags)
        assert ppo_trainer_module.PPOTrainer is RSPOPPOTrainer
    finally:
        uninstall_trainer()
    assert ppo_trainer_module.PPOTrainer is STOCK_PPO_TRAINER
    with pytest.raises(SystemExit):  # validation still comes first
        launch.main([*flags, "--rspo.k", "9"])
    with pytest.raises(SystemExit, match=r"this run needs 32 GPUs = 8 \(actor ranks\) \+ 16 \(reference ranks\).*"
                                         r"but Ray has 24"):
        launch.main([*flags, "--ref.num_gpus_per_node", "16"])  # a layout larger than Ray: one line, no wait


def test_async_hook_patches_lazily_on_import(parse_flags, make_experiences):
    """hooks.setup() in a process that has not imported OpenRLHF's trainer: patched when it is imported."""
    from rspo_patch.openrlhf import hooks
    from rspo_patch.openrlhf.experience import RSPOExperienceMaker

    import openrlhf.trainer as trainer_pkg

    name = hooks.TARGET_MODULE
    saved = sys.modules.pop(name)
    try:
        hooks.setup()
        assert name not in sys.modules  # lazy: nothing imported yet
        module = importlib.import_module(name)
        assert module is not saved
        assert module.RemoteExperienceMaker is RSPOExperienceMaker
        assert module.BasePPOTrainer.train_step._rspo_wrapped
        assert module.SamplesGenerator.__init__._rspo_wrapped  # stop tokens in the async rollout actor
        hooks.setup()  # idempotent on an already imported module
        assert module.BasePPOTrainer.train_step.__wrapped__.__module__ == name

        args = parse_flags("--algo.advantage.estimator", "rspo_max", "--rspo.k", "3",
                           "--rollout.n_samples_per_prompt", "6", "--train.batch_size", "18")
        # the base class both the sync and the async TrainingActor inherit, built as OpenRLHF builds it
        trainer = module.BasePPOTrainer(SimpleNamespace(args=args), None, None, None, None, None, None)
        assert isinstance(trainer.experience_maker, RSPOExperienceMaker)
        rewards = torch.rand(3, 6, generator=torch.Generator().manual_seed(0))
        out = trainer.experience_maker.compute_advantages_and_returns(make_experiences(rewards, n=6, micro_batch=4))
        torch.testing.assert_close(_weights_by_index(out), compute_weights("rspo_max", rewards, k=3).reshape(-1))
    finally:
        hooks.teardown()
        generator_cls = sys.modules["openrlhf.trainer.ppo_utils.samples_generator"].SamplesGenerator
        if getattr(generator_cls.__init__, "_rspo_wrapped", False):
            generator_cls.__init__ = generator_cls.__init__.__wrapped__
        sys.modules[name] = saved
        trainer_pkg.ppo_trainer = saved


def test_async_hook_is_light():
    """The hook runs in every Ray worker (vLLM engines included): it must not import torch or OpenRLHF itself."""
    import subprocess

    code = ("import sys, rspo_patch.openrlhf.hooks as h; h.setup(); "
            "heavy = [m for m in ('torch', 'openrlhf', 'ray', 'transformers') if m in sys.modules]; "
            "assert not heavy, heavy; "
            "assert any(type(f).__name__ == '_PatchOnImport' for f in sys.meta_path)")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
