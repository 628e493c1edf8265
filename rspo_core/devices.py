"""GPU indices of their own for the GPU jobs of one machine without a scheduler: one file lock per device.

Snakemake's ``gpu`` resource is only a counter: with ``--resources gpu=8`` it starts eight 1-GPU jobs at once, and
each of them sees all eight GPUs and puts its model on GPU 0. The workflow starts every job that asks for GPUs through
this wrapper, which gives it devices no other running job holds:

    python -m rspo_core.devices --gpus 2 -- python -m analysis.generate ...   # CUDA_VISIBLE_DEVICES=<2 free indices>

1. Devices a scheduler already assigned win: with ``CUDA_VISIBLE_DEVICES``, ``SLURM_JOB_GPUS`` or ``SLURM_JOB_ID`` in
   the environment the command runs exactly as given (exec, nothing set, nothing checked); so does ``--gpus 0``.
2. Otherwise the device count comes from ``RSPO_GPU_COUNT`` (tests declare N devices on a CPU machine with it; on a
   GPU machine it restricts jobs to GPUs 0..N-1), else ``nvidia-smi -L``, else ``/proc/driver/nvidia/gpus`` (torch is
   never imported: ~0.1 s with the Python start). A job asking for more fails in one line naming both numbers,
   before its command starts.
3. The devices: an exclusive ``fcntl.flock`` on ``gpu<i>.lock`` per device in ``RSPO_GPU_LOCK_DIR`` (default
   ``/tmp/rspo-gpu-locks-<uid>``), the lowest free indices, taken all together under a short-lived ``alloc.lock``.
   The wrapper starts the command with ``CUDA_VISIBLE_DEVICES`` set (and ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` unless set,
   so that index i is nvidia-smi's GPU i), passes it the locked descriptors and waits for it. The kernel drops a flock
   when the last process holding its descriptor ends, however it ends (SIGKILL included): the devices stay held while
   the wrapper, the command or a process that inherited them lives, and are free as soon as all are gone. All held: it waits, with a logged and
   bounded timeout (``--wait-s``, default ``RSPO_GPU_WAIT_S`` or 900 s), then fails naming the holders.

Every line it writes goes to stderr (the job's log). ``RSPO_GPU_LEDGER=FILE`` also appends one JSON line when a job's
devices are taken and one when they are released (gpus, pid, time): what tests check for overlaps.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence

PROG = "rspo_core.devices"
COUNT_ENV = "RSPO_GPU_COUNT"  # declared device count (wins over the machine's)
LOCK_DIR_ENV = "RSPO_GPU_LOCK_DIR"
WAIT_ENV = "RSPO_GPU_WAIT_S"
LEDGER_ENV = "RSPO_GPU_LEDGER"
DEFAULT_WAIT_S = 900.0
POLL_S = 0.25  # between two tries while every device is held
SCHEDULER_VARS = ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_GPUS", "SLURM_JOB_ID")  # present: the scheduler assigned devices
PROC_GPUS = "/proc/driver/nvidia/gpus"  # one folder per NVIDIA GPU (its PCI address)
FORWARDED = (signal.SIGTERM, signal.SIGHUP)  # SIGINT comes from the terminal to the command's process group itself


class DeviceError(RuntimeError):
    """A request the machine cannot serve (bad count, too many GPUs, none free in time): one line."""


# ---------------------------------------------------------------------------------------------------------------------
# Pure functions


def scheduler_assignment(env: Mapping[str, str]) -> str | None:
    """The first of SCHEDULER_VARS present in ``env`` as "NAME=value" (a scheduler, or the user, chose the devices:
    leave them alone), else None."""
    for name in SCHEDULER_VARS:
        if name in env:
            return f"{name}={env[name]}"
    return None


def parse_count(text: str, where: str) -> int:
    """``text`` as a device count (a whole number >= 0); DeviceError naming ``where`` and the value otherwise."""
    try:
        n = int(text.strip())
    except ValueError:
        n = -1
    if n < 0:
        raise DeviceError(f"{where}={text!r}: expected a whole number of GPUs >= 0")
    return n


def count_nvidia_smi(listing: str) -> int:
    """GPUs in the output of ``nvidia-smi -L``: its "GPU <i>: ..." lines (MIG slices, listed below their GPU, are not
    counted)."""
    return sum(1 for line in listing.splitlines() if line.startswith("GPU "))


def visible_devices(indices: Sequence[int]) -> str:
    """``CUDA_VISIBLE_DEVICES`` for these indices: "0,3"."""
    return ",".join(str(i) for i in indices)


def child_env(env: Mapping[str, str], indices: Sequence[int]) -> dict[str, str]:
    """``env`` plus ``CUDA_VISIBLE_DEVICES`` = these indices, and ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` unless set (CUDA's
    default order puts the fastest GPU first; nvidia-smi and /proc count in PCI order)."""
    out = dict(env)
    out["CUDA_VISIBLE_DEVICES"] = visible_devices(indices)
    out.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    return out


def check_request(want: int, have: int, source: str) -> None:
    """DeviceError naming both numbers if a job asks for more GPUs than the machine has (``source``: where ``have``
    came from)."""
    if want > have:
        raise DeviceError(f"the job asks for {want} GPU(s) but this machine has {have} ({source}); lower the config's "
                          f"train.gpus / eval.gpus, or declare the count with {COUNT_ENV}")


def exit_status(returncode: int) -> int:
    """The shell's exit status of a child's ``returncode``: a death by signal N (-N) is 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def default_lock_dir(env: Mapping[str, str]) -> str:
    """``RSPO_GPU_LOCK_DIR``, else /tmp/rspo-gpu-locks-<uid>: one per user and machine (every run of this user on the
    machine shares its devices; another user's jobs are not seen: the lock files are private to their user)."""
    return env.get(LOCK_DIR_ENV) or os.path.join("/tmp", f"rspo-gpu-locks-{os.getuid()}")


def wait_limit(env: Mapping[str, str]) -> float:
    """Seconds to wait while every device is held: ``RSPO_GPU_WAIT_S``, else DEFAULT_WAIT_S."""
    text = env.get(WAIT_ENV)
    if text is None:
        return DEFAULT_WAIT_S
    try:
        return max(0.0, float(text))
    except ValueError:
        raise DeviceError(f"{WAIT_ENV}={text!r}: expected seconds (a number >= 0)") from None


# ---------------------------------------------------------------------------------------------------------------------
# The machine


def machine_gpus(env: Mapping[str, str]) -> tuple[int, str]:
    """(device count, where it came from): ``RSPO_GPU_COUNT``, else ``nvidia-smi -L``, else /proc/driver/nvidia/gpus,
    else 0."""
    if env.get(COUNT_ENV, "").strip():
        return parse_count(env[COUNT_ENV], COUNT_ENV), COUNT_ENV
    if shutil.which("nvidia-smi"):
        try:
            res = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
            if res.returncode == 0 and count_nvidia_smi(res.stdout):
                return count_nvidia_smi(res.stdout), "nvidia-smi -L"
        except (OSError, subprocess.TimeoutExpired):
            pass
    if os.path.isdir(PROC_GPUS) and os.listdir(PROC_GPUS):
        return len(os.listdir(PROC_GPUS)), PROC_GPUS
    return 0, f"no {COUNT_ENV}, nvidia-smi -L or {PROC_GPUS} found any"


def _lock_path(lock_dir: str, index: int) -> str:
    return os.path.join(lock_dir, f"gpu{index}.lock")


def try_acquire(lock_dir: str, have: int, want: int, note: str) -> dict[int, int] | None:
    """Take ``want`` of the ``have`` device locks, lowest indices first, all or none: {index: open locked fd}, or None
    if fewer are free. One process at a time picks (``alloc.lock``), so two jobs never split the free devices between
    them and both wait; each lock file then names its holder (``note``)."""
    os.makedirs(lock_dir, mode=0o700, exist_ok=True)
    alloc = os.open(os.path.join(lock_dir, "alloc.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    got: dict[int, int] = {}
    try:
        fcntl.flock(alloc, fcntl.LOCK_EX)
        for i in range(have):
            fd = os.open(_lock_path(lock_dir, i), os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            got[i] = fd
            if len(got) == want:
                for fd in got.values():
                    os.ftruncate(fd, 0)
                    os.pwrite(fd, note.encode() + b"\n", 0)
                return got
        for fd in got.values():
            os.close(fd)
        return None
    finally:
        os.close(alloc)  # closing the fd drops its lock


def holders(lock_dir: str, have: int) -> str:
    """Who holds the held devices, e.g. "GPU 0: pid 123 python -m analysis.generate ...; GPU 1: ..." (read from the
    lock files; a free device is left out). Probed under ``alloc.lock``, so a probe never makes a job's pick fail."""
    out = []
    alloc = os.open(os.path.join(lock_dir, "alloc.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(alloc, fcntl.LOCK_EX)
        for i in range(have):
            try:
                fd = os.open(_lock_path(lock_dir, i), os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # free (closing the fd drops the probe)
            except BlockingIOError:
                out.append(f"GPU {i}: {os.pread(fd, 300, 0).decode(errors='replace').strip() or 'unknown'}")
            finally:
                os.close(fd)
    finally:
        os.close(alloc)
    return "; ".join(out) or "none now"


def acquire(lock_dir: str, have: int, want: int, note: str, wait_s: float, log) -> dict[int, int]:
    """``try_acquire`` until it succeeds or ``wait_s`` seconds pass (DeviceError naming the holders); logs once when it
    starts waiting and once a minute after."""
    start = time.monotonic()
    next_log = start
    while True:
        got = try_acquire(lock_dir, have, want, note)
        if got is not None:
            return got
        now = time.monotonic()
        if now - start >= wait_s:
            raise DeviceError(f"no {want} free GPU(s) of {have} after {wait_s:g} s (held: {holders(lock_dir, have)}; "
                              f"locks in {lock_dir}); end the processes that hold them, or raise {WAIT_ENV}")
        if now >= next_log:
            log(f"waiting for {want} free GPU(s) of {have} (held: {holders(lock_dir, have)}); giving up after "
                f"{wait_s:g} s")
            next_log = now + 60
        time.sleep(POLL_S)


def _ledger(env: Mapping[str, str], **record) -> None:
    path = env.get(LEDGER_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as fh:  # O_APPEND: one write per line, whole lines from every job
            fh.write(json.dumps({**record, "t": time.time()}) + "\n")


def log(msg: str) -> None:
    """One line of the wrapper in the job's log (stderr)."""
    print(f"{PROG}: {msg}", file=sys.stderr, flush=True)


def run(want: int, cmd: Sequence[str], env: Mapping[str, str], wait_s: float | None = None) -> int:
    """Run ``cmd`` with ``want`` GPUs of its own (module docstring); return its exit status. Exec'd in place (never
    returns) where a scheduler assigned devices or ``want`` is 0."""
    assigned = scheduler_assignment(env)
    if assigned or want == 0:
        if assigned:
            log(f"devices assigned by the scheduler ({assigned}): left alone")
        try:
            os.execvpe(cmd[0], list(cmd), dict(env))
        except OSError as e:
            raise DeviceError(f"cannot run {cmd[0]!r}: {e.strerror}") from None
    have, source = machine_gpus(env)
    check_request(want, have, source)
    lock_dir = default_lock_dir(env)
    wait_s = wait_limit(env) if wait_s is None else wait_s
    fds = acquire(lock_dir, have, want, f"pid {os.getpid()} {' '.join(cmd)[:200]}", wait_s, log)
    gpus = sorted(fds)
    log(f"GPU {visible_devices(gpus)} of {have} ({source}) for this job: CUDA_VISIBLE_DEVICES={visible_devices(gpus)}")
    _ledger(env, event="acquired", gpus=gpus, pid=os.getpid())
    start = time.monotonic()
    children, pending = [], []  # a SIGTERM that comes before the command exists is sent to it once it does

    def forward(sig, _frame):
        children[0].send_signal(sig) if children else pending.append(sig)

    for sig in FORWARDED:
        signal.signal(sig, forward)  # caught (not ignored) signals are reset to the default in the command
    try:
        child = subprocess.Popen(list(cmd), env=child_env(env, gpus), pass_fds=tuple(fds.values()))
    except OSError as e:
        _ledger(env, event="released", gpus=gpus, pid=os.getpid(), child=None, rc=127)
        raise DeviceError(f"cannot run {cmd[0]!r}: {e.strerror}") from None
    children.append(child)
    for sig in pending:
        child.send_signal(sig)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # after the start (an ignored signal stays ignored in the command):
    returncode = child.wait()  # the terminal's Ctrl-C reaches the command's process group itself
    _ledger(env, event="released", gpus=gpus, pid=os.getpid(), child=child.pid, rc=returncode)
    log(f"released GPU {visible_devices(gpus)} after {time.monotonic() - start:.1f} s (exit {exit_status(returncode)})")
    return exit_status(returncode)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m rspo_core.devices --gpus N [--wait-s S] -- CMD ...``."""
    import argparse

    from rspo_core.cli import CLIError, parse_strict

    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index("--") if "--" in argv else len(argv)
    p = argparse.ArgumentParser(prog=f"python -m {PROG}", description=__doc__.split("\n", 1)[0])
    p.add_argument("--gpus", type=int, required=True, help="GPUs of the job (0: run the command unchanged)")
    p.add_argument("--wait-s", type=float, default=None,
                   help=f"seconds to wait while every device is held (default {WAIT_ENV} or {DEFAULT_WAIT_S:g})")
    try:
        a = parse_strict(p, argv[:split])
        if a.gpus < 0:
            raise CLIError(f"--gpus {a.gpus}: expected a whole number of GPUs >= 0")
        if not argv[split + 1:]:
            raise CLIError(f"expected --gpus N -- COMMAND ..., got {' '.join(argv) or 'nothing'}")
        return run(a.gpus, argv[split + 1:], os.environ, a.wait_s)
    except (CLIError, DeviceError) as e:
        raise SystemExit(f"{PROG}: error: {e}") from None


if __name__ == "__main__":
    raise SystemExit(main())
