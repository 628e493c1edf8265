"""Atomic file writes: the one mechanism every stage uses so a kill never leaves a half-written output.

A write goes to a temporary file in the destination's folder (same file system), which is renamed over the
destination with ``os.replace`` only after it is complete; on any error the temporary file is removed and the old
destination, if any, is left untouched. Finished files get mode 0644 (``mkstemp`` creates 0600).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` (same suffix) to write; on success it replaces ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


@contextmanager
def atomic_open(path: str | os.PathLike, *, fsync: bool = False) -> Iterator:
    """Open a UTF-8 text handle whose content replaces ``path`` when the block ends without error.

    Text is written verbatim (``newline=""``: no newline translation). ``fsync=True`` flushes to disk before the rename.
    """
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            yield fh
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_open(path) as fh:
        fh.write(text)


def write_jsonl_atomic(path: str | os.PathLike, rows: Iterable[Mapping]) -> int:
    """Write rows as JSONL (UTF-8, one object per line) to ``path`` atomically, fsynced; returns the row count."""
    n = 0
    with atomic_open(path, fsync=True) as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n
