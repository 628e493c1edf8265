"""Test tier for the OpenRLHF 0.11.2 plugin: runs OpenRLHF's real code on a CPU machine.

OpenRLHF imports flash_attn (models/ring_attn_utils) and vllm (trainer/ray/vllm_engine) at module level; neither
installs on a CPU-only machine. Only those modules are replaced by empty stand-ins with a ``__spec__`` (transformers
calls ``importlib.util.find_spec``); everything the plugin touches (Experience, RemoteExperienceMaker, compute_reward,
the PPOTrainer actor class, the CLI module) is OpenRLHF's real code. Upstream's own tests stub the same modules.

The whole tier is skipped when openrlhf is not installed (CI installs it with
``pip install --no-deps openrlhf==0.11.2``): each test module starts with ``pytest.importorskip("openrlhf", reason=...)``.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import types

import pytest
import torch

CPU_STUBBED_MODULES = (
    "flash_attn",
    "flash_attn.bert_padding",
    "flash_attn.utils",
    "flash_attn.utils.distributed",
    "vllm",
    "vllm.inputs",
    "vllm.utils",
)


def install_cpu_stubs() -> None:
    """Register empty modules for the GPU-only packages OpenRLHF imports at module level (idempotent).

    Only added where the real package is absent, so a GPU machine with flash_attn / vllm installed uses the real ones.
    """
    for name in CPU_STUBBED_MODULES:
        if name in sys.modules:
            continue
        root = name.split(".")[0]
        if root not in sys.modules and importlib.util.find_spec(root) is not None:
            continue  # the real package is installed
        if root in sys.modules and not getattr(sys.modules[root], "_rspo_cpu_stub", False):
            continue
        mod = types.ModuleType(name)
        mod.__spec__ = importlib.machinery.ModuleSpec(name, loader=None, is_package=True)
        mod.__path__ = []
        mod._rspo_cpu_stub = True
        sys.modules[name] = mod
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, mod)
    # names OpenRLHF imports from the stubbed modules (never called on the code paths these tests exercise)
    fa_bp = sys.modules.get("flash_attn.bert_padding")
    if getattr(fa_bp, "_rspo_cpu_stub", False):
        for attr in ("index_first_axis", "pad_input", "rearrange", "unpad_input"):
            setattr(fa_bp, attr, _unavailable(f"flash_attn.bert_padding.{attr}"))
    fa_dist = sys.modules.get("flash_attn.utils.distributed")
    if getattr(fa_dist, "_rspo_cpu_stub", False):
        fa_dist.all_gather = _unavailable("flash_attn.utils.distributed.all_gather")
    vllm = sys.modules.get("vllm")
    if getattr(vllm, "_rspo_cpu_stub", False):
        vllm.SamplingParams = _unavailable("vllm.SamplingParams")
        sys.modules["vllm.inputs"].TokensPrompt = _unavailable("vllm.inputs.TokensPrompt")
        sys.modules["vllm.utils"].random_uuid = _unavailable("vllm.utils.random_uuid")


def _unavailable(qualname: str):
    def fn(*args, **kwargs):
        raise RuntimeError(f"{qualname} is not available on this CPU test machine")

    fn.__qualname__ = qualname
    return fn


HAVE_OPENRLHF = importlib.util.find_spec("openrlhf") is not None

# OpenRLHF modules the tests use, imported once while the stand-ins are registered
OPENRLHF_MODULES = (
    "openrlhf.trainer.ppo_utils.experience_maker",
    "openrlhf.trainer.ppo_trainer",
    "openrlhf.trainer.ppo_trainer_async",
    "openrlhf.trainer.ray.ppo_actor",
    "openrlhf.trainer.ray.ppo_critic",
    "openrlhf.utils.agent",
    "openrlhf.models.loss",
)


def remove_cpu_stubs() -> None:
    """Unregister the stand-ins, so later test tiers of the same session never mistake them for real packages.

    OpenRLHF's modules keep the names they bound at import; the code paths under test import nothing more from them.
    """
    for name in CPU_STUBBED_MODULES:
        if getattr(sys.modules.get(name), "_rspo_cpu_stub", False):
            del sys.modules[name]


if HAVE_OPENRLHF:
    install_cpu_stubs()
    try:
        for _name in OPENRLHF_MODULES:
            importlib.import_module(_name)
    finally:
        remove_cpu_stubs()


# ---------------------------------------------------------------------------------------------------------------------
# shared fixtures

BASE_FLAGS = [
    "--actor.model_name_or_path", "dummy-model",
    "--rollout.batch_size", "3",
    "--rollout.micro_batch_size", "2",
    "--train.batch_size", "24",
    "--actor.num_gpus_per_node", "1",
    "--algo.kl.init_coef", "0",
]


@pytest.fixture(scope="session")
def parse_flags():
    """parse_flags(*flags, hierarchical=True) -> OpenRLHF's namespace built by its real parser via our launcher."""
    from rspo_patch.openrlhf.launch import parse_args

    def parse(*flags, hierarchical=True, base=True):
        return parse_args([*(BASE_FLAGS if base else []), *flags], hierarchical=hierarchical)

    return parse


def build_experiences(rewards, *, n, micro_batch, seed=0, kl_scale=0.0, max_len=7):
    """Real OpenRLHF Experience micro-batches for flat rollout-order ``rewards`` (P*n,), in a shuffled order.

    Each response i has a random length in [2, max_len] (right-padded action_mask), ``index`` holds its rollout
    position; the samples are permuted before being cut into micro-batches of ``micro_batch`` (the last one shorter),
    so regrouping must go through ``Experience.index``. kl is ``kl_scale`` * a fixed random pattern on response tokens.
    """
    from openrlhf.trainer.ppo_utils.experience import Experience

    rewards = torch.as_tensor(rewards, dtype=torch.float32).reshape(-1)
    total = rewards.numel()
    assert total % n == 0
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, max_len + 1, (total,), generator=gen)
    perm = torch.randperm(total, generator=gen).tolist()
    experiences = []
    for start in range(0, total, micro_batch):
        idx = perm[start:start + micro_batch]
        width = int(lengths[idx].max())
        mask = torch.zeros(len(idx), width, dtype=torch.bool)
        for row, j in enumerate(idx):
            mask[row, : int(lengths[j])] = True
        kl = kl_scale * torch.rand(len(idx), width, generator=gen) * mask
        seq = torch.randint(3, 50, (len(idx), width + 4), generator=gen)
        experiences.append(Experience(
            sequences=seq,
            attention_mask=torch.ones_like(seq),
            action_mask=mask,
            action_log_probs=torch.zeros(len(idx), width),
            kl=kl,
            rewards=rewards[idx].clone(),
            response_length=lengths[idx].float(),
            truncated=torch.zeros(len(idx), dtype=torch.bool),
            total_length=lengths[idx].float() + 4,
            index=list(idx),
            info={"reward": rewards[idx].clone()},
        ))
    return experiences


@pytest.fixture(scope="session")
def make_experiences():
    return build_experiences


def make_maker(cls, args, kl_coef=0.0):
    """An experience maker of class ``cls`` with OpenRLHF's real FixedKLController and no remote model groups
    (compute_advantages_and_returns uses none of them)."""
    from types import SimpleNamespace

    from openrlhf.trainer.ppo_utils.kl_controller import FixedKLController

    return cls(None, None, None, None, FixedKLController(kl_coef), SimpleNamespace(args=args), None)


@pytest.fixture(scope="session")
def maker_factory():
    return make_maker


@pytest.fixture(scope="session")
def cpu_stub_installer():
    """install_cpu_stubs, for Ray's worker_process_setup_hook in the Ray test (pickled by value)."""
    return install_cpu_stubs
