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
* with several ranks, DeepSpeed's rank 0 writes ``latest`` after its own files without waiting for the other ranks'
  shards: a job killed then leaves ``latest`` naming a tag another rank had not finished (a truncated shard fails
  ``torch.load`` inside that actor). Our trainer marks each tag complete once every rank returned from the save
  (``write_complete_marker``: ``<tag>/rspo_complete.json``, the shard count and every file's size); a tag without
  it is incomplete, and ``latest`` falls back to the newest complete tag (``fall_back_to_complete_tag``).
* ``--ckpt.save_hf`` copies are never rotated (~29 per cell): ``prune_hf_copies`` keeps the newest ``max_num``; the
  trainer (``rspo_patch.openrlhf.trainer``) calls it after every save.

And one refusal: every data-parallel rank writes its own ZeRO optimizer shard (``*zero_pp_rank_R_mp_rank_00_*``), and
DeepSpeed 0.19.6 cannot load shards written by another rank count (``ZeRORuntimeException`` inside every actor, after
Ray, vLLM and the models started). ``shard_ranks`` counts them; a resumable checkpoint of another rank count stops the
launcher in one line (``CheckpointLayoutError``) before anything starts, and is left untouched: rerun with the rank
count it was written by, or move the folder away to start over (a changed GPU count on a retry is not a reason to
throw away days of training silently).
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
#: written beside RECORD when a run starts fresh: its saves carry COMPLETE markers (a tag without one is incomplete)
FORMAT = "rspo_ckpt_format.json"
ACTOR_DIR = "_actor"
HF_COPY = re.compile(r"^global_step(\d+)_hf$")
#: one ZeRO optimizer shard per data-parallel rank R (bf16_zero_pp_rank_R_mp_rank_00_optim_states.pt, or without the
#: bf16_ prefix); model parallelism (mp_rank) is not used by the OpenRLHF path
TAG = re.compile(r"^global_step(\d+)$")
#: written by our trainer into a tag once every rank's save returned (write_complete_marker)
COMPLETE = "rspo_complete.json"
ZERO_SHARD = re.compile(r"^(?:bf16_)?zero_pp_rank_(\d+)_mp_rank_00_optim_states\.pt$")

#: flags that do not change what is trained (where to write, what to log, how Ray is reached); the two input paths
#: are replaced by the content hashes of what they name
NOT_FINGERPRINTED_PREFIXES = ("ckpt.", "logger.")
NOT_FINGERPRINTED = ("rspo.ray_temp_dir", "actor.model_name_or_path", "data.prompt_dataset", "reward.remote_url",
                     "local_rank", "rspo.plugin")
#: settings fingerprinted only when set: a plugin estimator's source digest (finalize_args; None for built-ins, whose
#: fingerprints stay those of checkpoints written before plugins existed)
FINGERPRINTED_WHEN_SET = ("rspo.estimator_source",)
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
                if key not in NOT_FINGERPRINTED and not key.startswith(NOT_FINGERPRINTED_PREFIXES)
                and not (key in FINGERPRINTED_WHEN_SET and value is None)}
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


def write_complete_marker(tag_dir: Path) -> Path:
    """Record that every rank finished writing the checkpoint ``tag_dir`` (called by our trainer actor once OpenRLHF's
    save returned from all ranks): ``COMPLETE`` = {"dp_ranks": ZeRO shards, "files": {name: size}}, written
    atomically. DeepSpeed's rank 0 writes ``latest`` right after its OWN files, with no barrier before it, so a job
    killed then leaves a ``latest`` that names a tag whose other shards are missing or truncated."""
    tag_dir = Path(tag_dir)
    files = {p.name: p.stat().st_size for p in sorted(tag_dir.iterdir()) if p.is_file() and p.name != COMPLETE}
    tmp = tag_dir / (COMPLETE + ".tmp")
    tmp.write_text(json.dumps({"dp_ranks": shard_ranks(tag_dir), "files": files}, indent=1, sort_keys=True))
    tmp.replace(tag_dir / COMPLETE)
    return tag_dir / COMPLETE


def tag_problem(tag_dir: Path, *, markers: bool) -> str | None:
    """Why the DeepSpeed tag ``tag_dir`` cannot be loaded, or None. ``markers``: whether this checkpoint directory's
    saves carry ``COMPLETE`` (every save since the trainer writes them); then a tag without one, or whose files are
    missing or of other sizes than recorded, is incomplete. Without markers (a checkpoint of an earlier version): a
    ``*model_states.pt`` and at least one ``*optim_states.pt``."""
    if not tag_dir.is_dir():
        return f"{tag_dir.name!r} does not exist"
    marker = tag_dir / COMPLETE
    if markers:
        if not marker.is_file():
            return f"{tag_dir} has no {COMPLETE}: the job stopped while its ranks were still saving"
        try:
            files = json.loads(marker.read_text())["files"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            return f"{marker} is unreadable ({err})"
        for name, size in files.items():
            path = tag_dir / name
            if not path.is_file() or path.stat().st_size != size:
                return f"{path} is missing or not the size {size} recorded in {COMPLETE}"
        return None
    if not any(tag_dir.glob("*model_states.pt")) or not any(tag_dir.glob("*optim_states.pt")):
        return f"{tag_dir} lacks DeepSpeed's model or optimizer states"
    return None


def _uses_markers(actor_dir: Path) -> bool:
    """Whether the saves under ``actor_dir`` carry COMPLETE markers: a run started by this version (FORMAT beside
    it), or any tag already marked."""
    return (actor_dir.parent / FORMAT).is_file() or any(actor_dir.glob(f"*/{COMPLETE}"))


def checkpoint_problem(actor_dir: Path) -> str | None:
    """Why ``P/_actor`` cannot be resumed, or None (absent: nothing to resume; or ``latest`` names a complete tag,
    ``tag_problem``)."""
    if not actor_dir.exists():
        return None
    latest = actor_dir / "latest"
    if not latest.is_file():
        return f"{actor_dir} has no 'latest' file: the first save was interrupted (DeepSpeed writes it last)"
    tag = latest.read_text().strip()
    if not (actor_dir / tag).is_dir():
        return f"{latest} names {tag!r}, which does not exist"
    return tag_problem(actor_dir / tag, markers=_uses_markers(actor_dir))


def newest_complete_tag(actor_dir: Path) -> str | None:
    """The ``global_step<N>`` tag of ``actor_dir`` with the largest N that ``tag_problem`` accepts, or None."""
    markers = _uses_markers(actor_dir)
    tags = sorted(((int(m.group(1)), p.name) for p in actor_dir.glob("global_step*")
                   if p.is_dir() and (m := TAG.match(p.name))), reverse=True)
    return next((name for _, name in tags if tag_problem(actor_dir / name, markers=markers) is None), None)


def fall_back_to_complete_tag(actor_dir: Path) -> str | None:
    """When ``latest`` names an incomplete tag but an older one is complete, point ``latest`` at the newest complete
    one (atomically, with a log line) and return it: the interrupted save is redone, the older steps are kept."""
    if not actor_dir.is_dir() or checkpoint_problem(actor_dir) is None:
        return None
    tag = newest_complete_tag(actor_dir)
    if tag is None:
        return None
    latest = actor_dir / "latest"
    was = latest.read_text().strip() if latest.is_file() else None
    tmp = actor_dir / "latest.tmp"
    tmp.write_text(tag)
    tmp.replace(latest)
    _log(f"{actor_dir}: 'latest' named {was!r}, which was not completely written; resuming from {tag}, the newest "
         f"complete checkpoint")
    return tag


class CheckpointLayoutError(ValueError):
    """A resumable checkpoint written by another number of data-parallel ranks than this run has."""


def shard_ranks(tag_dir: Path) -> int:
    """Data-parallel ranks that wrote the ZeRO checkpoint ``tag_dir``: its ``COMPLETE`` record's count, else the
    number of distinct R of its ``*zero_pp_rank_R_mp_rank_00_optim_states.pt`` files (0 when it has none)."""
    marker = Path(tag_dir) / COMPLETE
    if marker.is_file():
        try:
            return int(json.loads(marker.read_text())["dp_ranks"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
    return len({int(m.group(1)) for p in Path(tag_dir).iterdir() if (m := ZERO_SHARD.match(p.name))})


def check_rank_layout(actor_dir: Path, dp_ranks: int) -> None:
    """CheckpointLayoutError (one line) when the tag ``actor_dir/latest`` names was written by another number of
    data-parallel ranks than ``dp_ranks``; nothing when there is no resumable checkpoint (``checkpoint_problem``)."""
    if not actor_dir.exists() or checkpoint_problem(actor_dir) is not None:
        return
    tag_dir = actor_dir / (actor_dir / "latest").read_text().strip()
    written = shard_ranks(tag_dir)
    if written != dp_ranks:
        raise CheckpointLayoutError(
            f"{tag_dir} holds the ZeRO optimizer shards of {written} data-parallel rank(s), this run has {dp_ranks} "
            f"(actor.num_nodes x actor.num_gpus_per_node / ds.ring_attn_size / ds.tensor_parallel_size): DeepSpeed "
            f"cannot re-partition them; rerun with {written} rank(s), or move {actor_dir.parent} away to start over")


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


def prepare_checkpoint_dir(ckpt_path: str | Path, fingerprint: dict, max_num: int, dp_ranks: int | None = None) -> str:
    """Make ``ckpt_path`` safe to resume from, before Ray starts; returns "fresh" or "resume".

    fresh:  nothing there but our record, or a directory moved aside (no record, a different fingerprint, an
            unresumable ``_actor``, or logs without any ``_actor``); the fingerprint is (re)written.
    resume: the record matches and ``_actor/latest`` names a complete tag; HF copies pruned to ``max_num``.
    CheckpointLayoutError, touching nothing, when ``dp_ranks`` is given and a resumable checkpoint there was written
    by another number of data-parallel ranks (``check_rank_layout``), whatever its record says.
    """
    path = Path(ckpt_path)
    reason = None
    fall_back_to_complete_tag(path / ACTOR_DIR)
    if dp_ranks is not None:
        check_rank_layout(path / ACTOR_DIR, dp_ranks)
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
        if reason is None and not (path / ACTOR_DIR).exists() and any(p.name not in (RECORD, FORMAT)
                                                                     for p in path.iterdir()):
            reason = f"nothing resumable was saved (no {ACTOR_DIR}/), only the logs of an interrupted attempt"
        if reason is None:
            if (path / ACTOR_DIR).exists():
                prune_hf_copies(path, max_num)
                return "resume"
            (path / FORMAT).write_text(json.dumps({"complete_markers": COMPLETE}))
            return "fresh"
        move_aside(path, reason)
    path.mkdir(parents=True, exist_ok=True)
    tmp = path / (RECORD + ".tmp")
    tmp.write_text(json.dumps(fingerprint, indent=1, sort_keys=True))
    tmp.replace(path / RECORD)
    (path / FORMAT).write_text(json.dumps({"complete_markers": COMPLETE}))
    return "fresh"
