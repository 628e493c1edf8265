"""An exclusive lock on a results folder, held for the life of the process that takes it.

Snakemake's own lock lives in the working directory's ``.snakemake/``; two working copies whose configs point
``results:`` at the same absolute folder never see each other's lock and write into the same files. An ``flock`` on a
file inside the results folder itself closes that gap, and, unlike Snakemake's lock, it is released by the kernel when
its holder dies (SIGKILL included), so a killed run never needs ``--unlock`` for it.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

LOCK_NAME = ".rspo-bench.lock"


class FolderBusy(RuntimeError):
    """Another live process holds the folder's lock."""


def lock_folder(folder: str | os.PathLike) -> IO:
    """Take the exclusive lock of ``folder`` (created if missing) and return its open file: the lock lasts while the
    file stays open (keep a reference). FolderBusy, naming the holder's pid, if another process holds it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fh = open(folder / LOCK_NAME, "a+", encoding="utf-8")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip() or "unknown"
        fh.close()
        raise FolderBusy(f"results folder {folder.resolve()} is in use by another run (pid {holder}); wait for it "
                         f"to finish or point 'results:' elsewhere") from None
    fh.seek(0)
    fh.truncate()
    fh.write(f"{os.getpid()}\n")
    fh.flush()
    return fh
