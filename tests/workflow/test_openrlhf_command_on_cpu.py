"""The paper config's training commands parse with OpenRLHF 0.11.2's REAL argument parser (via our launcher).

The shell command of each train job of a config/paper.yaml dry run is taken apart and its launcher flags are parsed
by rspo_patch.openrlhf.launch.parse_args (OpenRLHF's own parser, extended with the RSPO flags and validated; nothing
starts). A misspelt flag, a bad value or an illegal estimator/k/n combination would exit with argparse's status 2.
Skipped where openrlhf is not installed; its GPU-only imports (flash_attn, vllm) are replaced by the same empty
stand-ins the OpenRLHF test tier uses (tests/openrlhf/conftest.py).
"""

from __future__ import annotations

import importlib.util
import shlex
from pathlib import Path

import pytest
from wf_helpers import REPO, dry_run

pytest.importorskip("openrlhf", reason="OpenRLHF tier: pip install --no-deps openrlhf==0.11.2")

CELLS = {
    "model~qwen25_math_1p5b/algo~pg/k~1/n~16/reward~pass/seed~0": ("pg", 1, "pass"),
    "model~qwen25_math_1p5b/algo~rspo_pass/k~4/n~16/reward~pass/seed~0": ("rspo_pass", 4, "pass"),
    "model~qwen25_math_1p5b/algo~baseline/k~8/n~16/reward~pass/seed~0": ("baseline", 8, "pass"),
    "model~qwen25_math_1p5b/algo~rspo_max/k~4/n~16/reward~max/seed~0": ("rspo_max", 4, "max"),
    "model~qwen25_math_1p5b/algo~rspo_pass/k~8-cosine/n~16/reward~pass/seed~0": ("rspo_pass", 8, "pass"),
    "model~qwen25_math_7b/algo~rspo_pass/k~2/n~16/reward~pass/seed~0": ("rspo_pass", 2, "pass"),
}


@pytest.fixture(scope="module")
def train_commands():
    """cell -> shell command of its train job in the (cached) dry run of config/paper.yaml."""
    return {wc["cell"]: cmd for wc, cmd in dry_run(str(REPO / "config" / "paper.yaml")).commands["train"]}


@pytest.fixture(scope="module")
def parse():
    spec = importlib.util.spec_from_file_location("_openrlhf_tier_conftest", REPO / "tests" / "openrlhf" / "conftest.py")
    stubs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stubs)
    stubs.install_cpu_stubs()
    from rspo_patch.openrlhf.launch import parse_args

    return parse_args


def _launcher_argv(cmd: str, tmp: Path) -> tuple[dict, list[str]]:
    """(exported environment, launcher argv) of one train shell command."""
    exports, rest = cmd.split(";", 1)
    env = dict(kv.split("=", 1) for kv in exports.replace("export", "").split())
    launch = rest.split("rspo_patch.openrlhf.launch", 1)[1].split(" > ", 1)[0]
    launch = launch.replace("$(mktemp -d /tmp/ray-rspo.XXXXXX)", str(tmp))
    return env, shlex.split(launch)


@pytest.mark.parametrize("cell", list(CELLS))
def test_paper_train_command_parses_with_openrlhf(cell, train_commands, parse, tmp_path, monkeypatch):
    algo, k, reward = CELLS[cell]
    env, argv = _launcher_argv(train_commands[cell], tmp_path)
    assert env["RSPO_REWARD"] == reward and env["RSPO_MAX_NEW_TOKENS"] == "3000"
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    ns = parse(argv, hierarchical=False)
    get = lambda key: getattr(ns, key)  # noqa: E731
    assert get("algo.advantage.estimator") == algo
    assert get("rspo.k") == k
    assert get("rspo.k_schedule") == ("cosine" if "cosine" in cell else "constant")
    assert get("rollout.n_samples_per_prompt") == 16
    # the paper's §5.1 settings
    assert get("rollout.batch_size") == 128 and get("train.batch_size") == 256 and get("train.num_episodes") == 10
    assert get("actor.adam.lr") == pytest.approx(3e-6) and get("actor.lr_warmup_ratio") == pytest.approx(0.05)
    assert get("rollout.max_new_tokens") == 3000 and get("algo.kl.init_coef") == 0.0
    assert tuple(get("reward.clip_range")) == (-100.0, 100.0)
    assert get("rspo.ray_temp_dir") == str(tmp_path)
    assert get("ckpt.load_enable") and get("ckpt.save_hf")
    assert get("ckpt.output_dir").endswith(f"{cell}/model")
    assert Path(get("reward.remote_url")).name == "reward_func.py"
    # the Qwen2.5-Math CoT template reaches OpenRLHF intact (it calls input_template.format(question))
    from rspo_core.prompts import format_prompt

    assert get("data.input_template").format("What is 1+1?") == format_prompt("What is 1+1?", "qwen_math_cot")
