"""rspo_patch.verl against verl 0.9.1's real code: every check in one process (``import verl`` costs ~7 s).

Run by tests/verl/test_verl_on_cpu.py with the verl venv's python (.ci/install_verl_cpu.sh) and the checkout on
PYTHONPATH; prints one line ``RESULT <json>``: {"estimators": {name: [case, ...]}, "checks": {check: {"ok", "detail"}}}.

Batches are real ``verl.DataProto`` objects as verl's trainers build them: groups of one uid interleaved by a random
permutation (``_balance_batch`` reorders the batch), ragged response lengths with the outcome reward on the last
valid token (as verl's reward managers write ``rm_scores``), an int64 ``response_mask``, and V1 padding rows (uid
``pad<hex>``, all-zero mask and reward). They go through verl's own ``ray_trainer.compute_advantage`` dispatch, called
as the trainer calls it, with the algorithm config Hydra-composed from verl's ``ppo_trainer.yaml`` plus
``+algorithm.rspo.*`` overrides. The reference is computed here, independently of the adapter's grouping code: a
per-uid Python loop calling ``spec.fn`` on (1, n) rows, with ``baseline``'s groups in the documented
``block_permutation`` order (re-derived below from its formula).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import time
import traceback
import uuid
import warnings

T0 = time.perf_counter()
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402

import verl  # noqa: E402
from verl import DataProto  # noqa: E402
from verl.trainer.config import AlgoConfig  # noqa: E402
from verl.trainer.ppo import core_algos  # noqa: E402
from verl.trainer.ppo.ray_trainer import compute_advantage  # noqa: E402

import rspo_patch.verl as rv  # noqa: E402  (registers rspo_bench.*)
from rspo_patch.estimators import ESTIMATORS, check_estimator_args, get_estimator, register_estimator  # noqa: E402

# (label, group sizes, k, padding rows, reward kind for estimators that take any reward)
CASES = [
    ("equal n=8 k=4", [8, 8, 8], 4, 0, "uniform"),
    ("ragged 8,6,8,5 k=4 + 3 padding rows", [8, 6, 8, 5], 4, 3, "ties"),
    ("ragged 8,6,8,4 k=2 + 2 padding rows", [8, 6, 8, 4], 2, 2, "ties"),
    ("n=k=4", [4, 4, 4], 4, 0, "ties"),
]
L = 7  # response length (tokens)
CHECKS: dict[str, dict] = {}
FRESH: subprocess.Popen | None = None  # the fresh `import verl` process of registration()


def check(name: str, ok: bool, detail: str = "") -> None:
    CHECKS[name] = {"ok": bool(ok), "detail": detail}


def expect_error(name: str, fn, *needles: str) -> None:
    """``fn()`` raises a one-line ValueError containing every needle."""
    try:
        fn()
    except ValueError as e:
        msg = str(e)
        check(name, all(s in msg for s in needles) and "\n" not in msg, msg)
        return
    except Exception as e:  # noqa: BLE001
        check(name, False, f"{type(e).__name__}: {e}")
        return
    check(name, False, "no error raised")


# ---------------------------------------------------------------------------------------------------------------------
# verl's side: config, batch, dispatch


def verl_config(*overrides: str):
    """The full trainer config as verl's CLI composes it (ppo_trainer.yaml + Hydra overrides)."""
    return compose(config_name="ppo_trainer", overrides=list(overrides))


def make_batch(sizes, *, kind: str, pad_rows: int = 0, seed: int = 0):
    """(token_level_rewards float32 (bs, L), response_mask int64 (bs, L), uid object (bs,)), rows shuffled."""
    g = torch.Generator().manual_seed(seed)
    rnd = random.Random(seed)
    uids, scores = [], []
    for size in sizes:
        uids += [str(uuid.UUID(int=rnd.getrandbits(128), version=4))] * size
        if kind == "binary":
            scores.append(torch.randint(0, 2, (size,), generator=g).float())
        elif kind == "ties":
            scores.append(torch.randint(0, 5, (size,), generator=g).float() / 4)
        else:
            scores.append(torch.rand(size, generator=g))
    scores = torch.cat(scores)
    real = scores.numel()
    lengths = torch.randint(1, L + 1, (real,), generator=g)
    mask = (torch.arange(L)[None, :] < lengths[:, None]).long()
    tlr = torch.zeros(real, L)
    tlr[torch.arange(real), lengths - 1] = scores
    uids += [f"pad{uuid.UUID(int=rnd.getrandbits(128)).hex}"] * pad_rows
    mask = torch.cat([mask, torch.zeros(pad_rows, L, dtype=torch.long)])
    tlr = torch.cat([tlr, torch.zeros(pad_rows, L)])
    perm = torch.randperm(len(uids), generator=g)
    return tlr[perm], mask[perm], np.array(uids, dtype=object)[perm.numpy()]


def through_verl(cfg, tlr, mask, uids=None):
    """(advantages, returns) from verl's compute_advantage, called as the trainer calls it (ray_trainer.py:1667)."""
    non_tensors = {"uid": uids} if uids is not None else {}
    data = DataProto.from_dict(tensors={"token_level_rewards": tlr, "response_mask": mask}, non_tensors=non_tensors)
    out = compute_advantage(data, adv_estimator=cfg.algorithm.adv_estimator, gamma=cfg.algorithm.gamma,
                            lam=cfg.algorithm.lam, num_repeat=cfg.actor_rollout_ref.rollout.n,
                            norm_adv_by_std_in_grpo=cfg.algorithm.get("norm_adv_by_std_in_grpo", True),
                            config=cfg.algorithm)
    return out.batch["advantages"], out.batch["returns"]


# ---------------------------------------------------------------------------------------------------------------------
# the reference (no adapter code)


def documented_permutation(uid: str, n: int, seed: int) -> list[int]:
    """The formula of rspo_patch.verl.block_permutation's docstring."""
    s = int.from_bytes(hashlib.sha256(f"{seed}:{uid}".encode()).digest()[:8], "little")
    return np.random.default_rng(s).permutation(n).tolist()


def reference(name, tlr, mask, uids, k, hp=None, seed=0):
    """float32 (bs, L): per uid, the valid rows in batch order -> spec.fn on a (1, n) row -> times the mask."""
    spec = get_estimator(name)
    scores = tlr.sum(-1)
    valid = (mask.sum(-1) > 0).tolist()
    w = torch.zeros(len(uids))
    for u in dict.fromkeys(u for u, v in zip(uids, valid) if v):
        pos = [i for i in range(len(uids)) if uids[i] == u and valid[i]]
        if spec.k_divides_n:
            pos = [pos[j] for j in documented_permutation(u, len(pos), seed)]
        w[pos] = spec.fn(scores[pos][None, :], k=k, **(hp or {}))[0].float()
    return w[:, None] * mask.float()


def compare(adv, ret, ref, mask, uids) -> dict:
    diff = (adv.double() - ref.double()).abs().max().item() if adv.shape == ref.shape else float("inf")
    pad = torch.as_tensor(np.array([str(u).startswith("pad") for u in uids]))
    return {
        "exact": bool(adv.shape == ref.shape and torch.equal(adv, ref)),
        "max_abs_diff": diff,
        "max_abs_ref": ref.abs().max().item(),
        "layout": bool(adv.shape == mask.shape and ret.shape == mask.shape and adv.dtype == torch.float32
                       and torch.equal(adv, ret)),
        "masked_zero": bool((adv[mask == 0] == 0).all()),
        "padding_zero": bool((adv[pad] == 0).all()),
        "nonzero_responses": int((adv != 0).any(-1).sum()),
    }


# ---------------------------------------------------------------------------------------------------------------------
# the checks


def every_estimator() -> dict:
    """{name: [one result per CASES entry]}: skipped where the registry's metadata forbid a group size at that k.

    One Hydra compose per case (a compose costs ~0.3 s); ``algorithm.adv_estimator`` is then set per estimator, the
    plain string field that the command line's ``algorithm.adv_estimator=...`` sets."""
    out = {name: [] for name in ESTIMATORS}
    for i, (label, sizes, k, pad_rows, kind) in enumerate(CASES):
        cfg = verl_config(f"algorithm.adv_estimator={rv.PREFIX}pg", f"+algorithm.rspo.k={k}",
                          f"actor_rollout_ref.rollout.n={max(sizes)}")
        for name, spec in ESTIMATORS.items():
            reward_kind = "binary" if spec.binary_only else kind
            try:
                for n in sorted(set(sizes)):
                    check_estimator_args(name, n=n, k=k, binary_rewards=reward_kind == "binary")
            except ValueError as e:
                out[name].append({"case": label, "skipped": str(e)})
                continue
            cfg.algorithm.adv_estimator = rv.PREFIX + name
            tlr, mask, uids = make_batch(sizes, kind=reward_kind, pad_rows=pad_rows, seed=10 + i)
            adv, ret = through_verl(cfg, tlr, mask, uids)
            out[name].append({"case": label, **compare(adv, ret, reference(name, tlr, mask, uids, k), mask, uids)})
    return out


def hyperparameters() -> None:
    tlr, mask, uids = make_batch([6, 6, 6], kind="uniform", seed=2)
    cfg = verl_config("algorithm.adv_estimator=rspo_bench.rs_grpo", "+algorithm.rspo.k=2",
                      "+algorithm.rspo.hyperparameters.beta=0.5")
    adv, _ = through_verl(cfg, tlr, mask, uids)
    ref, ref_default = reference("rs_grpo", tlr, mask, uids, 2, {"beta": 0.5}), reference("rs_grpo", tlr, mask, uids, 2)
    check("rs_grpo: +algorithm.rspo.hyperparameters.beta=0.5 reaches the estimator",
          torch.equal(adv, ref) and not torch.allclose(adv, ref_default, atol=1e-3),
          f"max |adv - ref(beta=0.5)| {(adv - ref).abs().max():.3g}, "
          f"max |adv - ref(beta=2)| {(adv - ref_default).abs().max():.3g}")
    cfg = verl_config("algorithm.adv_estimator=rspo_bench.grpo_passk", "+algorithm.rspo.k=2",
                      "+algorithm.rspo.hyperparameters.norm_by_std=true", "+algorithm.rspo.hyperparameters.eps=1e-3")
    adv, _ = through_verl(cfg, tlr, mask, uids)
    ref = reference("grpo_passk", tlr, mask, uids, 2, {"norm_by_std": True, "eps": 1e-3})
    check("grpo_passk: boolean and float hyperparameters from Hydra (norm_by_std=true, eps=1e-3)",
          torch.equal(adv, ref) and not torch.equal(adv, reference("grpo_passk", tlr, mask, uids, 2)))
    expect_error("unknown hyperparameter: the registry's error, naming the allowed ones",
                 lambda: through_verl(verl_config("algorithm.adv_estimator=rspo_bench.rs_grpo", "+algorithm.rspo.k=2",
                                                  "+algorithm.rspo.hyperparameters.gamma=1"), tlr, mask, uids),
                 "gamma", "beta")


def errors() -> None:
    tlr, mask, uids = make_batch([8, 8], kind="binary", seed=3)
    no_k = verl_config("algorithm.adv_estimator=rspo_bench.rspo_max")
    expect_error("missing +algorithm.rspo.k: ValueError naming the flag",
                 lambda: through_verl(no_k, tlr, mask, uids), "rspo_bench.rspo_max", "+algorithm.rspo.k")
    fn = core_algos.get_adv_estimator_fn("rspo_bench.rspo_max")
    expect_error("AlgoConfig dataclass (cannot hold rspo): the same error",
                 lambda: fn(token_level_rewards=tlr, response_mask=mask, index=uids,
                            config=AlgoConfig(adv_estimator="rspo_bench.rspo_max")), "+algorithm.rspo.k")
    cfg = verl_config("algorithm.adv_estimator=rspo_bench.pg")
    adv, _ = through_verl(cfg, tlr, mask, uids)
    check("pg (uses_k=False) runs without +algorithm.rspo.k", torch.equal(adv, reference("pg", tlr, mask, uids, 1)))
    expect_error("unknown +algorithm.rspo key: ValueError naming it",
                 lambda: through_verl(verl_config("algorithm.adv_estimator=rspo_bench.rs_grpo",
                                                  "+algorithm.rspo.beta=0.5"), tlr, mask, uids),
                 "+algorithm.rspo.beta", "hyperparameters")
    small = make_batch([8, 3], kind="uniform", seed=4)
    expect_error("a uid group smaller than k: ValueError naming the group size",
                 lambda: through_verl(verl_config("algorithm.adv_estimator=rspo_bench.rspo_max",
                                                  "+algorithm.rspo.k=4"), *small), "of 3 responses", "k=4")
    ragged = make_batch([8, 6], kind="uniform", seed=5)
    expect_error("baseline with a group size k does not divide: ValueError",
                 lambda: through_verl(verl_config("algorithm.adv_estimator=rspo_bench.baseline",
                                                  "+algorithm.rspo.k=4"), *ragged), "of 6 responses", "divide")
    graded = make_batch([8, 8], kind="uniform", seed=6)
    expect_error("binary-only estimator with non-binary rewards: ValueError",
                 lambda: through_verl(verl_config("algorithm.adv_estimator=rspo_bench.rspo_pass",
                                                  "+algorithm.rspo.k=4"), *graded), "binary")
    expect_error("a batch without uid: ValueError",
                 lambda: through_verl(verl_config("algorithm.adv_estimator=rspo_bench.rspo_max",
                                                  "+algorithm.rspo.k=4"), tlr, mask), "uid")


def verl_builtins() -> None:
    """Our grpo_passk (norm_by_std=False, its default) against verl's own grpo_passk with norm_adv_by_std_in_grpo=false,
    on the same shuffled batch with padding rows: the same formula, so the same advantages, in verl's layout."""
    tlr, mask, uids = make_batch([8, 6, 8], kind="uniform", pad_rows=2, seed=11)
    cfg = verl_config("algorithm.adv_estimator=rspo_bench.grpo_passk", "+algorithm.rspo.k=2",
                      "algorithm.norm_adv_by_std_in_grpo=false")
    ours, _ = through_verl(cfg, tlr, mask, uids)
    cfg.algorithm.adv_estimator = "grpo_passk"
    theirs, _ = through_verl(cfg, tlr, mask, uids)
    check("rspo_bench.grpo_passk == verl's own grpo_passk (norm_adv_by_std_in_grpo=false)",
          torch.allclose(ours, theirs, rtol=0, atol=1e-6), f"max |diff| {(ours - theirs).abs().max():.3g}")


def baseline_blocks() -> None:
    """baseline's blocks are a uniform random partition of each group, whatever the batch order.

    2000 contiguous groups of n=8 (k=4) whose batch order is sorted by reward (the worst case of a length sort that
    tracks the reward), distinct rewards: two responses share a block iff their weights (k * block max) are equal.
    In batch order the two lowest would always share one; a uniform partition puts them together with probability
    (k-1)/(n-1) = 3/7 (standard error 0.011 here).
    """
    groups, n, k = 2000, 8, 4
    g = torch.Generator().manual_seed(7)
    scores = torch.sort(torch.rand(groups, n, generator=g), dim=1).values.reshape(-1)
    tlr = torch.zeros(groups * n, L)
    tlr[:, -1] = scores
    mask = torch.ones(groups * n, L, dtype=torch.long)
    rnd = random.Random(7)
    uids = np.repeat(np.array([str(uuid.UUID(int=rnd.getrandbits(128), version=4)) for _ in range(groups)],
                              dtype=object), n)
    runs = {}
    for seed in (0, 0, 1):
        cfg = verl_config("algorithm.adv_estimator=rspo_bench.baseline", f"+algorithm.rspo.k={k}",
                          f"+algorithm.rspo.seed={seed}")
        runs.setdefault(seed, []).append(through_verl(cfg, tlr, mask, uids)[0][:, 0].reshape(groups, n))
    w0, w1 = runs[0][0], runs[1][0]
    together = (w0[:, 0] == w0[:, 1]).double().mean().item()
    blocks_of_k = all(sorted(torch.unique(row, return_counts=True)[1].tolist()) == [k] * (n // k) for row in w0)
    check("baseline: the two lowest-reward rows share a block with frequency (k-1)/(n-1) = 3/7, not 1",
          abs(together - 3 / 7) < 0.05 and blocks_of_k, f"frequency {together:.4f}, every group {n // k} blocks of {k}")
    check("baseline: +algorithm.rspo.seed=0 twice gives the same blocks; seed=1 other blocks in ~34/35 groups",
          torch.equal(runs[0][0], runs[0][1]) and (w0 != w1).any(-1).double().mean().item() > 0.9,
          f"groups changed by the seed: {(w0 != w1).any(-1).double().mean().item():.3f}")
    small = make_batch([8, 8, 8], kind="uniform", seed=8)
    cfg = verl_config("algorithm.adv_estimator=rspo_bench.baseline", "+algorithm.rspo.k=4", "+algorithm.rspo.seed=1")
    adv, _ = through_verl(cfg, *small)
    check("baseline with +algorithm.rspo.seed=1: the registry's weights of the permuted rows, scattered back",
          torch.equal(adv, reference("baseline", *small, 4, seed=1)))


def registration() -> None:
    names = sorted(rv.PREFIX + n for n in ESTIMATORS)
    ours = {n: core_algos.ADV_ESTIMATOR_REGISTRY.get(n) for n in names}
    check("import registers every ESTIMATORS name as rspo_bench.<name>",
          sorted(rv.REGISTERED) == names and all(ours.values()), f"{len(names)} names")
    check("verl's own grpo / grpo_passk are untouched",
          all(core_algos.ADV_ESTIMATOR_REGISTRY[n].__module__ == "verl.trainer.ppo.core_algos"
              for n in ("grpo", "grpo_passk")))
    again = rv.register_all()
    check("register_all() again: idempotent (same functions, no error)",
          sorted(again) == names and all(core_algos.ADV_ESTIMATOR_REGISTRY[n] is f for n, f in ours.items()))

    @register_estimator("verl_toy_plugin", description="r - mean(r) (a plugin registered after import)",
                        unbiased=False, uses_k=False)
    def toy(rewards, *, k):
        return rewards - rewards.mean(-1, keepdim=True)

    before = "rspo_bench.verl_toy_plugin" in core_algos.ADV_ESTIMATOR_REGISTRY
    rv.register_all()
    tlr, mask, uids = make_batch([8, 6, 8], kind="uniform", pad_rows=2, seed=9)
    adv, _ = through_verl(verl_config("algorithm.adv_estimator=rspo_bench.verl_toy_plugin"), tlr, mask, uids)
    check("register_all() registers an estimator added to ESTIMATORS later",
          not before and torch.equal(adv, reference("verl_toy_plugin", tlr, mask, uids, 1)))

    res = FRESH.communicate()
    lines = [ln for ln in res[0].splitlines() if ln.startswith("NAMES ")]
    got = json.loads(lines[-1][6:]) if lines else None
    check("VERL_USE_EXTERNAL_MODULES=rspo_patch.verl: a plain `import verl` in a fresh process registers every name",
          FRESH.returncode == 0 and got == sorted(set(names) - {"rspo_bench.verl_toy_plugin"}),
          f"rc={FRESH.returncode}, {len(got or [])} names" + (f", {res[1].strip()[-300:]}" if FRESH.returncode else ""))


def start_fresh_import() -> subprocess.Popen:
    """A fresh process that only does ``import verl`` with VERL_USE_EXTERNAL_MODULES=rspo_patch.verl and prints the
    rspo_bench names in verl's registry (started first: its ~7 s import overlaps the other checks)."""
    env = dict(os.environ, VERL_USE_EXTERNAL_MODULES="rspo_patch.verl", PYTHONDONTWRITEBYTECODE="1")
    code = ("import json, verl\nfrom verl.trainer.ppo import core_algos as c\n"
            "print('NAMES', json.dumps(sorted(n for n in c.ADV_ESTIMATOR_REGISTRY if n.startswith('rspo_bench.'))))")
    return subprocess.Popen([sys.executable, "-W", "ignore", "-c", code], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def main() -> None:
    global FRESH
    FRESH = start_fresh_import()
    result = {"verl": verl.__version__, "torch": torch.__version__}
    cfgdir = os.path.join(os.path.dirname(verl.__file__), "trainer", "config")
    result["seconds"] = {"imports": round(time.perf_counter() - T0, 2)}
    with initialize_config_dir(config_dir=cfgdir, version_base=None):
        for part in (every_estimator, hyperparameters, errors, verl_builtins, baseline_blocks, registration):
            t = time.perf_counter()
            try:
                out = part()
                if out is not None:
                    result["estimators"] = out
            except Exception:  # noqa: BLE001  (report, and let the other parts run)
                check(f"{part.__name__} ran", False, traceback.format_exc()[-2000:])
            result["seconds"][part.__name__] = round(time.perf_counter() - t, 2)
    result["checks"] = CHECKS
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
