"""Test-only device plumbing that lets OpenRLHF 0.11.2's real Ray trainer run on a CPU-only machine.

Installed by this folder's ``sitecustomize`` when RSPO_CPU_SHIM=1 (only the tests/openrlhf_e2e tier sets it), in every
process of a run. Each patch maps a CUDA-only call to its CPU equivalent and is applied right after its target module
is first imported. None touches training, sampling, rewards or grading: the trainer, the experience maker, the RSPO
estimators, vLLM's sampler and DeepSpeed's optimizer run unchanged (DeepSpeed picks its CPU accelerator and gloo by
itself).

  ray.init                       declare logical GPUs (Ray cannot see one) so OpenRLHF's ``num_gpus=1`` actors and GPU
                                 placement-group bundles schedule; more logical CPUs than the 2 cores (RSPO_CPU_RAY_*)
  flash_attn                     imported at module level by openrlhf/models/ring_attn_utils.py; not installable on CPU:
                                 empty modules whose functions raise if called (packing is off in the tier)
  torch.cuda.{set_device,current_device,synchronize,empty_cache,current_stream}
                                 called unconditionally by OpenRLHF (deepspeed.py, ppo_actor.py, replay_buffer.py, ...)
  init_device_mesh("cuda", ...)  openrlhf/utils/deepspeed/deepspeed.py: the same mesh on "cpu"
  stateless_init_process_group   the trainer -> vLLM weight-sync group (vLLM's PyNcclCommunicator) -> a gloo group
                                 with the same ``broadcast(tensor, src, stream)``
  WorkerWrap.update_weight       allocates on device="cuda"; on vLLM's CPU backend a plain ``load_weights`` fails
                                 (linear weights are repacked and the originals dropped), so each sync is wrapped in
                                 vLLM's own layerwise reload (what its ``reload_weights`` does)

RSPO_CPU_NOSYNC is the negative control of the weight-sync test only: ``all`` or a comma-separated list of engine
indices (0-based, the order OpenRLHF created the engines in: engine i is rank i * tensor_parallel_size + 1 of the
weight-sync group); on those engines the broadcast still runs, the received weights are not loaded into vLLM.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
import types
from datetime import timedelta

from rspo_import_hooks import install_finder, when_imported

# env vars every Ray worker must see (the launcher's runtime_env lists its own; these are added to it)
PROPAGATED_ENV = ("RSPO_CPU_SHIM", "RSPO_CPU_PROBE_FILE", "RSPO_CPU_NOSYNC", "RSPO_CPU_HANG", "PYTHONPATH", "HF_HUB_OFFLINE",
                  "VLLM_CPU_KVCACHE_SPACE", "VLLM_CPU_NUM_OF_RESERVED_CPU", "OMP_NUM_THREADS")


def _patch_ray(ray) -> None:
    original = ray.init

    def init(*args, **kwargs):
        if not args and kwargs.get("address") in (None, "local") and "num_gpus" not in kwargs:
            kwargs["num_gpus"] = int(os.environ.get("RSPO_CPU_RAY_GPUS", "2"))
            kwargs.setdefault("num_cpus", int(os.environ.get("RSPO_CPU_RAY_CPUS", "8")))
            kwargs.setdefault("include_dashboard", False)
            runtime_env = dict(kwargs.get("runtime_env") or {})
            env_vars = dict(runtime_env.get("env_vars") or {})
            env_vars.update({k: os.environ[k] for k in PROPAGATED_ENV if k in os.environ})
            runtime_env["env_vars"] = env_vars
            kwargs["runtime_env"] = runtime_env
        return original(*args, **kwargs)

    ray.init = init


def _empty_module(name: str) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__spec__ = importlib.machinery.ModuleSpec(name, loader=None, is_package=True)  # transformers calls find_spec
    mod.__path__ = []
    sys.modules[name] = mod
    return mod


def _unavailable(qualname: str):
    def fn(*args, **kwargs):
        raise RuntimeError(f"{qualname} is not available on CPU (flash-attn is GPU-only)")

    return fn


def _stub_flash_attn() -> None:
    if importlib.util.find_spec("flash_attn") is not None:
        return
    for name in ("flash_attn", "flash_attn.bert_padding", "flash_attn.utils", "flash_attn.utils.distributed"):
        _empty_module(name)
    for attr in ("index_first_axis", "pad_input", "rearrange", "unpad_input"):
        setattr(sys.modules["flash_attn.bert_padding"], attr, _unavailable(f"flash_attn.bert_padding.{attr}"))
    sys.modules["flash_attn.utils.distributed"].all_gather = _unavailable("flash_attn.utils.distributed.all_gather")


class _CpuDevice(str):
    """``torch.cuda.current_device()`` on CPU: "cpu" wherever used as a device; formats as "0" inside the
    ``f"cuda:{torch.cuda.current_device()}"`` of replay_buffer.py (a device object that is never used on CPU)."""

    def __format__(self, spec):
        return "0"


def _patch_torch_cuda() -> None:
    import torch

    if torch.cuda.is_available():
        return
    torch.cuda.current_device = lambda: _CpuDevice("cpu")
    torch.cuda.set_device = lambda *a, **k: None
    torch.cuda.synchronize = lambda *a, **k: None
    torch.cuda.empty_cache = lambda *a, **k: None
    torch.cuda.current_stream = lambda *a, **k: None


def _patch_device_mesh(module) -> None:
    import torch

    original = module.init_device_mesh

    def init_device_mesh(device_type, *args, **kwargs):
        if device_type == "cuda" and not torch.cuda.is_available():
            device_type = "cpu"
        return original(device_type, *args, **kwargs)

    module.init_device_mesh = init_device_mesh


class GlooBroadcaster:
    """The ``broadcast(tensor, src, stream)`` of vLLM's PyNcclCommunicator over a gloo process group of its own
    (a TCPStore at the address and port OpenRLHF chose for the NCCL group)."""

    def __init__(self, master_address, master_port, rank, world_size):
        import torch.distributed as dist

        self.rank = rank
        self.store = dist.TCPStore(master_address, master_port, world_size, is_master=(rank == 0),
                                   timeout=timedelta(seconds=600))
        self.group = dist.ProcessGroupGloo(dist.PrefixStore("rspo_weight_sync", self.store), rank, world_size,
                                           timedelta(seconds=600))

    def broadcast(self, tensor, src=0, stream=None):
        import torch.distributed as dist

        opts = dist.BroadcastOptions()
        opts.rootRank = src
        opts.rootTensor = 0
        self.group.broadcast([tensor], opts).wait()


def gloo_stateless_init_process_group(master_address, master_port, rank, world_size, device):
    """Drop-in for openrlhf.utils.distributed_util.stateless_init_process_group (same signature)."""
    return GlooBroadcaster(master_address, master_port, rank, world_size)


def nosync(spec: str, group_rank: int, tensor_parallel_size: int) -> bool:
    """Whether the engine of weight-sync rank ``group_rank`` skips loading the received weights (RSPO_CPU_NOSYNC:
    "" none, "all", or engine indices "0,2")."""
    if not spec:
        return False
    if spec == "all":
        return True
    return (group_rank - 1) // tensor_parallel_size in {int(i) for i in spec.split(",")}


def _cpu_update_weight(self, name, dtype, shape, empty_cache=False):
    """WorkerWrap.update_weight of OpenRLHF 0.11.2 with the worker's device instead of "cuda", inside vLLM's layerwise
    reload: initialise before the first parameter of a sync, finalise (re-pack) after the last one, which OpenRLHF
    flags with ``empty_cache=True``."""
    import torch
    from vllm.model_executor.model_loader.reload import finalize_layerwise_reload, initialize_layerwise_reload

    assert dtype == self.model_config.dtype, f"mismatch dtype: src {dtype}, dst {self.model_config.dtype}"
    weight = torch.empty(shape, dtype=dtype, device=self.device)
    self._model_update_group.broadcast(weight, src=0, stream=None)
    model = self.model_runner.model
    if not getattr(self, "_rspo_cpu_reloading", False):
        initialize_layerwise_reload(model)
        self._rspo_cpu_reloading = True
    if not nosync(os.environ.get("RSPO_CPU_NOSYNC", ""), self._model_update_group.rank,
                  self.parallel_config.tensor_parallel_size):
        model.load_weights(weights=[(name, weight)])
    if empty_cache:
        finalize_layerwise_reload(model, self.model_config)
        self._rspo_cpu_reloading = False
    del weight


def install() -> None:
    """Register every patch (idempotent)."""
    if getattr(install, "done", False):
        return
    install.done = True
    install_finder()
    when_imported("ray")(_patch_ray)

    @when_imported("openrlhf")
    def _openrlhf(_module):
        _stub_flash_attn()
        _patch_torch_cuda()

    when_imported("openrlhf.utils.deepspeed.deepspeed")(_patch_device_mesh)
    when_imported("openrlhf.utils.distributed_util")(
        lambda m: setattr(m, "stateless_init_process_group", gloo_stateless_init_process_group))
    when_imported("openrlhf.trainer.ray.ppo_actor")(
        lambda m: setattr(m, "stateless_init_process_group", gloo_stateless_init_process_group))
    when_imported("openrlhf.trainer.ray.vllm_worker_wrap")(
        lambda m: setattr(m.WorkerWrap, "update_weight", _cpu_update_weight))
