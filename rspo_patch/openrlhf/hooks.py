"""Ray ``worker_process_setup_hook`` for the async trainer: ``rspo_patch.openrlhf.hooks.setup``.

With ``--train.async_enable`` OpenRLHF builds its ``TrainingActor`` inside the ``PPOTrainerAsync`` actor, out of reach
of the driver. The launcher then starts Ray with
``runtime_env={"worker_process_setup_hook": "rspo_patch.openrlhf.hooks.setup"}``: every worker process runs ``setup()``
at start-up. The hook is lazy because it also runs in vLLM and model workers that never build a trainer: it only
registers an import hook (no OpenRLHF/torch import). If and when a worker imports ``openrlhf.trainer.ppo_trainer``,
``patch_ppo_trainer_module`` rebinds that module's ``RemoteExperienceMaker`` (which ``BasePPOTrainer.__init__`` looks up
at call time) to ``RSPOExperienceMaker``, wraps ``BasePPOTrainer.train_step`` so the k schedule sees the step,
``_compute_rollout_stats`` (statistics of the whole rollout under ``--rspo.drop_zero_weight``) and
``SamplesGenerator.__init__`` (rollouts stop on evaluation's stop tokens, sampling.py).
``rspo_patch`` must be installed in the workers' environment (``pip install -e .``): the hook runs before any
working_dir is unpacked.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys

TARGET_MODULE = "openrlhf.trainer.ppo_trainer"


def patch_ppo_trainer_module(module) -> None:
    """Route ``BasePPOTrainer`` (sync and async) to RSPOExperienceMaker in an imported ppo_trainer module.

    Idempotent: a second call rebinds the same class and leaves the train_step wrapper as it is.
    """
    from rspo_patch.openrlhf.experience import RSPOExperienceMaker, rollout_stats

    module.RemoteExperienceMaker = RSPOExperienceMaker
    base = module.BasePPOTrainer
    if getattr(base.train_step, "_rspo_wrapped", False):
        return
    original = base.train_step

    def train_step(self, rollout_samples, global_step):
        if isinstance(self.experience_maker, RSPOExperienceMaker):
            self.experience_maker.global_step = global_step
        return original(self, rollout_samples, global_step)

    train_step._rspo_wrapped = True
    train_step.__wrapped__ = original
    base.train_step = train_step

    original_stats = base._compute_rollout_stats

    def _compute_rollout_stats(self, experiences):
        """OpenRLHF's rollout statistics over the whole rollout, before --rspo.drop_zero_weight."""
        return rollout_stats(lambda exps: original_stats(self, exps), self.experience_maker, experiences)

    _compute_rollout_stats.__wrapped__ = original_stats
    base._compute_rollout_stats = _compute_rollout_stats

    from rspo_patch.openrlhf.sampling import patch_samples_generator_class

    patch_samples_generator_class(module.SamplesGenerator)  # the async rollout actor builds its own generator


class _PatchingLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        patch_ppo_trainer_module(module)


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Finds TARGET_MODULE with the normal path finder and patches it right after it executes."""

    def find_spec(self, fullname, path, target=None):
        if fullname != TARGET_MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _PatchingLoader(spec.loader)
        return spec


def setup() -> None:
    """The worker_process_setup_hook: patch now if OpenRLHF's trainer module is loaded, else on its import."""
    if TARGET_MODULE in sys.modules:
        patch_ppo_trainer_module(sys.modules[TARGET_MODULE])
        return
    if not any(isinstance(finder, _PatchOnImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _PatchOnImport())


def teardown() -> None:
    """Remove the import hook (tests)."""
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _PatchOnImport)]
