"""Every training cell of config/paper.yaml through OpenRLHF 0.11.2's OWN batch-distribution code: equal micro-batch
counts on every rank at every rollout step (a rank with fewer micro-batches leaves the others waiting in an
all-reduce until the NCCL timeout).

For each train job of a dry run of config/paper.yaml the launcher flags are parsed by OpenRLHF's real parser (via
rspo_patch.openrlhf.launch), ``launch.prepare_batches`` sets ``--data.max_samples`` for the MATH train set
(analysis.datasets: 7,500 rows), and one episode is replayed with OpenRLHF's code:
``samples_generator._collect_prompt_batch`` draws the prompts of each step from a batch-1 prompt loader,
``RemoteExperienceMaker.split_rollout_samples`` cuts the step's P * n real ``Experience`` objects into rollout
micro-batches, ``RayActorGroup.async_run_method_batch`` chunks them over the ranks, each rank's
``BaseModelActor.execute_batch`` appends its chunk to a real ``NaiveReplayBuffer``, and a
``torch.utils.data.DataLoader(batch_size=train.micro_batch_size, drop_last=True)`` over that buffer (as
``ActorPPOTrainer.ppo_train``) gives the rank's micro-batch count. Only the Ray transport is replaced: ``ray.put``
returns its argument and a rank handle's ``execute_batch.remote`` calls the real method in-process.
"""

from __future__ import annotations

import copy
import shlex
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

pytest.importorskip("openrlhf", reason="openrlhf is not installed: `pip install --no-deps openrlhf==0.11.2` to run "
                    "the OpenRLHF plugin tier")

from openrlhf.trainer.ppo_utils.experience import Experience  # noqa: E402
from openrlhf.trainer.ppo_utils.experience_maker import RemoteExperienceMaker  # noqa: E402
from openrlhf.trainer.ppo_utils.replay_buffer import NaiveReplayBuffer  # noqa: E402
from openrlhf.trainer.ppo_utils.samples_generator import _collect_prompt_batch  # noqa: E402
from openrlhf.trainer.ray import launcher as ray_launcher  # noqa: E402

from analysis.datasets import BENCHMARKS  # noqa: E402
from rspo_patch.openrlhf import launch  # noqa: E402
from rspo_patch.openrlhf.batches import check_even_split  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
MATH_TRAIN_ROWS = BENCHMARKS["math_train"].expected_rows


@pytest.fixture(scope="module")
def paper_train_argvs():
    """cell -> launcher argv of its train job in a dry run of config/paper.yaml (the workflow's own commands)."""
    sys.path.insert(0, str(REPO / "tests" / "workflow"))
    try:
        from wf_helpers import dry_run
    finally:
        sys.path.remove(str(REPO / "tests" / "workflow"))
    out = {}
    for wildcards, cmd in dry_run(str(REPO / "config" / "paper.yaml")).commands["train"]:
        tail = cmd.split("rspo_patch.openrlhf.launch", 1)[1].split(" > ", 1)[0]
        out[wildcards["cell"]] = shlex.split(tail.replace("$(mktemp -d /tmp/ray-rspo.XXXXXX)", "/tmp/unused"))
    return out


@pytest.fixture(scope="module")
def paper_cells(paper_train_argvs):
    """cell -> flat namespace of its train command, parsed once by OpenRLHF's parser via the launcher."""
    return {cell: launch.parse_args(argv, hierarchical=False) for cell, argv in sorted(paper_train_argvs.items())}


# ------------------------------------------------------------------------------------------- OpenRLHF's own code


class _Rank:
    """One DP actor: OpenRLHF's execute_batch feeding OpenRLHF's NaiveReplayBuffer.append (``PolicyModelActor.append``
    does exactly ``self.trainer.replay_buffer.append(experience)``)."""

    def __init__(self, train_micro: int):
        self.strategy = SimpleNamespace(is_rank_0=lambda: False)
        buffer = object.__new__(NaiveReplayBuffer)  # __init__ only adds torch.cuda.current_device() as target device
        buffer.sample_batch_size, buffer.limit, buffer.cpu_offload = train_micro, 0, False
        buffer.packing_samples, buffer.dynamic_batch, buffer.items = False, False, []
        self.replay_buffer = buffer

    def append(self, experience):
        self.replay_buffer.append(experience)

    def micro_batches(self) -> int:
        """Micro-batches ``ActorPPOTrainer.ppo_train`` iterates: its DataLoader over the replay buffer."""
        loader = torch.utils.data.DataLoader(self.replay_buffer, batch_size=self.replay_buffer.sample_batch_size,
                                             shuffle=False, drop_last=True, collate_fn=self.replay_buffer.collate_fn)
        return len(loader)


class _Handle:
    def __init__(self, rank: _Rank):
        method = ray_launcher.BaseModelActor.execute_batch
        self.execute_batch = SimpleNamespace(remote=lambda *args: method(rank, *args))


def _rollout_samples(num_prompts: int, n: int) -> list:
    """P * n single-response Experiences shaped like ``SamplesGenerator._process_response_into_experience``'s."""
    samples = []
    for i in range(num_prompts * n):
        length = 3 + i % 5
        samples.append(Experience(
            sequences=torch.arange(1, length + 1).unsqueeze(0),
            attention_mask=torch.ones(1, length, dtype=torch.long),
            action_mask=torch.ones(1, length - 1, dtype=torch.long),
            rewards=torch.tensor([float(i % 2)]), response_length=torch.tensor([length - 2]),
            truncated=torch.tensor([False]), total_length=torch.tensor([float(length)]),
            prompts=[f"p{i // n}"], labels=["1"], info={"reward": torch.tensor([float(i % 2)])},
        ))
    return samples


def micro_batches_per_rank(args, num_prompts: int, monkeypatch) -> list[int]:
    """One rollout step of ``num_prompts`` prompts through OpenRLHF's distribution code; micro-batches per rank."""
    maker = object.__new__(RemoteExperienceMaker)
    maker.args, maker.tokenizer = args, SimpleNamespace(pad_token_id=0)
    experiences = maker.split_rollout_samples(_rollout_samples(num_prompts, args.rollout.n_samples_per_prompt))
    return distribute(args, experiences, monkeypatch)


def distribute(args, experiences, monkeypatch) -> list[int]:
    """``experiences`` (what the experience maker returns) to the ranks as ``train_step`` appends them; micro-batches
    per rank."""
    ranks = [_Rank(args.train.micro_batch_size) for _ in range(args.actor.num_nodes * args.actor.num_gpus_per_node)]
    group = object.__new__(ray_launcher.RayActorGroup)
    group._actor_handlers = [_Handle(rank) for rank in ranks]
    group.duplicate_actors = args.ds.ring_attn_size * args.ds.tensor_parallel_size
    monkeypatch.setattr(ray_launcher.ray, "put", lambda value: value)
    group.async_run_method_batch(method_name="append", experience=experiences)
    return [rank.micro_batches() for rank in ranks]


def episode_step_prompts(num_prompts: int, batch: int) -> list[int]:
    """Prompts of each rollout step of one episode: ``_collect_prompt_batch`` over a batch-1 prompt loader (what
    ``prepare_datasets`` builds) until it is exhausted, as ``PPOTrainer.fit`` / ``SamplesGenerator`` loop."""
    loader = iter([(["math"], [f"q{i}"], ["1"], [None]) for i in range(num_prompts)])
    steps = []
    while True:
        prompts, _, _, exhausted = _collect_prompt_batch(loader, batch)
        if prompts:
            steps.append(len(prompts))
        if exhausted:
            return steps


def _distribution_ok(args, num_prompts, monkeypatch, cache) -> tuple[bool, list]:
    bad = []
    for step, prompts in enumerate(episode_step_prompts(num_prompts, args.rollout.batch_size)):
        key = (prompts, args.rollout.n_samples_per_prompt, args.rollout.micro_batch_size, args.train.micro_batch_size,
               args.actor.num_gpus_per_node * args.actor.num_nodes)
        if key not in cache:
            cache[key] = micro_batches_per_rank(args, prompts, monkeypatch)
        if len(set(cache[key])) != 1:
            bad.append((step, prompts, cache[key]))
    return not bad, bad


# ------------------------------------------------------------------------------------------------------------ tests


def test_every_paper_cell_runs_equal_micro_batches_on_every_rank(paper_cells, monkeypatch):
    assert len(paper_cells) == 32  # 25 cells on the 1.5B model + 7 on the 7B one (config/paper.yaml)
    cache: dict = {}
    for cell, flat in paper_cells.items():
        flat = copy.copy(flat)
        kept = launch.prepare_batches(flat, MATH_TRAIN_ROWS)
        assert getattr(flat, "data.max_samples") == kept
        from openrlhf.utils.config import hierarchize

        args = hierarchize(flat)
        ok, bad = _distribution_ok(args, kept, monkeypatch, cache)
        assert ok, f"{cell}: (step, prompts, micro-batches per rank) {bad}"
        # every step is a full rollout batch, and a whole number of optimizer steps per rank
        steps = episode_step_prompts(kept, args.rollout.batch_size)
        assert set(steps) == {args.rollout.batch_size} and len(steps) == MATH_TRAIN_ROWS // 128
        per_rank = cache[(128, args.rollout.n_samples_per_prompt, args.rollout.micro_batch_size,
                          args.train.micro_batch_size, 8)][0]
        gas = args.train.batch_size // args.train.micro_batch_size // 8
        assert per_rank % gas == 0, f"{cell}: {per_rank} micro-batches per rank, {gas} per optimizer step"


def test_control_the_full_prompt_set_hangs_at_epoch_end(paper_cells, monkeypatch):
    """Control: with all 7,500 prompts (what the launcher passed before) the last step (76 prompts) splits unevenly
    at n = 16 (ranks get 40 and 24 micro-batches), and evenly only at n = 32: the check above is not vacuous."""
    from openrlhf.utils.config import hierarchize

    cell16 = "model~qwen25_math_1p5b/algo~rspo_pass/k~4/n~16/reward~pass/seed~0"
    cell32 = "model~qwen25_math_1p5b/algo~rspo_pass/k~4/n~32/reward~pass/seed~0"
    args16 = hierarchize(copy.copy(paper_cells[cell16]))
    ok, bad = _distribution_ok(args16, MATH_TRAIN_ROWS, monkeypatch, {})
    assert not ok and bad == [(58, 76, [40] * 7 + [24])]
    args32 = hierarchize(copy.copy(paper_cells[cell32]))
    assert _distribution_ok(args32, MATH_TRAIN_ROWS, monkeypatch, {})[0]


@pytest.mark.parametrize("prompts, n, rollout_micro, ranks, train_micro, train_batch", [
    (128, 16, 16, 8, 4, 256), (128, 4, 16, 8, 4, 256), (76, 16, 16, 8, 4, 256), (76, 32, 16, 8, 4, 256),
    (3, 8, 2, 1, 1, 24), (10, 6, 4, 4, 2, 16), (7, 4, 3, 2, 1, 8),
])
def test_batches_arithmetic_matches_openrlhf(prompts, n, rollout_micro, ranks, train_micro, train_batch, monkeypatch):
    """rspo_patch.openrlhf.batches (used by the launcher's pre-flight check) agrees with OpenRLHF's own code."""
    from rspo_patch.openrlhf.batches import step_layout

    args = SimpleNamespace(
        rollout=SimpleNamespace(n_samples_per_prompt=n, micro_batch_size=rollout_micro, batch_size=prompts),
        train=SimpleNamespace(micro_batch_size=train_micro, batch_size=train_batch, dynamic_batch_enable=False),
        actor=SimpleNamespace(num_nodes=1, num_gpus_per_node=ranks),
        ds=SimpleNamespace(ring_attn_size=1, tensor_parallel_size=1))
    layout = step_layout(prompts * n, rollout_micro=rollout_micro, ranks=ranks, train_micro=train_micro,
                         train_batch=train_batch)
    assert list(layout.rank_micro) == micro_batches_per_rank(args, prompts, monkeypatch)
    even = len(set(layout.rank_samples)) == 1 and layout.rank_samples[0] % train_micro == 0
    if even:
        check_even_split(prompts * n, rollout_micro=rollout_micro, ranks=ranks, train_micro=train_micro,
                         train_batch=train_batch)
    else:
        with pytest.raises(ValueError, match="--rollout.micro_batch_size|--train.micro_batch_size"):
            check_even_split(prompts * n, rollout_micro=rollout_micro, ranks=ranks, train_micro=train_micro,
                             train_batch=train_batch)


def test_prepare_batches_cuts_to_full_batches_and_rejects_uneven_splits(parse_flags, capsys):
    ns = parse_flags("--algo.advantage.estimator", "pg", "--rollout.n_samples_per_prompt", "8", hierarchical=False)
    assert launch.prepare_batches(ns, 10) == 9 and getattr(ns, "data.max_samples") == 9  # batch 3: 3 steps
    assert "training on the first 9" in capsys.readouterr().err
    with pytest.raises(ValueError, match="fewer than one --rollout.batch_size"):
        launch.prepare_batches(parse_flags("--algo.advantage.estimator", "pg", hierarchical=False), 2)
    uneven = parse_flags("--algo.advantage.estimator", "pg", "--rollout.n_samples_per_prompt", "4",
                         "--actor.num_gpus_per_node", "4", "--rollout.micro_batch_size", "4", hierarchical=False)
    with pytest.raises(ValueError, match=r"reaches the 4 ranks as \[4, 4, 4, 0\] samples"):
        launch.prepare_batches(uneven, 30)
    dropping = parse_flags("--algo.advantage.estimator", "rspo_pass", "--rspo.k", "2", "--rollout.n_samples_per_prompt",
                           "8", "--actor.num_gpus_per_node", "5", "--rspo.drop_zero_weight", hierarchical=False)
    with pytest.raises(ValueError, match="--train.batch_size 24 must be a multiple of --train.micro_batch_size 1 x 5"):
        launch.prepare_batches(dropping, 30)


def test_count_prompts_reads_the_file_as_openrlhf_does(parse_flags, tmp_path):
    import json

    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps({"question": f"{i}+1", "answer": str(i + 1)}) + "\n" for i in range(11)))
    ns = parse_flags("--algo.advantage.estimator", "pg", "--data.prompt_dataset", str(path), hierarchical=False)
    assert launch.count_prompts(ns) == 11
    ns = parse_flags("--algo.advantage.estimator", "pg", "--data.prompt_dataset", str(path), "--data.max_samples",
                     "5", hierarchical=False)
    assert launch.count_prompts(ns) == 5


# ------------------------------------------------------------------------------------- k schedule length (item 6)


@pytest.mark.parametrize("rows, cut", [(10, False), (10, True), (12, False)])
def test_k_schedule_spans_the_steps_openrlhf_runs(parse_flags, tmp_path, rows, cut):
    """The k schedule's total = the rollout steps of OpenRLHF's real loop over the loader its real prepare_datasets
    builds (10 prompts, batch 3: 4 steps per episode, the last of 1 prompt; with the launcher's cut, 3 full ones),
    and agrees with OpenRLHF's max_steps (LR schedule) once every batch is full."""
    import json

    from openrlhf.trainer.ppo_trainer import prepare_datasets
    from openrlhf.utils.config import hierarchize
    from openrlhf.utils.deepspeed import DeepspeedStrategy

    from rspo_patch.charlm import build_char_tokenizer
    from rspo_patch.openrlhf.trainer import rollout_steps

    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps({"question": f"{i}+1=", "answer": str(i + 1)}) + "\n" for i in range(rows)))
    flat = parse_flags("--algo.advantage.estimator", "rspo_pass", "--rspo.k", "2", "--rollout.n_samples_per_prompt",
                       "8", "--rspo.k_schedule", "linear", "--train.num_episodes", "2", "--data.prompt_dataset",
                       str(path), "--data.input_key", "question", "--data.label_key", "answer", hierarchical=False)
    if cut:
        launch.prepare_batches(flat, launch.count_prompts(flat))
    args = hierarchize(flat)
    strategy = DeepspeedStrategy(micro_train_batch_size=1, train_batch_size=args.train.batch_size, args=args)
    loader, _, max_steps = prepare_datasets(strategy, build_char_tokenizer())
    loop_steps = 0
    for _ in range(args.train.num_episodes):  # PPOTrainer.fit: SamplesGenerator draws until the loader is exhausted
        it = iter(loader)
        while True:
            prompts, _, _, exhausted = _collect_prompt_batch(it, args.rollout.batch_size)
            loop_steps += bool(prompts)
            if exhausted:
                break
    assert rollout_steps(args, len(loader), max_steps) == loop_steps
    if cut or rows % args.rollout.batch_size == 0:
        updates = args.rollout.batch_size * args.rollout.n_samples_per_prompt // args.train.batch_size
        assert max_steps == loop_steps * updates


# ---------------------------------------------------------------- with --rspo.drop_zero_weight (item 7 meets item 1)


def test_every_paper_cell_stays_even_after_dropping_zero_weights(paper_cells, make_experiences, maker_factory,
                                                                 monkeypatch):
    """A full rollout step of each paper cell through the REAL RSPOExperienceMaker with --rspo.drop_zero_weight
    (synthetic rewards: per-prompt success rates spread over [0, 1]), then OpenRLHF's distribution: every rank runs
    the same number of micro-batches, a whole number of optimizer steps, and fewer than without dropping."""
    from openrlhf.utils.config import hierarchize

    from rspo_patch.openrlhf.experience import RSPOExperienceMaker
    from rspo_patch.openrlhf.trainer import rollout_steps

    seen = {}
    for cell, flat in paper_cells.items():
        flat = copy.copy(flat)
        assert getattr(flat, "rspo.drop_zero_weight"), f"{cell}: the paper removes zero-weight responses (§5.1)"
        args = hierarchize(flat)
        key = (args.algo.advantage.estimator, args.rspo.k, args.rollout.n_samples_per_prompt, "max" in cell)
        if key in seen:
            continue
        n, prompts = args.rollout.n_samples_per_prompt, args.rollout.batch_size
        gen = torch.Generator().manual_seed(0)
        rates = torch.linspace(0, 1, prompts).unsqueeze(1)
        correct = (torch.rand(prompts, n, generator=gen) < rates).float()
        rewards = correct * (1 - 0.5 * torch.rand(prompts, n, generator=gen)) if "reward~max" in cell else correct
        maker = maker_factory(RSPOExperienceMaker, args)
        maker.total_steps = rollout_steps(args, launch.prepare_batches(flat, MATH_TRAIN_ROWS))  # as the trainer sets it
        out = maker.compute_advantages_and_returns(
            make_experiences(rewards, n=n, micro_batch=args.rollout.micro_batch_size))
        per_rank = distribute(args, out, monkeypatch)
        gas = args.train.batch_size // args.train.micro_batch_size // 8
        full = prompts * n // args.train.micro_batch_size // 8
        assert len(set(per_rank)) == 1 and per_rank[0] % gas == 0 and per_rank[0] <= full, (cell, per_rank)
        seen[key] = (per_rank[0], full, maker.take_full_rollout()[1]["rollout/rspo_dropped_fraction"])
    assert len(seen) >= 20
    assert any(kept < full for kept, full, _ in seen.values())


def test_every_paper_cell_asks_ray_for_exactly_the_gpus_its_job_requests(paper_cells):
    """launch.required_gpus (what OpenRLHF's train() will ask Ray for) against the Slurm request of the same job
    (config/paper.yaml train_resources.gpus = 8): a mismatch either wastes GPUs or waits forever for missing ones."""
    import yaml

    cfg = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    gpus = {name: (spec.get("train_resources") or {}).get("gpus", cfg["train"].get("gpus"))
            for name, spec in cfg["models"].items()}
    for cell, ns in paper_cells.items():
        need = launch.required_gpus(ns)
        model = cell.split("/")[0].removeprefix("model~")
        assert sum(need.values()) == gpus[model] == 8, (cell, need)
        assert need == {"actor placement group": 8}, (cell, need)  # colocated: engines share the actor's bundles
