"""The launcher against OpenRLHF 0.11.2's real PPO argument parser (CPU)."""

from __future__ import annotations

import pytest

pytest.importorskip("openrlhf", reason="openrlhf is not installed: `pip install --no-deps openrlhf==0.11.2` to run "
                    "the OpenRLHF plugin tier")

from rspo_patch.estimators import ESTIMATORS
from rspo_patch.openrlhf import launch
from rspo_patch.openrlhf._version import OpenRLHFVersionError, check_openrlhf_version

REWARD_FILE = str(launch.REWARD_FUNC_FILE)


def test_registry_estimator_flags_parse(parse_flags):
    args = parse_flags("--algo.advantage.estimator", "rspo_max", "--rspo.k", "4", "--rollout.n_samples_per_prompt",
                       "16", "--rspo.k_schedule", "cosine", "--rspo.drop_zero_weight", "--train.batch_size", "48",
                       "--rspo.ray_temp_dir", "/tmp/x")
    assert args.algo.advantage.estimator == "rspo_max"
    assert (args.rspo.k, args.rspo.k_schedule, args.rspo.drop_zero_weight) == (4, "cosine", True)
    assert args.rspo.ray_temp_dir == "/tmp/x"
    assert list(args.reward.clip_range) == [-32.0, 32.0]  # widened: 2 * max(k, n) * max|R|
    assert args.actor.entropy_coef == 0.0  # entropy computed and logged
    assert args.rollout.n_samples_per_prompt == 16  # OpenRLHF's own flags untouched


def test_every_registry_name_is_a_choice(parse_flags):
    for name in ESTIMATORS:
        k = ["--rspo.k", "2"] if ESTIMATORS[name].uses_k else []
        args = parse_flags("--algo.advantage.estimator", name, "--rollout.n_samples_per_prompt", "4",
                           "--train.batch_size", "12", *k)
        assert args.algo.advantage.estimator == name


def test_builtin_estimator_keeps_openrlhf_defaults(parse_flags):
    args = parse_flags("--algo.advantage.estimator", "group_norm", "--rollout.n_samples_per_prompt", "8")
    assert list(args.reward.clip_range) == [-10.0, 10.0]
    assert args.actor.entropy_coef is None
    assert args.rspo.k is None


def test_user_settings_win(parse_flags):
    args = parse_flags("--algo.advantage.estimator", "pkpo_s", "--rspo.k", "8", "--rollout.n_samples_per_prompt",
                       "8", "--reward.clip_range", "-3", "3", "--actor.entropy_coef", "0.001")
    assert list(args.reward.clip_range) == [-3.0, 3.0]
    assert args.actor.entropy_coef == 0.001
    quiet = parse_flags("--algo.advantage.estimator", "pkpo_s", "--rspo.k", "8", "--rollout.n_samples_per_prompt",
                        "8", "--rspo.no_entropy_log")
    assert quiet.actor.entropy_coef is None


def test_parse_args_flat_namespace(parse_flags):
    ns = parse_flags("--algo.advantage.estimator", "pg", "--rollout.n_samples_per_prompt", "4", hierarchical=False)
    assert getattr(ns, "rspo.k") == 1  # pg does not use k
    assert getattr(ns, "algo.advantage.estimator") == "pg"


@pytest.mark.parametrize("flags, message", [
    (["--algo.advantage.estimator", "rspo_passs"], "invalid choice"),
    (["--algo.advantage.estimator", "rspo_pass", "--rollout.n_samples_per_prompt", "8"], "--rspo.k is required"),
    (["--algo.advantage.estimator", "rspo_pass", "--rspo.k", "9", "--rollout.n_samples_per_prompt", "8"],
     "exceeds --rollout.n_samples_per_prompt 8"),
    (["--algo.advantage.estimator", "baseline", "--rspo.k", "3", "--rollout.n_samples_per_prompt", "8"],
     "k must divide n"),
    (["--algo.advantage.estimator", "rspo_pass", "--rspo.k", "2", "--rollout.n_samples_per_prompt", "8",
      "--reward.overlong_buffer_len", "64"], "binary"),
    (["--algo.advantage.estimator", "group_norm", "--rspo.k", "2", "--rollout.n_samples_per_prompt", "8"],
     "built-in estimator 'group_norm'"),
    (["--algo.advantage.estimator", "rspo_pass", "--rspo.k", "2", "--rollout.n_samples_per_prompt", "8",
      "--rspo.k_schedule", "linear", "--train.async_enable"], "--rspo.schedule_steps"),
    (["--algo.advantage.estimator", "rs_grpo", "--rollout.n_samples_per_prompt", "8", "--rspo.hp", "gamma=1"],
     "unknown hyperparameter"),
    (["--algo.advantage.estimator", "rs_grpo", "--rollout.n_samples_per_prompt", "8", "--rspo.hp", "beta"],
     "KEY=VALUE"),
])
def test_bad_flags_exit_before_anything_starts(parse_flags, capsys, flags, message):
    with pytest.raises(SystemExit) as exc:
        parse_flags(*flags)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_binary_only_estimator_rejects_max_reward_file(parse_flags, capsys, monkeypatch):
    flags = ["--algo.advantage.estimator", "rspo_pass", "--rspo.k", "2", "--rollout.n_samples_per_prompt", "8",
             "--reward.remote_url", REWARD_FILE]
    monkeypatch.setenv("RSPO_REWARD", "max")
    with pytest.raises(SystemExit):
        parse_flags(*flags)
    assert "binary" in capsys.readouterr().err
    monkeypatch.setenv("RSPO_REWARD", "pass")
    assert parse_flags(*flags).rspo.k == 2
    monkeypatch.setenv("RSPO_REWARD", "max")
    flags[1] = "rspo_max"  # the Max@k estimator takes the length-penalised reward
    assert parse_flags(*flags).algo.advantage.estimator == "rspo_max"


def test_ray_init_kwargs(parse_flags, tmp_path):
    ns = parse_flags("--algo.advantage.estimator", "rspo_pass", "--rspo.k", "2", "--rollout.n_samples_per_prompt",
                     "8", "--rspo.ray_temp_dir", str(tmp_path / "ray"), "--train.async_enable",
                     "--rollout.max_new_tokens", "512", hierarchical=False)
    kwargs = launch.ray_init_kwargs(ns, environ={"RSPO_REWARD": "max"})
    assert kwargs["address"] == "local" and kwargs["_temp_dir"] == str(tmp_path / "ray")
    runtime_env = kwargs["runtime_env"]
    assert runtime_env["worker_process_setup_hook"] == "rspo_patch.openrlhf.hooks.setup"
    env = runtime_env["env_vars"]
    assert env["RSPO_REWARD"] == "max" and env["RSPO_MAX_NEW_TOKENS"] == "512"
    assert env["RSPO_TOKENIZER"] == "dummy-model" and env["NCCL_DEBUG"] == "WARN"
    assert "RSPO_GRADE_FALLBACK" not in env and "RSPO_GRADE_TIMEOUT" not in env  # unset: the grader's defaults
    graded = launch.ray_init_kwargs(ns, environ={"RSPO_GRADE_FALLBACK": "last_number", "RSPO_GRADE_TIMEOUT": "2.5"})
    assert graded["runtime_env"]["env_vars"]["RSPO_GRADE_FALLBACK"] == "last_number"  # the train rule's grader block
    assert graded["runtime_env"]["env_vars"]["RSPO_GRADE_TIMEOUT"] == "2.5"

    sync = parse_flags("--algo.advantage.estimator", "rspo_pass", "--rspo.k", "2", "--rollout.n_samples_per_prompt",
                       "8", hierarchical=False)
    kwargs = launch.ray_init_kwargs(sync, environ={})
    assert "address" not in kwargs and "worker_process_setup_hook" not in kwargs["runtime_env"]


def test_install_trainer_reaches_openrlhf_train_import():
    """OpenRLHF's train() does `from openrlhf.trainer.ppo_trainer import PPOTrainer` at call time."""
    from rspo_patch.openrlhf.trainer import (
        STOCK_PPO_TRAINER,
        RSPOPPOTrainer,
        install_trainer,
        uninstall_trainer,
    )

    install_trainer()
    try:
        from openrlhf.trainer.ppo_trainer import PPOTrainer

        assert PPOTrainer is RSPOPPOTrainer
        assert issubclass(RSPOPPOTrainer.__ray_actor_class__, STOCK_PPO_TRAINER.__ray_actor_class__)
    finally:
        uninstall_trainer()
    from openrlhf.trainer.ppo_trainer import PPOTrainer

    assert PPOTrainer is STOCK_PPO_TRAINER


def test_version_guard():
    assert check_openrlhf_version() == "0.11.2"
    for other in ("0.11.0", "0.11.3", "0.10.2"):
        with pytest.raises(OpenRLHFVersionError, match=other):
            check_openrlhf_version(other)


def test_warnings_for_settings_that_change_the_estimator(parse_flags):
    with pytest.warns(UserWarning, match="breaks the unbiasedness of rspo_pass"):
        parse_flags("--algo.advantage.estimator", "rspo_pass", "--rspo.k", "2", "--rollout.n_samples_per_prompt", "8",
                    "--actor.loss_agg_mode", "seq-mean-token-mean")
    with pytest.warns(UserWarning, match="does not depend on k"):
        parse_flags("--algo.advantage.estimator", "grpo", "--rspo.k", "4", "--rollout.n_samples_per_prompt", "8")


# ------------------------------------------------------------------------------------------------- --rspo.template


def test_template_flag_renders_the_evaluation_prompt(parse_flags):
    from rspo_core.prompts import format_prompt

    ns = parse_flags("--algo.advantage.estimator", "rspo_pass", "--rspo.k", "4", "--rollout.n_samples_per_prompt",
                     "8", "--rspo.template", "qwen_math_cot", hierarchical=False)
    template = getattr(ns, "data.input_template")
    assert template.format("What is 1+1?") == format_prompt("What is 1+1?", "qwen_math_cot")
    # built-in estimators take it too (the template is not an estimator setting)
    ns = parse_flags("--algo.advantage.estimator", "group_norm", "--rollout.n_samples_per_prompt", "8",
                     "--rspo.template", "plain", hierarchical=False)
    assert getattr(ns, "data.input_template").format("3+4") == "3+4="


@pytest.mark.parametrize("name", ["chat", "chat_answer"])
def test_chat_templates_keep_our_system_message(tmp_path, name):
    """OpenRLHF's --data.apply_chat_template wraps the question as the only (user) message; --rspo.template renders
    the tokenizer's chat template WITH the system message evaluation uses, from the actor's tokenizer."""
    import argparse

    from transformers import PreTrainedTokenizerFast
    from tokenizers import Tokenizer, models

    from rspo_core.prompts import CHAT_TEMPLATES, format_prompt

    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"<unk>": 0}, unk_token="<unk>")))
    tok.chat_template = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
                         "{% if add_generation_prompt %}<|assistant|>{% endif %}")
    tok.save_pretrained(tmp_path)
    ns = argparse.Namespace(**{"rspo.template": name, "actor.model_name_or_path": str(tmp_path),
                               "data.input_template": None, "data.apply_chat_template": False})
    launch.apply_template(ns)
    rendered = getattr(ns, "data.input_template").format("7*8")
    assert rendered == format_prompt("7*8", name, tok)
    assert rendered == f"<|system|>{CHAT_TEMPLATES[name]}\n<|user|>7*8\n<|assistant|>"


@pytest.mark.parametrize("extra, message", [
    (["--data.input_template", "{}="], "--rspo.template qwen_math_cot renders the prompt itself; drop "
                                       "--data.input_template"),
    (["--data.apply_chat_template"], "drop --data.apply_chat_template"),
])
def test_template_conflicts_are_rejected(parse_flags, capsys, extra, message):
    with pytest.raises(SystemExit) as err:
        parse_flags("--algo.advantage.estimator", "pg", "--rollout.n_samples_per_prompt", "4",
                    "--rspo.template", "qwen_math_cot", *extra)
    assert err.value.code == 2
    assert message in capsys.readouterr().err


def test_unknown_template_is_an_argparse_error(parse_flags, capsys):
    with pytest.raises(SystemExit):
        parse_flags("--algo.advantage.estimator", "pg", "--rollout.n_samples_per_prompt", "4",
                    "--rspo.template", "alpaca")
    assert "chat_answer" in capsys.readouterr().err


@pytest.mark.parametrize("flags, need", [
    # the tier's layout and the paper's: engines inside the actor's placement group
    (["--actor.num_gpus_per_node", "2", "--vllm.num_engines", "2", "--train.colocate_all"],
     {"actor placement group": 2}),
    # not colocated: every actor rank and every engine (x TP) a GPU of its own
    (["--actor.num_gpus_per_node", "2", "--vllm.num_engines", "2"],
     {"actor ranks": 2, "vLLM engines x tensor_parallel_size": 2}),
    (["--actor.num_gpus_per_node", "4", "--vllm.num_engines", "2", "--vllm.tensor_parallel_size", "2",
      "--algo.kl.init_coef", "0.01", "--ref.num_gpus_per_node", "4"],
     {"actor ranks": 4, "reference ranks": 4, "vLLM engines x tensor_parallel_size": 4}),
    (["--actor.num_gpus_per_node", "4", "--vllm.num_engines", "4", "--train.colocate_actor_ref",
      "--algo.kl.init_coef", "0.01", "--ref.num_gpus_per_node", "4"],
     {"actor placement group": 4, "vLLM engines x tensor_parallel_size": 4}),
])
def test_required_gpus_follow_openrlhfs_placement(parse_flags, flags, need):
    ns = parse_flags("--algo.advantage.estimator", "rspo_pass", "--rspo.k", "2", "--rollout.n_samples_per_prompt", "4",
                     "--reward.remote_url", "reward.py", *flags, hierarchical=False)
    assert launch.required_gpus(ns) == need


def test_a_layout_larger_than_ray_is_one_line_not_a_silent_wait(parse_flags):
    """Measured before this check: 2 actor ranks and 2 engines without colocation on Ray's 2 GPUs printed nothing
    for minutes (Ray waits for resources forever)."""
    ns = parse_flags("--algo.advantage.estimator", "rspo_pass", "--rspo.k", "2", "--rollout.n_samples_per_prompt", "4",
                     "--reward.remote_url", "reward.py", "--actor.num_gpus_per_node", "2", "--vllm.num_engines", "2",
                     hierarchical=False)
    launch.check_gpus(ns, 4.0)
    with pytest.raises(ValueError) as err:
        launch.check_gpus(ns, 2.0)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("this run needs 4 GPUs = 2 (actor ranks) + 2 (vLLM engines x tensor_parallel_size), "
                              "but Ray has 2"), message
