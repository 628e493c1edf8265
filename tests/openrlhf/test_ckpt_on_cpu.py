"""Resume checkpoints on the directory layout OpenRLHF 0.11.2 + DeepSpeed 0.19.6 write (rspo_patch.openrlhf.ckpt).

The layout (read from ``PolicyModelActor.save_checkpoint``, ``DeepspeedStrategy.save_ckpt`` and DeepSpeed's
``save_checkpoint``): ``P/_actor/<tag>/mp_rank_00_model_states.pt`` (module + client_state),
``P/_actor/<tag>/bf16_zero_pp_rank_<r>_mp_rank_00_optim_states.pt``, ``P/_actor/<tag>/metric.json`` (written by
OpenRLHF's own ``_write_ckpt_metric`` here), ``P/_actor/latest`` (written last), ``P/<tag>_hf/`` (``--ckpt.save_hf``).
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

pytest.importorskip("openrlhf", reason="openrlhf is not installed: `pip install --no-deps openrlhf==0.11.2` to run "
                    "the OpenRLHF plugin tier")

from rspo_patch.openrlhf import ckpt, launch  # noqa: E402


def save_like_openrlhf(ckpt_path: Path, step: int, *, ranks: int = 1, write_latest: bool = True,
                       hf: bool = True, marker: bool = True) -> None:
    """One ``save_logs_and_checkpoints`` of OpenRLHF at ``global_step``: DeepSpeed's files (one ZeRO shard per rank;
    the flags of ``run`` have 1 rank), then ``latest`` (skipped: a job killed mid-save), OpenRLHF's metric.json, the
    HF copy, and (``marker``) our trainer's completion marker, which it writes after every save that returned from all
    ranks."""
    from openrlhf.utils.deepspeed import DeepspeedStrategy

    tag = f"global_step{step}"
    tag_dir = ckpt_path / "_actor" / tag
    tag_dir.mkdir(parents=True, exist_ok=True)
    client_state = {"episode": 0, "global_step": step, "total_consumed_prompts": step * 3,
                    "data_loader_state_dict": {}}
    torch.save({"module": {"w": torch.zeros(2)}, **client_state}, tag_dir / "mp_rank_00_model_states.pt")
    if not write_latest:  # killed after the module file, before the optimizer shards and `latest`
        return
    for rank in range(ranks):
        torch.save({"optimizer_state_dict": {}}, tag_dir / f"bf16_zero_pp_rank_{rank}_mp_rank_00_optim_states.pt")
    (ckpt_path / "_actor" / "latest").write_text(tag)
    strategy = object.__new__(DeepspeedStrategy)
    strategy._write_ckpt_metric(str(tag_dir), None, metric_key=None)
    if hf:
        hf_dir = ckpt_path / f"{tag}_hf"
        hf_dir.mkdir()
        (hf_dir / "config.json").write_text(json.dumps({"model_type": "llama"}))
        from safetensors.torch import save_file

        save_file({"w": torch.zeros(2)}, str(hf_dir / "model.safetensors"))
    if marker:
        ckpt.write_complete_marker(tag_dir)


@pytest.fixture
def run(tmp_path, parse_flags):
    """A base model folder, a prompt file and the parsed flags of a paper-like run writing to tmp/ckpt."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 8}))
    (model / "model.safetensors").write_bytes(b"\0" * 64)
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps({"question": f"{i}+1", "answer": str(i + 1)}) + "\n" for i in range(6)))

    def flags(*extra):
        return parse_flags("--algo.advantage.estimator", "rspo_pass", "--rspo.k", "4",
                           "--rollout.n_samples_per_prompt", "8", "--actor.model_name_or_path", str(model),
                           "--data.prompt_dataset", str(data), "--ckpt.path", str(tmp_path / "ckpt"),
                           "--ckpt.load_enable", "--ckpt.save_hf", "--ckpt.max_num", "2", *extra, base=True,
                           hierarchical=False)

    return SimpleNamespace(model=model, data=data, ckpt=tmp_path / "ckpt", flags=flags)


def _stale(path: Path) -> list[Path]:
    return sorted(path.parent.glob(path.name + ".stale-*"))


def test_same_run_resumes_and_keeps_max_num_hf_copies(run, capsys):
    ns = run.flags()
    assert launch.prepare_checkpoints(ns, environ={"RSPO_REWARD": "pass"}) == "fresh"
    for step in (20, 40, 60):
        save_like_openrlhf(run.ckpt, step)
    os.utime(run.ckpt / "global_step20_hf", (2e9, 2e9))  # newest mtime on the oldest step: rotation goes by step
    assert launch.prepare_checkpoints(run.flags(), environ={"RSPO_REWARD": "pass"}) == "resume"
    assert sorted(p.name for p in run.ckpt.glob("*_hf")) == ["global_step40_hf", "global_step60_hf"]
    assert (run.ckpt / "_actor" / "latest").read_text() == "global_step60" and not _stale(run.ckpt)


@pytest.mark.parametrize("change, expected", [
    (lambda run: run.flags("--rspo.k", "8"), "settings.rspo.k: 4 -> 8"),
    (lambda run: run.flags("--actor.adam.lr", "1e-5"), "settings.actor.adam.lr"),
])
def test_changed_settings_start_fresh_and_move_the_old_run_aside(run, capsys, change, expected):
    launch.prepare_checkpoints(run.flags(), environ={"RSPO_REWARD": "pass"})
    save_like_openrlhf(run.ckpt, 20)
    assert launch.prepare_checkpoints(change(run), environ={"RSPO_REWARD": "pass"}) == "fresh"
    err = capsys.readouterr().err
    assert "not resuming" in err and expected in err
    (stale,) = _stale(run.ckpt)
    assert (stale / "_actor" / "latest").is_file()  # the old run is intact beside the new one
    assert sorted(p.name for p in run.ckpt.iterdir()) == sorted([ckpt.RECORD, ckpt.FORMAT])


@pytest.mark.parametrize("what", ["model", "data", "reward"])
def test_changed_weights_data_or_reward_start_fresh(run, capsys, what):
    launch.prepare_checkpoints(run.flags(), environ={"RSPO_REWARD": "pass"})
    save_like_openrlhf(run.ckpt, 20)
    environ = {"RSPO_REWARD": "pass"}
    if what == "model":
        (run.model / "model.safetensors").write_bytes(b"\1" * 64)
    elif what == "data":
        with open(run.data, "a") as fh:
            fh.write(json.dumps({"question": "x", "answer": "y"}) + "\n")
    else:
        environ = {"RSPO_REWARD": "max"}
    assert launch.prepare_checkpoints(run.flags(), environ=environ) == "fresh"
    section = {"model": "model.model/model.safetensors", "data": "data.train.jsonl", "reward": "reward_env.RSPO_REWARD"}
    assert section[what] in capsys.readouterr().err
    assert len(_stale(run.ckpt)) == 1


def test_half_written_first_save_starts_fresh_instead_of_keyerror(run, capsys):
    """Killed after DeepSpeed created _actor/global_step20/ but before it wrote `latest`: DeepSpeed's load_checkpoint
    finds no `latest` and returns (None, None), OpenRLHF's actor reports states {}, and PPOTrainer.fit reads
    states["episode"]: KeyError on every retry. Here the directory is moved aside and OpenRLHF's own
    init_checkpoint_states (no _actor any more) starts at episode 0."""
    from openrlhf.trainer.ppo_trainer import BasePPOTrainer
    from openrlhf.utils.config import hierarchize

    launch.prepare_checkpoints(run.flags(), environ={"RSPO_REWARD": "pass"})
    save_like_openrlhf(run.ckpt, 20, write_latest=False)
    assert ckpt.checkpoint_problem(run.ckpt / "_actor").endswith("(DeepSpeed writes it last)")
    ns = run.flags()
    assert launch.prepare_checkpoints(ns, environ={"RSPO_REWARD": "pass"}) == "fresh"
    assert "no 'latest' file" in capsys.readouterr().err
    assert not (run.ckpt / "_actor").exists()
    trainer = SimpleNamespace(args=hierarchize(ns))
    assert BasePPOTrainer.init_checkpoint_states(trainer)["episode"] == 0


def test_latest_naming_a_missing_tag_and_unknown_directories(run, capsys):
    launch.prepare_checkpoints(run.flags(), environ={"RSPO_REWARD": "pass"})
    save_like_openrlhf(run.ckpt, 20)
    (run.ckpt / "_actor" / "latest").write_text("global_step40")
    assert "names 'global_step40', which does not exist" in ckpt.checkpoint_problem(run.ckpt / "_actor")
    # the complete global_step20 is still there: resumed from it, never from the tag `latest` names
    assert launch.prepare_checkpoints(run.flags(), environ={"RSPO_REWARD": "pass"}) == "resume"
    assert (run.ckpt / "_actor" / "latest").read_text() == "global_step20"
    assert "resuming from global_step20" in capsys.readouterr().err
    # with no complete tag left, the directory is moved aside and the run starts fresh
    (run.ckpt / "_actor" / "latest").write_text("global_step40")
    (run.ckpt / "_actor" / "global_step20" / ckpt.COMPLETE).unlink()
    assert launch.prepare_checkpoints(run.flags(), environ={"RSPO_REWARD": "pass"}) == "fresh"
    assert "names 'global_step40', which does not exist" in capsys.readouterr().err
    # a directory without our record (older version of the plugin, or by hand): its settings are unknown
    other = run.ckpt.parent / "other"
    save_like_openrlhf(other, 20)
    assert ckpt.prepare_checkpoint_dir(other, {"settings": {}}, 2) == "fresh"
    assert "its settings are unknown" in capsys.readouterr().err


def test_interrupted_attempt_without_a_save_does_not_mix_logs(run, capsys):
    launch.prepare_checkpoints(run.flags(), environ={"RSPO_REWARD": "pass"})
    (run.ckpt / "tensorboard").mkdir()
    (run.ckpt / "tensorboard" / "events.out.tfevents.1").write_bytes(b"x")
    assert launch.prepare_checkpoints(run.flags(), environ={"RSPO_REWARD": "pass"}) == "fresh"
    assert "nothing resumable was saved" in capsys.readouterr().err
    assert not (run.ckpt / "tensorboard").exists()


def test_prune_hf_copies_ignores_other_folders(tmp_path):
    for name in ("global_step5_hf", "global_step10_hf", "global_step100_hf", "best_global_step7_hf", "_actor"):
        (tmp_path / name).mkdir()
    gone = ckpt.prune_hf_copies(tmp_path, 2)
    assert sorted(p.name for p in gone) == ["global_step5_hf"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["_actor", "best_global_step7_hf", "global_step100_hf",
                                                          "global_step10_hf"]


# ---------------------------------------------------------------------------------------------------------------------
# several ranks: one ZeRO shard per data-parallel rank


def test_a_checkpoint_of_another_rank_count_is_refused_in_one_line_and_left_untouched(run):
    """DeepSpeed 0.19.6 raises ZeRORuntimeException inside every actor when the DP world size changed (after Ray,
    vLLM and the models started); the launcher refuses before any of that, naming both counts."""
    launch.prepare_checkpoints(run.flags(), environ={"RSPO_REWARD": "pass"})
    save_like_openrlhf(run.ckpt, 20, ranks=2, marker=True)
    before = sorted(p.relative_to(run.ckpt) for p in run.ckpt.rglob("*"))
    with pytest.raises(ckpt.CheckpointLayoutError) as err:
        launch.prepare_checkpoints(run.flags(), environ={"RSPO_REWARD": "pass"})
    message = str(err.value)
    assert "\n" not in message
    assert "shards of 2 data-parallel rank(s), this run has 1" in message and str(run.ckpt) in message
    assert sorted(p.relative_to(run.ckpt) for p in run.ckpt.rglob("*")) == before and not _stale(run.ckpt)
    # the same rank count resumes (2 ranks: one node of 2)
    assert launch.prepare_checkpoints(run.flags("--actor.num_gpus_per_node", "2"),
                                      environ={"RSPO_REWARD": "pass"}) == "fresh"  # other settings: moved aside
    assert len(_stale(run.ckpt)) == 1


@pytest.mark.skipif(any(importlib.util.find_spec(m) is None for m in ("vllm", "deepspeed", "ray")),
                    reason="the launcher's real CLI imports vllm, deepspeed and ray (bash .ci/install_openrlhf_cpu.sh)")
def test_the_launcher_refuses_another_rank_count_before_ray_starts(run, tmp_path):
    """The whole CLI: one line on stderr, exit status 1, no Ray (the run would have needed GPUs it cannot find)."""
    import subprocess
    import sys

    launch.prepare_checkpoints(run.flags(), environ={"RSPO_REWARD": "pass"})
    save_like_openrlhf(run.ckpt, 20, ranks=2, marker=True)
    flags = ["--rollout.batch_size", "3", "--rollout.micro_batch_size", "2", "--train.batch_size", "24",
             "--actor.num_gpus_per_node", "1", "--algo.kl.init_coef", "0", "--algo.advantage.estimator", "rspo_pass", "--rspo.k", "4",
             "--rollout.n_samples_per_prompt", "8", "--actor.model_name_or_path", str(run.model),
             "--data.prompt_dataset", str(run.data), "--ckpt.path", str(run.ckpt), "--ckpt.load_enable",
             "--ckpt.save_hf", "--ckpt.max_num", "2", "--data.max_samples", "3"]
    repo = Path(__file__).resolve().parents[2]
    shim = repo / "tests" / "openrlhf_e2e" / "cpu_shim"  # the tier's device plumbing: flash_attn's import, no GPUs
    env = {**os.environ, "RSPO_REWARD": "pass", "RSPO_CPU_SHIM": "1", "PYTHONPATH": f"{shim}{os.pathsep}{repo}"}
    proc = subprocess.run([sys.executable, "-m", "rspo_patch.openrlhf.launch", *flags], capture_output=True,
                          text=True, timeout=300, env=env, cwd=repo)
    assert proc.returncode == 1, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and "shards of 2 data-parallel rank(s), this run has 1" in errors[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "Ray instance" not in proc.stderr + proc.stdout  # Ray never started


def test_latest_naming_a_tag_other_ranks_had_not_finished_falls_back_to_the_last_complete_one(run, capsys):
    """DeepSpeed's rank 0 writes `latest` right after its own files: killed then, `latest` names a tag whose rank-1
    shard is missing. The tag has no completion marker (our trainer writes it once every rank returned), so the
    resume goes to the newest complete tag instead, and the older steps are kept."""
    launch.prepare_checkpoints(run.flags(), environ={"RSPO_REWARD": "pass"})
    save_like_openrlhf(run.ckpt, 20, marker=True)
    save_like_openrlhf(run.ckpt, 40, hf=False, marker=False)  # rank 0's files and `latest` only
    assert (run.ckpt / "_actor" / "latest").read_text() == "global_step40"
    assert "has no rspo_complete.json" in ckpt.checkpoint_problem(run.ckpt / "_actor")
    assert launch.prepare_checkpoints(run.flags(), environ={"RSPO_REWARD": "pass"}) == "resume"
    assert (run.ckpt / "_actor" / "latest").read_text() == "global_step20"
    assert "resuming from global_step20" in capsys.readouterr().err and not _stale(run.ckpt)


def test_a_marked_tag_with_a_truncated_shard_is_incomplete(run):
    launch.prepare_checkpoints(run.flags(), environ={"RSPO_REWARD": "pass"})
    save_like_openrlhf(run.ckpt, 20, marker=True)
    shard = run.ckpt / "_actor" / "global_step20" / "bf16_zero_pp_rank_0_mp_rank_00_optim_states.pt"
    shard.write_bytes(shard.read_bytes()[:10])
    assert "not the size" in ckpt.checkpoint_problem(run.ckpt / "_actor")
    assert ckpt.newest_complete_tag(run.ckpt / "_actor") is None


def test_a_first_save_interrupted_between_ranks_starts_fresh_not_refused(run, capsys):
    """A run started by this version (rspo_ckpt_format.json): a first tag with rank 0's shard only is incomplete,
    not a checkpoint of 1 rank."""
    launch.prepare_checkpoints(run.flags("--actor.num_gpus_per_node", "2"), environ={"RSPO_REWARD": "pass"})
    assert (run.ckpt / ckpt.FORMAT).is_file()
    save_like_openrlhf(run.ckpt, 20, ranks=1, marker=False)
    assert launch.prepare_checkpoints(run.flags("--actor.num_gpus_per_node", "2"),
                                      environ={"RSPO_REWARD": "pass"}) == "fresh"
    assert "has no rspo_complete.json" in capsys.readouterr().err
