"""Content fingerprints: what a checkpoint or a partial output was made from, so that resuming never reuses work made
from other inputs. A path names a file; its sha256 says what is in it.

- ``file_sha256(path)``: sha256 of one file's bytes.
- ``model_sha256(model_dir)``: sha256 over the files that define an HF model folder (``MODEL_FILES``: weights,
  configs, tokenizer), each as (relative name, file sha256), sorted by name. Run logs and summaries kept next to
  the weights (``pretrain_log.jsonl``, wall times) are not part of it: re-making bit-identical weights keeps the
  fingerprint.
- ``settings_sha256(settings)``: sha256 of the canonical JSON (sorted keys) of a settings dict.
- ``stale_reason(saved, current)``: None when two fingerprint dicts agree, else one line naming what changed.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os

# Files of an HF model folder that from_pretrained reads for the weights, the architecture and the tokenizer.
MODEL_FILES = ("*.safetensors", "*.safetensors.index.json", "*.bin", "*.bin.index.json", "*.pt", "config.json",
               "generation_config.json", "tokenizer*", "special_tokens_map.json", "added_tokens.json", "vocab*",
               "merges.txt", "chat_template*", "*.model", "*.tiktoken")
CHUNK = 1 << 20


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of the bytes of ``path`` (read in 1 MiB chunks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def model_sha256(model_dir: str | os.PathLike) -> str:
    """Hex sha256 over sorted (name, file_sha256) of the top-level files of ``model_dir`` matching ``MODEL_FILES``.

    ValueError if the folder holds no such file (not an HF model folder).
    """
    names = sorted(n for n in os.listdir(model_dir) if os.path.isfile(os.path.join(model_dir, n))
                   and any(fnmatch.fnmatch(n, pat) for pat in MODEL_FILES))
    if not names:
        raise ValueError(f"{model_dir}: no model files ({', '.join(MODEL_FILES[:3])}, config.json, ...); expected an "
                         "HF model folder")
    h = hashlib.sha256()
    for n in names:
        h.update(f"{n}\0{file_sha256(os.path.join(model_dir, n))}\n".encode())
    return h.hexdigest()


def settings_sha256(settings: dict) -> str:
    """Hex sha256 of ``json.dumps(settings, sort_keys=True)``."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()


def stale_reason(saved: dict | None, current: dict) -> str | None:
    """None if ``saved == current``; else "what changed" for a log line, e.g. "model_sha256 changed (3f2a9c01… ->
    77b0e1d4…)". ``saved`` None: made before fingerprints were recorded."""
    if saved is None:
        return "it has no record of the inputs it was made from"
    changed = [f"{k} changed ({str(saved.get(k))[:8]}… -> {str(current.get(k))[:8]}…)"
               for k in sorted(set(saved) | set(current)) if saved.get(k) != current.get(k)]
    return "; ".join(changed) or None
