"""Launch OpenRLHF 0.11.2's real PPO CLI with the RSPO estimators: ``python -m rspo_patch.openrlhf.launch <flags>``.

Every OpenRLHF flag works as in ``python -m openrlhf.cli.train_ppo_ray``; in addition

  --algo.advantage.estimator NAME   also accepts every name of rspo_patch.estimators (rspo_pass, rspo_max, pkpo_s, ...)
  --rspo.k K                        k of the estimator (k0 of the schedule); required when the estimator uses k
  --rspo.k_schedule KIND            constant (default) | linear | cosine: k decays from K to 1 over training
  --rspo.schedule_steps S           rollout steps the schedule spans (default: derived from the prompt set;
                                    required for non-constant schedules with --train.async_enable)
  --rspo.drop_zero_weight           remove exactly-zero-weight responses from the actor's update (experience.py)
  --rspo.hp KEY=VALUE ...           estimator hyperparameters (e.g. beta=2 for rs_grpo)
  --rspo.plugin MODULE_OR_FILE ...  users' estimator plugins (rspo_patch.estimators.plugins), loaded before parsing, so
                                    their names are --algo.advantage.estimator choices; exported to every Ray worker
                                    (RSPO_BENCH_PLUGINS, PYTHONPATH for modules that are not installed)
  --rspo.estimator_source SHA256    refuse to start if the plugin estimator's source digest differs (the workflow's
                                    fingerprint: an edited plugin never trains under the old plan)
  --rspo.max_abs_reward M           bound on |reward| used to size the default --reward.clip_range (default 1)
  --rspo.no_entropy_log             do not compute/log the policy entropy (saves the actor's entropy pass)
  --rspo.ray_temp_dir DIR           start a private local Ray: ray.init(address="local", _temp_dir=DIR) (Slurm jobs)
  --rspo.template NAME              prompt template of rspo_core.prompts (qwen_math_cot, chat, chat_answer, plain), the
                                    one evaluation uses: rendered (chat ones with the actor's tokenizer, system message
                                    included) into --data.input_template, so training and evaluation prompts agree

How: OpenRLHF builds its parser under ``if __name__ == "__main__"``, so the launcher wraps
``argparse.ArgumentParser.parse_args`` for the duration of the run. When OpenRLHF's parser (the one with the
``algo.advantage.estimator`` action) parses, the wrapper extends that action's ``choices``, adds the ``--rspo.*``
flags, parses, validates (ValueError -> argparse error, exit 2, before Ray or any model starts), fills defaults,
starts Ray and rebinds ``openrlhf.trainer.ppo_trainer.PPOTrainer`` to ``RSPOPPOTrainer``; then OpenRLHF's own
``__main__`` continues and calls ``train(args)``. The module runs via ``runpy.run_module(..., run_name="__main__")``.

Before Ray starts (``_prepare_run``), for every estimator (and right after it starts: ``check_gpus``, the GPUs the
layout asks Ray for against those Ray has, one line instead of a silent wait):
  * ``--data.max_samples`` is cut to whole rollout batches (``prepare_batches``; a partial last batch splits unevenly
    over the ranks and hangs them) and one full step is checked to split evenly (``batches.check_even_split``);
  * ``--ckpt.path`` is tied to this run (``prepare_checkpoints`` / ckpt.py): a checkpoint made with other settings,
    base weights, data or reward file, or a half-written one, is moved aside with the reason and the run starts fresh;
  * our trainer actor replaces OpenRLHF's (trainer.py): registry estimators, rollouts that stop on evaluation's stop
    tokens, rewards with the engine's truncation, at most ``--ckpt.max_num`` HF copies.

Defaults changed for registry estimators only when the user did not set them:
  --reward.clip_range   (-B, B), B = max(10, 2 * max(k, n) * max_abs_reward): OpenRLHF clamps the per-sample scalar
                        to (-10, 10) by default; RSPO / PKPO weights reach k * max|R| (2 k max|R| for differences of
                        signed rewards) and GRPO-style normalised weights reach ~sqrt(n).
  --actor.entropy_coef  0 (OpenRLHF computes and logs ``entropy_loss`` only when the coefficient is not None).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import runpy
import sys
import warnings
from pathlib import Path

from rspo_patch.openrlhf._version import check_openrlhf_version

OPENRLHF_CLI = "openrlhf.cli.train_ppo_ray"
ESTIMATOR_DEST = "algo.advantage.estimator"
CLIP_DEST = "reward.clip_range"
REWARD_FUNC_FILE = Path(__file__).with_name("reward_func.py")

# what OpenRLHF's own ray.init would set (train() skips its ray.init when Ray is already up)
_OPENRLHF_ENV_DEFAULTS = {
    "TOKENIZERS_PARALLELISM": "true",
    "NCCL_DEBUG": "WARN",
    "RAY_ENABLE_ZERO_COPY_TORCH_TENSORS": "1",
}


class _Unset:
    """Default marker for flags whose default the launcher resolves after parsing (argparse would convert a str)."""

    def __repr__(self) -> str:
        return "<unset>"


UNSET = _Unset()


class _ParsedOnly(Exception):
    """Raised by the parse-only wrapper to stop OpenRLHF's __main__ right after argument parsing."""

    def __init__(self, namespace):
        super().__init__("parsed")
        self.namespace = namespace


# ---------------------------------------------------------------------------------------------------------------------
# parser extension


def _estimator_action(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if action.dest == ESTIMATOR_DEST:
            return action
    return None


def _set_default(parser: argparse.ArgumentParser, dest: str, value) -> None:
    for action in parser._actions:
        if action.dest == dest:
            action.default = value
    parser.set_defaults(**{dest: value})


def build_parser_hook(parser: argparse.ArgumentParser) -> bool:
    """Extend OpenRLHF's PPO parser in place; return False (untouched) for any other parser.

    Adds every registry name to the ``--algo.advantage.estimator`` choices, the ``--rspo.*`` flags, and turns the
    defaults of ``--reward.clip_range`` / ``--actor.entropy_coef`` into "unset" markers resolved by ``finalize_args``.
    Idempotent.
    """
    from rspo_core.prompts import TEMPLATES
    from rspo_patch.estimators import ESTIMATORS, K_SCHEDULES

    action = _estimator_action(parser)
    if action is None:
        return False
    if getattr(parser, "_rspo_extended", False):
        return True
    builtin = list(action.choices or [])
    action.choices = builtin + [name for name in ESTIMATORS if name not in builtin]
    action.help = (action.help or "") + f" | RSPO registry: {', '.join(ESTIMATORS)}"
    _set_default(parser, CLIP_DEST, None)
    if any(a.dest == "actor.entropy_coef" for a in parser._actions):
        _set_default(parser, "actor.entropy_coef", UNSET)

    group = parser.add_argument_group("RSPO (rspo_patch.openrlhf)")
    group.add_argument("--rspo.k", type=int, default=None, help="k of the estimator (k0 of the schedule)")
    group.add_argument("--rspo.k_schedule", choices=list(K_SCHEDULES), default="constant", help="k schedule")
    group.add_argument("--rspo.schedule_steps", type=int, default=None, help="rollout steps the k schedule spans")
    group.add_argument("--rspo.drop_zero_weight", action="store_true", default=False,
                       help="remove exactly-zero-weight responses from the actor's update (no forward/backward)")
    group.add_argument("--rspo.hp", nargs="*", default=[], metavar="KEY=VALUE", help="estimator hyperparameters")
    group.add_argument("--rspo.plugin", nargs="*", default=[], metavar="MODULE_OR_FILE",
                       help="users' estimator plugins (loaded before parsing: see load_argv_plugins)")
    group.add_argument("--rspo.estimator_source", default=None, metavar="SHA256",
                       help="expected source digest of the plugin estimator")
    group.add_argument("--rspo.max_abs_reward", type=float, default=1.0,
                       help="bound on |reward| used to size the default --reward.clip_range")
    group.add_argument("--rspo.no_entropy_log", action="store_true", default=False,
                       help="keep OpenRLHF's default entropy_coef None: entropy neither computed nor logged")
    group.add_argument("--rspo.ray_temp_dir", type=str, default=None,
                       help='start a private Ray: ray.init(address="local", _temp_dir=DIR)')
    group.add_argument("--rspo.template", choices=list(TEMPLATES), default=None,
                       help="prompt template of rspo_core.prompts, rendered into --data.input_template")
    parser._rspo_extended = True
    return True


def _get(ns, dest, default=None):
    return getattr(ns, dest, default)


def infer_binary_rewards(ns, environ=None) -> bool | None:
    """Whether the training rewards are 0/1, when knowable from the flags: True / False / None (unknown).

    Non-binary: DAPO overlong penalty, a stop-properly coefficient other than 0/1, or our reward_func.py with
    RSPO_REWARD=max. Binary: our reward_func.py with RSPO_REWARD=pass (its default). Anything else: unknown.
    """
    environ = os.environ if environ is None else environ
    if _get(ns, "reward.overlong_buffer_len") is not None:
        return False
    coef = _get(ns, "reward.stop_properly_penalty_coef")
    if coef is not None and coef not in (0.0, 1.0):
        return False
    urls = _get(ns, "reward.remote_url")
    if isinstance(urls, str) and urls:
        first = urls.split(",")[0]
        if first.endswith(".py") and Path(first).name == REWARD_FUNC_FILE.name:
            kind = environ.get("RSPO_REWARD", "pass")
            return kind == "pass"
    return None


def default_clip_bound(k: int, n: int, max_abs_reward: float) -> float:
    """B for the default ``--reward.clip_range (-B, B)``: max(10, 2 * max(k, n) * max_abs_reward)."""
    return max(10.0, 2.0 * max(k, n) * float(max_abs_reward))


def apply_template(ns: argparse.Namespace) -> None:
    """``--rspo.template NAME`` -> ``--data.input_template``, in place (no-op without it).

    The pattern is ``rspo_core.prompts.str_format_template``: the exact prompt evaluation builds, with ``{}`` where
    OpenRLHF puts the question. Chat templates load the actor's tokenizer (``AutoTokenizer.from_pretrained``);
    OpenRLHF's own ``--data.apply_chat_template`` would drop our system message.
    ValueError if --data.input_template or --data.apply_chat_template is given too.
    """
    from rspo_core.prompts import CHAT_TEMPLATES, str_format_template

    name = _get(ns, "rspo.template")
    if name is None:
        return
    for flag in ("data.input_template", "data.apply_chat_template"):
        if _get(ns, flag):
            raise ValueError(f"--rspo.template {name} renders the prompt itself; drop --{flag} "
                             f"(got {_get(ns, flag)!r})")
    tokenizer = None
    if name in CHAT_TEMPLATES:
        path = _get(ns, "actor.model_name_or_path")
        if not path:
            raise ValueError(f"--rspo.template {name} needs --actor.model_name_or_path (its tokenizer's chat template)")
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(path)
    setattr(ns, "data.input_template", str_format_template(name, tokenizer))


def finalize_args(ns: argparse.Namespace, environ=None) -> argparse.Namespace:
    """Validate the RSPO flags against OpenRLHF's (flat, dotted) namespace and fill the unset defaults, in place.

    Raises ValueError naming the bad value: unknown estimator hyperparameters, missing k, k > n, k not dividing n
    (baseline), a binary-only estimator with a non-binary reward, a non-constant schedule in async mode without
    --rspo.schedule_steps, --rspo.* flags with a built-in estimator. Renders --rspo.template (``apply_template``).
    """
    from rspo_patch.estimators import check_estimator_args, get_estimator
    from rspo_patch.estimators.plugins import check_source
    from rspo_patch.openrlhf.experience import is_registry_estimator, parse_hyperparameters

    apply_template(ns)
    name = _get(ns, ESTIMATOR_DEST)
    n = _get(ns, "rollout.n_samples_per_prompt")
    k = _get(ns, "rspo.k")
    if not is_registry_estimator(name):
        given = [flag for flag, value in (("--rspo.k", k), ("--rspo.hp", _get(ns, "rspo.hp")),
                                          ("--rspo.drop_zero_weight", _get(ns, "rspo.drop_zero_weight")),
                                          ("--rspo.schedule_steps", _get(ns, "rspo.schedule_steps")))
                 if value]
        if _get(ns, "rspo.k_schedule", "constant") != "constant":
            given.append("--rspo.k_schedule")
        if given:
            raise ValueError(f"{', '.join(given)} apply to rspo_patch estimators only, not to the OpenRLHF "
                             f"built-in estimator {name!r}")
        if _get(ns, CLIP_DEST) is None:
            setattr(ns, CLIP_DEST, [-10.0, 10.0])  # OpenRLHF's default
        if _get(ns, "actor.entropy_coef") is UNSET:
            setattr(ns, "actor.entropy_coef", None)  # OpenRLHF's default
        return ns

    spec = get_estimator(name)
    if k is None:
        if spec.uses_k:
            raise ValueError(f"--rspo.k is required for estimator {name!r}")
        k = 1
        setattr(ns, "rspo.k", 1)
    if k < 1:
        raise ValueError(f"--rspo.k must be >= 1, got {k}")
    if not spec.uses_k and k != 1:
        warnings.warn(f"--rspo.k {k} has no effect: estimator {name!r} does not depend on k", stacklevel=2)
    if spec.uses_k and k > n:
        raise ValueError(f"--rspo.k {k} exceeds --rollout.n_samples_per_prompt {n}: k responses are drawn from n")
    hp = parse_hyperparameters(_get(ns, "rspo.hp"))
    check_source(name, _get(ns, "rspo.estimator_source"), "--rspo.estimator_source")
    setattr(ns, "rspo.estimator_source", spec.source_sha256)  # None for a built-in; fingerprinted only when set (ckpt.py)
    schedule = _get(ns, "rspo.k_schedule", "constant")
    check_estimator_args(name, n=n, k=k, binary_rewards=infer_binary_rewards(ns, environ), k_schedule=schedule, **hp)
    steps = _get(ns, "rspo.schedule_steps")
    if steps is not None and steps < 1:
        raise ValueError(f"--rspo.schedule_steps must be >= 1, got {steps}")
    if schedule != "constant" and _get(ns, "train.async_enable") and steps is None:
        raise ValueError(f"--rspo.k_schedule {schedule} with --train.async_enable needs --rspo.schedule_steps "
                         f"(the async training actor does not see the prompt set)")
    max_abs = _get(ns, "rspo.max_abs_reward", 1.0)
    if not max_abs > 0:
        raise ValueError(f"--rspo.max_abs_reward must be > 0, got {max_abs}")
    if _get(ns, CLIP_DEST) is None:
        bound = default_clip_bound(k, n, max_abs)
        setattr(ns, CLIP_DEST, [-bound, bound])
    if _get(ns, "actor.entropy_coef") is UNSET:
        # 0: computed and logged as entropy_loss, not optimised; None (OpenRLHF's default): neither
        setattr(ns, "actor.entropy_coef", None if _get(ns, "rspo.no_entropy_log") else 0.0)
    if _get(ns, "actor.loss_agg_mode", "token-mean") != "token-mean" and spec.unbiased_for(k):
        warnings.warn(f"--actor.loss_agg_mode {_get(ns, 'actor.loss_agg_mode')} re-weights each response by "
                      f"1/length, which breaks the unbiasedness of {name}; token-mean keeps it "
                      f"(see rspo_patch/openrlhf/experience.py)", stacklevel=2)
    return ns


# ---------------------------------------------------------------------------------------------------------------------
# parse_args wrapping


@contextlib.contextmanager
def patched_parse_args(after_parse=None):
    """Wrap ``argparse.ArgumentParser.parse_args`` while the block runs.

    For OpenRLHF's PPO parser: extend it, parse, ``finalize_args`` (ValueError -> ``parser.error``, exit 2), then call
    ``after_parse(namespace)`` if given. Other parsers are untouched.
    """
    original = argparse.ArgumentParser.parse_args

    def parse_args(self, args=None, namespace=None):
        if not build_parser_hook(self):
            return original(self, args, namespace)
        ns = original(self, args, namespace)
        try:
            finalize_args(ns)
        except ValueError as err:  # argparse's status 2, without the 200-line usage of OpenRLHF's parser
            self.exit(2, f"{self.prog}: error: {err}\n")
        if after_parse is not None:
            after_parse(ns)
        return ns

    argparse.ArgumentParser.parse_args = parse_args
    try:
        yield
    finally:
        argparse.ArgumentParser.parse_args = original


def _run_cli(argv: list[str]) -> None:
    saved = sys.argv[:]
    sys.argv = [OPENRLHF_CLI.replace(".", "/") + ".py", *argv]
    try:
        runpy.run_module(OPENRLHF_CLI, run_name="__main__", alter_sys=True)
    finally:
        sys.argv = saved


def load_argv_plugins(argv: list[str]) -> list:
    """Load the plugins named by ``--rspo.plugin`` in ``argv`` (and installed entry points, and RSPO_BENCH_PLUGINS)
    before OpenRLHF's parser is built: their names must be --algo.advantage.estimator choices. Exports them to this
    process's environment, which Ray's workers inherit (ray.init starts the local cluster from this process):
    RSPO_BENCH_PLUGINS, read by experience.py on import in each actor, and PYTHONPATH for module plugins that are not
    installed. A plugin that fails: SystemExit with its one line, before Ray or any model starts."""
    from rspo_patch.estimators.plugins import PLUGINS_ENV, PluginError, exported, import_dirs, load_plugins

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--rspo.plugin", nargs="*", default=[])
    specs = getattr(pre.parse_known_args(argv)[0], "rspo.plugin") or []
    try:
        plugins = load_plugins(specs)
    except PluginError as err:
        raise SystemExit(f"rspo_patch.openrlhf.launch: error: {err}") from None
    value = exported(plugins)
    if value:
        os.environ[PLUGINS_ENV] = value
    dirs = import_dirs(plugins)
    if dirs:
        os.environ["PYTHONPATH"] = os.pathsep.join([*dirs, *filter(None, [os.environ.get("PYTHONPATH")])])
    return plugins


def parse_args(argv: list[str], hierarchical: bool = False):
    """Parse ``argv`` with OpenRLHF's real PPO parser, extended and validated; start nothing.

    Runs ``openrlhf.cli.train_ppo_ray`` as ``__main__`` and stops it right after ``parse_args``. Returns the flat
    dotted namespace (``getattr(ns, "rspo.k")``), or OpenRLHF's nested one with ``hierarchical=True``.
    Bad flags exit with argparse's status 2 (SystemExit), as the real CLI would.
    """
    check_openrlhf_version()
    load_argv_plugins(list(argv))

    def stop(ns):
        raise _ParsedOnly(ns)

    try:
        with patched_parse_args(after_parse=stop):
            _run_cli(list(argv))
    except _ParsedOnly as parsed:
        ns = parsed.namespace
    else:  # pragma: no cover - OpenRLHF changed its __main__
        raise RuntimeError(f"{OPENRLHF_CLI} finished without parsing arguments")
    if hierarchical:
        from openrlhf.utils.config import hierarchize

        return hierarchize(ns)
    return ns


# ---------------------------------------------------------------------------------------------------------------------
# full rollout batches (rspo_patch.openrlhf.batches)


class _QuietStrategy:
    """What OpenRLHF's ``blending_datasets`` needs of a strategy: ``print``, ``is_rank_0`` and ``args.use_ms``."""

    def __init__(self, use_ms: bool = False):
        self.args = argparse.Namespace(use_ms=use_ms)

    def print(self, *args, **kwargs) -> None:
        pass

    @staticmethod
    def is_rank_0() -> bool:
        return False


def count_prompts(ns) -> int:
    """Prompts OpenRLHF will load: ``len(blending_datasets(...))`` with the same flags ``prepare_datasets`` uses."""
    from openrlhf.datasets.utils import blending_datasets

    if not _get(ns, "data.prompt_dataset"):
        raise ValueError("--data.prompt_dataset is not set: there is nothing to train on")
    data = blending_datasets(_get(ns, "data.prompt_dataset"), _get(ns, "data.prompt_probs"),
                             _QuietStrategy(bool(_get(ns, "use_ms", False))), _get(ns, "train.seed", 42),
                             max_count=_get(ns, "data.max_samples"), dataset_split=_get(ns, "data.prompt_split"))
    return min(len(data), int(_get(ns, "data.max_samples")))


def effective_ranks(ns) -> int:
    """Data-parallel actor ranks: num_nodes * num_gpus_per_node // ring_attn_size // tensor_parallel_size."""
    return (_get(ns, "actor.num_nodes", 1) * _get(ns, "actor.num_gpus_per_node", 1)
            // _get(ns, "ds.ring_attn_size", 1) // _get(ns, "ds.tensor_parallel_size", 1))


def prepare_batches(ns, num_prompts: int) -> int:
    """Make every rollout step full and evenly split over the ranks, in place; returns the prompts kept.

    Sets ``--data.max_samples`` to ``batches.full_batch_prompts`` (logged when prompts are dropped) and checks one full
    step with ``batches.check_even_split`` (ValueError naming the flags). Dynamic batching (OpenRLHF re-balances) and
    dynamic filtering (a step refills filtered prompts; the last one may be short) skip the split check.
    """
    from rspo_patch.openrlhf.batches import check_even_split, full_batch_prompts

    batch = _get(ns, "rollout.batch_size")
    kept = full_batch_prompts(num_prompts, batch, _get(ns, "data.max_samples"))
    if kept < num_prompts:
        print(f"[rspo launcher] {num_prompts} prompts, --rollout.batch_size {batch}: training on the first {kept} "
              f"({kept // batch} full rollout steps per episode; {num_prompts - kept} left out so no step is "
              f"partial, as verl's drop_last)", file=sys.stderr, flush=True)
    setattr(ns, "data.max_samples", kept)
    if _get(ns, "algo.dynamic_filtering_enable"):
        warnings.warn("--algo.dynamic_filtering_enable: the last rollout step of an episode may be partial and "
                      "split unevenly over the ranks", stacklevel=2)
    ranks, train_micro, train_batch = effective_ranks(ns), _get(ns, "train.micro_batch_size"), _get(ns, "train.batch_size")
    if _get(ns, "rspo.drop_zero_weight") and train_batch % (train_micro * ranks):
        raise ValueError(f"--rspo.drop_zero_weight keeps whole optimizer steps: --train.batch_size {train_batch} must "
                         f"be a multiple of --train.micro_batch_size {train_micro} x {ranks} data-parallel ranks")
    if not _get(ns, "train.dynamic_batch_enable"):
        check_even_split(batch * _get(ns, "rollout.n_samples_per_prompt"),
                         rollout_micro=_get(ns, "rollout.micro_batch_size"), ranks=ranks, train_micro=train_micro,
                         train_batch=train_batch)
    return kept


# ---------------------------------------------------------------------------------------------------------------------
# Ray start-up


def ray_init_kwargs(ns, environ=None) -> dict:
    """Keyword arguments for ``ray.init`` from the parsed flags (pure; see ``start_ray``).

    runtime_env.env_vars: OpenRLHF's defaults (TOKENIZERS_PARALLELISM, NCCL_DEBUG, RAY_ENABLE_ZERO_COPY_TORCH_TENSORS)
    plus what reward_func.py reads (RSPO_REWARD, RSPO_MAX_NEW_TOKENS, RSPO_TOKENIZER: default the actor model;
    RSPO_GRADE_FALLBACK, RSPO_GRADE_TIMEOUT when set).
    Async mode adds ``worker_process_setup_hook``; ``--rspo.ray_temp_dir`` adds ``address="local", _temp_dir``.
    """
    environ = os.environ if environ is None else environ
    env = {key: environ.get(key, value) for key, value in _OPENRLHF_ENV_DEFAULTS.items()}
    env["RSPO_REWARD"] = environ.get("RSPO_REWARD", "pass")
    max_new = _get(ns, "rollout.max_new_tokens")
    env["RSPO_MAX_NEW_TOKENS"] = environ.get("RSPO_MAX_NEW_TOKENS", str(max_new) if max_new else "")
    tokenizer = environ.get("RSPO_TOKENIZER", _get(ns, "actor.model_name_or_path") or "")
    env["RSPO_TOKENIZER"] = tokenizer
    for key in ("RSPO_GRADE_FALLBACK", "RSPO_GRADE_TIMEOUT"):  # the config's grader block (set by the train rule)
        env[key] = environ.get(key, "")
    env["RSPO_BENCH_PLUGINS"] = environ.get("RSPO_BENCH_PLUGINS", "")  # users' estimators (load_argv_plugins)
    env = {key: value for key, value in env.items() if value != ""}
    runtime_env: dict = {"env_vars": env}
    if _get(ns, "train.async_enable") and _get(ns, ESTIMATOR_DEST) is not None:
        from rspo_patch.openrlhf.experience import is_registry_estimator

        if is_registry_estimator(_get(ns, ESTIMATOR_DEST)):
            runtime_env["worker_process_setup_hook"] = "rspo_patch.openrlhf.hooks.setup"
    kwargs: dict = {"runtime_env": runtime_env}
    temp_dir = _get(ns, "rspo.ray_temp_dir")
    if temp_dir:
        kwargs["address"] = "local"
        kwargs["_temp_dir"] = str(Path(temp_dir).resolve())
    return kwargs


def start_ray(ns) -> None:
    """``ray.init`` with ``ray_init_kwargs`` unless Ray is already up (then OpenRLHF's train() reuses it)."""
    import ray

    if ray.is_initialized():
        return
    kwargs = ray_init_kwargs(ns)
    if "_temp_dir" in kwargs:
        Path(kwargs["_temp_dir"]).mkdir(parents=True, exist_ok=True)
    ray.init(**kwargs)


def required_gpus(ns) -> dict[str, int]:
    """GPUs OpenRLHF 0.11.2's ``train()`` asks Ray for, by group (``cli/train_ppo_ray.py``; pure): a placement group of
    actor.num_nodes x actor.num_gpus_per_node bundles when actor and reference (or everything: train.colocate_all) are
    colocated, the vLLM engines' own placement group (engines x tensor_parallel_size) unless colocate_all puts them
    in the actor's, and 1 GPU per rank of every group that has no placement group to share (actor, reference with
    algo.kl.init_coef > 0, critic, a reward model instead of --reward.remote_url)."""
    def ranks(role):
        return _get(ns, f"{role}.num_nodes", 1) * _get(ns, f"{role}.num_gpus_per_node", 1)

    colocate_all = bool(_get(ns, "train.colocate_all")) and not _get(ns, "train.async_enable")
    shared = bool(_get(ns, "train.colocate_actor_ref")) or bool(_get(ns, "train.colocate_all"))
    need: dict[str, int] = {}
    if shared:
        need["actor placement group"] = ranks("actor")
    else:
        need["actor ranks"] = ranks("actor")
        if (_get(ns, "algo.kl.init_coef") or 0) > 0:
            need["reference ranks"] = ranks("ref")
    engines = _get(ns, "vllm.num_engines") or 0
    if engines and not colocate_all:
        need["vLLM engines x tensor_parallel_size"] = engines * (_get(ns, "vllm.tensor_parallel_size") or 1)
    if _get(ns, "critic.model_name_or_path"):
        if _get(ns, "train.colocate_critic_reward"):
            need["critic placement group"] = ranks("critic")
        elif not _get(ns, "train.colocate_all"):
            need["critic ranks"] = ranks("critic")
    if not _get(ns, "reward.remote_url") and not _get(ns, "train.colocate_all") and not (
            _get(ns, "critic.model_name_or_path") and _get(ns, "train.colocate_critic_reward")):
        need["reward-model ranks"] = ranks("reward")
    return need


def check_gpus(ns, available: float) -> None:
    """ValueError (one line) when the run needs more GPUs than Ray has (``available``: ``ray.cluster_resources()``'s
    GPU count): Ray would otherwise wait for them forever, silently (measured: 2 actor ranks and 2 engines without
    colocation on 2 GPUs sat with no log line for minutes)."""
    need = required_gpus(ns)
    total = sum(need.values())
    if total > available:
        parts = " + ".join(f"{count} ({what})" for what, count in need.items())
        raise ValueError(f"this run needs {total} GPUs = {parts}, but Ray has {available:g}: Ray would wait for them "
                         f"forever; colocate (--train.colocate_all, as config/paper.yaml) or lower "
                         f"--actor.num_gpus_per_node / --vllm.num_engines")


def prepare_checkpoints(ns, environ=None) -> str:
    """``rspo_patch.openrlhf.ckpt.prepare_checkpoint_dir`` for ``--ckpt.path`` with this run's fingerprint (after
    ``prepare_batches``: the fingerprint includes the final ``--data.max_samples``); returns "fresh" or "resume"."""
    from rspo_patch.openrlhf.ckpt import prepare_checkpoint_dir, run_fingerprint

    environ = os.environ if environ is None else environ
    dp_ranks = effective_ranks(ns) if _get(ns, "ckpt.load_enable") else None  # no resume: any layout may start over
    state = prepare_checkpoint_dir(_get(ns, "ckpt.path"), run_fingerprint(ns, environ), _get(ns, "ckpt.max_num", 1),
                                   dp_ranks)
    if state == "resume" and not _get(ns, "ckpt.load_enable"):
        print(f"[rspo launcher] {_get(ns, 'ckpt.path')} holds a checkpoint of this run, but --ckpt.load_enable is "
              f"off: OpenRLHF starts from step 0", file=sys.stderr, flush=True)
    return state


def _prepare_run(ns) -> None:
    """After parsing, before OpenRLHF's train(): full batches, the checkpoint directory, Ray, our trainer actor.

    The trainer actor (sync mode) is installed for built-in estimators too: they get the same stop tokens, engine
    verdicts and HF-copy rotation (its experience maker hands built-in names to OpenRLHF's own code).
    """
    try:
        prepare_batches(ns, count_prompts(ns))
        prepare_checkpoints(ns)
    except ValueError as err:  # CheckpointLayoutError too: one line, before Ray or any model starts
        raise SystemExit(f"rspo_patch.openrlhf.launch: error: {err}") from None
    from rspo_patch.openrlhf.trainer import install_trainer

    start_ray(ns)
    import ray

    try:
        check_gpus(ns, ray.cluster_resources().get("GPU", 0.0))
    except ValueError as err:
        ray.shutdown()
        raise SystemExit(f"rspo_patch.openrlhf.launch: error: {err}") from None
    install_trainer()


def main(argv: list[str] | None = None) -> None:
    """Run OpenRLHF's PPO CLI with the RSPO extensions (see the module docstring)."""
    check_openrlhf_version()
    argv = sys.argv[1:] if argv is None else list(argv)
    load_argv_plugins(argv)
    with patched_parse_args(after_parse=_prepare_run):
        _run_cli(argv)


if __name__ == "__main__":
    main()
