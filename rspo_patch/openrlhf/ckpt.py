"""Resume checkpoints tied to the run that made them; at most ``--ckpt.max_num`` HF copies (OpenRLHF 0.11.2 layout).

What OpenRLHF writes under ``--ckpt.path P`` (``PolicyModelActor.save_checkpoint`` -> ``DeepspeedStrategy.save_ckpt``):

    P/_actor/global_step20/mp_rank_00_model_states.pt           DeepSpeed module + client_state (episode, global_step,
    P/_actor/global_step20/bf16_zero_pp_rank_R_mp_rank_00_optim_states.pt    consumed prompts, data-loader state)
    P/_actor/global_step20/metric.json                          OpenRLHF's eviction metric
    P/_actor/latest                                             the newest complete tag, written LAST by DeepSpeed
    P/global_step20_hf/                                         ``--ckpt.save_hf``: an HF copy at every save
    P/tensorboard/                                              our train rule's ``--logger.tensorboard_dir``

and how it resumes (``--ckpt.load_enable``): if ``P/_actor`` exists, the actor loads the tag named in ``latest`` and
the trainer reads ``episode`` etc. from its client_state. Three defects of that, fixed here before Ray starts:

* nothing ties ``P`` to the run: after a change of settings, base weights or data, a rerun silently continues the old
  run. ``run_fingerprint`` (every training flag, the reward environment, sha256 of every file of the base model folder
  and of the prompt data) is stored as ``P/rspo_run.json``; a directory whose record differs (or has none) is moved
  aside to ``P.stale-<UTC time>`` with a log line saying why, and the run starts fresh.
* a job killed after creating ``_actor/`` but before DeepSpeed wrote ``latest`` leaves ``_actor`` without ``latest``:
  DeepSpeed loads nothing, OpenRLHF's trainer then reads ``states["episode"]`` from ``{}`` and every retry fails with
  KeyError 'episode'. ``checkpoint_problem`` detects it (and a ``latest`` naming a missing or incomplete tag); the
  directory is moved aside and the run starts fresh (nothing resumable was saved).
* ``--ckpt.save_hf`` copies are never rotated (~29 per cell): ``prune_hf_copies`` keeps the newest ``max_num``; the
  trainer (``rspo_patch.openrlhf.trainer``) calls it after every save.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
from pathlib import Path

from rspo_core.fingerprint import file_sha256

RECORD = "rspo_run.json"
ACTOR_DIR = "_actor"
HF_COPY = re.compile(r"^global_step(\d+)_hf$")

#: flags that do not change what is trained (where to write, what to log, how Ray is reached); the two input paths
#: are replaced by the content hashes of what they name
NOT_FINGERPRINTED_PREFIXES = ("ckpt.", "logger.")
NOT_FINGERPRINTED = ("rspo.ray_temp_dir", "actor.model_name_or_path", "data.prompt_dataset", "reward.remote_url",
                     "local_rank")
#: the reward file's environment (rspo_patch/openrlhf/reward_func.py)
REWARD_ENV = ("RSPO_REWARD", "RSPO_MAX_NEW_TOKENS", "RSPO_GRADE_FALLBACK", "RSPO_GRADE_TIMEOUT")


def _log(message: str) -> None:
    print(f"[rspo launcher] {message}", file=sys.stderr, flush=True)


def content_hashes(location: str | None) -> dict[str, str] | str | None:
    """{relative path: sha256} of every file under a local folder, {name: sha256} for a local file, or the string
    itself for anything else (a hub id: its content cannot be hashed before it is downloaded)."""
    if not location:
        return None
    hashes: dict[str, str] = {}
    for part in str(location).split(","):
        path = Path(part.strip().split("@")[0])
        if path.is_file():
            hashes[path.name] = file_sha256(path)
        elif path.is_dir():
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                hashes[f"{path.name}/{file.relative_to(path).as_posix()}"] = file_sha256(file)
        else:
            return str(location)
    return hashes


def run_fingerprint(ns, environ) -> dict:
    """What makes a run this run: every parsed training flag (``vars(ns)`` of OpenRLHF's flat namespace minus
    ``NOT_FINGERPRINTED*``), the reward environment, and the content hashes of the base model, the prompt data and
    the reward file (paths may move; contents may not)."""
    settings = {key: value for key, value in sorted(vars(ns).items())
                if key not in NOT_FINGERPRINTED and not key.startswith(NOT_FINGERPRINTED_PREFIXES)}
    return {
        "settings": json.loads(json.dumps(settings, default=repr)),
        "reward_env": {key: environ.get(key) for key in REWARD_ENV},
        "model": content_hashes(getattr(ns, "actor.model_name_or_path", None)),
        "data": content_hashes(getattr(ns, "data.prompt_dataset", None)),
        "reward_file": content_hashes(getattr(ns, "reward.remote_url", None)),
    }


def fingerprint_diff(old: dict, new: dict, limit: int = 6) -> list[str]:
    """Human-readable differences ``section.key: old -> new`` (at most ``limit``, then a count)."""
    out = []
    for section in sorted(set(old) | set(new)):
        a, b = old.get(section), new.get(section)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                if a.get(key) != b.get(key):
                    out.append(f"{section}.{key}: {a.get(key, '<absent>')!r} -> {b.get(key, '<absent>')!r}")
        else:
            out.append(f"{section}: changed")
    return out[:limit] + ([f"... {len(out) - limit} more"] if len(out) > limit else [])


def checkpoint_problem(actor_dir: Path) -> str | None:
    """Why ``P/_actor`` cannot be resumed, or None (absent: nothing to resume; or ``latest`` names a complete tag:
    a ``*model_states.pt`` and at least one ``*optim_states.pt``)."""
    if not actor_dir.exists():
        return None
    latest = actor_dir / "latest"
    if not latest.is_file():
        return f"{actor_dir} has no 'latest' file: the first save was interrupted (DeepSpeed writes it last)"
    tag = latest.read_text().strip()
    tag_dir = actor_dir / tag
    if not tag_dir.is_dir():
        return f"{latest} names {tag!r}, which does not exist"
    if not any(tag_dir.glob("*model_states.pt")) or not any(tag_dir.glob("*optim_states.pt")):
        return f"{tag_dir} lacks DeepSpeed's model or optimizer states"
    return None


def prune_hf_copies(ckpt_path: Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` ``global_step<N>_hf`` folders of ``ckpt_path`` (by N); returns those
    deleted. ``keep`` < 1 keeps one."""
    copies = sorted((int(m.group(1)), p) for p in Path(ckpt_path).glob("global_step*_hf")
                    if p.is_dir() and (m := HF_COPY.match(p.name)))
    doomed = [p for _, p in copies[:-max(1, keep)]]
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)
    return doomed


def move_aside(path: Path, reason: str) -> Path:
    """Rename ``path`` to ``<path>.stale-<UTC time>`` and log why; returns the new path."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = path.with_name(f"{path.name}.stale-{stamp}")
    suffix = 1
    while target.exists():
        target = path.with_name(f"{path.name}.stale-{stamp}-{suffix}")
        suffix += 1
    path.rename(target)
    _log(f"not resuming {path}: {reason}; moved it to {target} (delete it when no longer needed) and starting fresh")
    return target


def prepare_checkpoint_dir(ckpt_path: str | Path, fingerprint: dict, max_num: int) -> str:
    """Make ``ckpt_path`` safe to resume from, before Ray starts; returns "fresh" or "resume".

    fresh:  nothing there but our record, or a directory moved aside (no record, a different fingerprint, an
            unresumable ``_actor``, or logs without any ``_actor``); the fingerprint is (re)written.
    resume: the record matches and ``_actor/latest`` names a complete tag; HF copies pruned to ``max_num``.
    """
    path = Path(ckpt_path)
    reason = None
    if path.exists() and any(path.iterdir()):
        record = path / RECORD
        if not record.is_file():
            reason = f"it has no {RECORD} (made by an earlier version, or by hand): its settings are unknown"
        else:
            try:
                old = json.loads(record.read_text())
            except (OSError, json.JSONDecodeError) as err:
                old, reason = None, f"{record} is unreadable ({err})"
            if old is not None and old != fingerprint:
                reason = "it was made with other settings: " + "; ".join(fingerprint_diff(old, fingerprint))
        if reason is None:
            reason = checkpoint_problem(path / ACTOR_DIR)
        if reason is None and not (path / ACTOR_DIR).exists() and any(p.name != RECORD for p in path.iterdir()):
            reason = f"nothing resumable was saved (no {ACTOR_DIR}/), only the logs of an interrupted attempt"
        if reason is None:
            if (path / ACTOR_DIR).exists():
                prune_hf_copies(path, max_num)
                return "resume"
            return "fresh"
        move_aside(path, reason)
    path.mkdir(parents=True, exist_ok=True)
    tmp = path / (RECORD + ".tmp")
    tmp.write_text(json.dumps(fingerprint, indent=1, sort_keys=True))
    tmp.replace(path / RECORD)
    return "fresh"
