"""GPU jobs on one multi-GPU machine without Slurm (rspo_core.devices): every job that asks for GPUs gets indices no
other running job holds, on a CPU machine that declares N devices with RSPO_GPU_COUNT.

- the pure functions, and the all-or-none pick of the device locks (in-process: flock locks of two open files
  conflict even within one process);
- the CLI in real processes: more GPUs than declared fails in one line before the command runs; a scheduler's
  assignment (CUDA_VISIBLE_DEVICES, SLURM_JOB_GPUS / SLURM_JOB_ID) is left alone; a SIGKILLed job's devices (the whole
  process group, or the command alone) are free for the next job at once; a wrapper SIGKILLed alone leaves its
  command holding them, and the next job waits (logged) until the command ends;
- a real `snakemake` run of the micro config with eval.gpus 1, `--resources gpu=2` and RSPO_GPU_COUNT=2: three
  generate jobs, two at a time; the wrapper's ledger (RSPO_GPU_LEDGER) shows that jobs running at the same time
  never shared an index;
- the commands of the dry runs: the wrapper is in the GPU rules of config/paper.yaml, and in no command of the default
  config (whose commands stay byte-identical).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from wf_helpers import MICRO, REPO, dry_run, load_yaml, snakemake_cmd

from rspo_core import devices as D

WRAP = [sys.executable, "-m", "rspo_core.devices"]
SHOW_ENV = ["sh", "-c", 'echo "pid=$$ cvd=${CUDA_VISIBLE_DEVICES-unset} order=${CUDA_DEVICE_ORDER-unset}"']


@pytest.fixture
def gpu_env(tmp_path):
    """Environment of a machine without a scheduler that declares 2 GPUs, with this test's own lock folder and ledger
    (tests running beside this one use other folders)."""
    env = {k: v for k, v in os.environ.items() if k not in D.SCHEDULER_VARS and not k.startswith("SLURM_")}
    env.pop("CUDA_DEVICE_ORDER", None)
    env.update({D.COUNT_ENV: "2", D.LOCK_DIR_ENV: str(tmp_path / "locks"), D.LEDGER_ENV: str(tmp_path / "ledger.jsonl"),
                "PYTHONPATH": str(REPO)})
    return env


def _ledger(env) -> list[dict]:
    path = Path(env[D.LEDGER_ENV])
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _wait_for(done, timeout: float = 20, what: str = "the condition"):
    deadline = time.time() + timeout
    while not done():
        assert time.time() < deadline, f"{what} not reached in {timeout:.0f} s"
        time.sleep(0.02)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (an orphan that ended may stay a zombie until a reaper collects it: not alive)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def _run(args, env, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*WRAP, *args], env=env, capture_output=True, text=True, timeout=60, **kw)


# ---------------------------------------------------------------------------------------------------------------------
# Pure functions


def test_scheduler_assignment_names_the_first_variable_present():
    assert D.scheduler_assignment({"PATH": "/bin"}) is None
    assert D.scheduler_assignment({"SLURM_JOB_ID": "42"}) == "SLURM_JOB_ID=42"
    assert D.scheduler_assignment({"SLURM_JOB_ID": "42", "SLURM_JOB_GPUS": "2,3"}) == "SLURM_JOB_GPUS=2,3"
    assert D.scheduler_assignment({"CUDA_VISIBLE_DEVICES": "", "SLURM_JOB_ID": "1"}) == "CUDA_VISIBLE_DEVICES="


def test_parse_count_accepts_whole_numbers_only():
    assert D.parse_count(" 8\n", "X") == 8 and D.parse_count("0", "X") == 0
    for bad in ("-1", "eight", "", "2.5"):
        with pytest.raises(D.DeviceError, match=rf"^RSPO_GPU_COUNT={bad!r}: expected a whole number of GPUs >= 0$"):
            D.parse_count(bad, "RSPO_GPU_COUNT")


def test_count_nvidia_smi_counts_gpus_not_mig_slices():
    listing = (
        "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-5c1f0e2a-0000-0000-0000-000000000000)\n"
        "  MIG 3g.40gb     Device  0: (UUID: MIG-1b2c3d4e-0000-0000-0000-000000000000)\n"
        "  MIG 3g.40gb     Device  1: (UUID: MIG-2b2c3d4e-0000-0000-0000-000000000000)\n"
        "GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-6c1f0e2a-0000-0000-0000-000000000000)\n"
    )
    assert D.count_nvidia_smi(listing) == 2
    assert D.count_nvidia_smi("No devices were found\n") == 0


def test_child_env_sets_the_devices_and_pci_order_without_touching_its_input():
    env = {"PATH": "/bin"}
    out = D.child_env(env, [0, 3])
    assert out == {"PATH": "/bin", "CUDA_VISIBLE_DEVICES": "0,3", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"} and env == {
        "PATH": "/bin"}
    assert D.child_env({"CUDA_DEVICE_ORDER": "FASTEST_FIRST"}, [1])["CUDA_DEVICE_ORDER"] == "FASTEST_FIRST"


def test_check_request_names_both_numbers_in_one_line():
    D.check_request(2, 2, "RSPO_GPU_COUNT")
    with pytest.raises(D.DeviceError) as e:
        D.check_request(3, 2, "RSPO_GPU_COUNT")
    assert "asks for 3 GPU(s) but this machine has 2 (RSPO_GPU_COUNT)" in str(e.value) and "\n" not in str(e.value)


def test_exit_status_is_the_shells():
    assert [D.exit_status(rc) for rc in (0, 3, -9, -15)] == [0, 3, 137, 143]


def test_device_count_and_wait_come_from_the_environment():
    assert D.machine_gpus({"RSPO_GPU_COUNT": "4"}) == (4, "RSPO_GPU_COUNT")
    assert D.wait_limit({}) == D.DEFAULT_WAIT_S and D.wait_limit({"RSPO_GPU_WAIT_S": "2.5"}) == 2.5
    with pytest.raises(D.DeviceError, match=r"^RSPO_GPU_WAIT_S='soon': expected seconds"):
        D.wait_limit({"RSPO_GPU_WAIT_S": "soon"})
    assert D.default_lock_dir({"RSPO_GPU_LOCK_DIR": "/x"}) == "/x"
    assert D.default_lock_dir({}) == f"/tmp/rspo-gpu-locks-{os.getuid()}"


def test_try_acquire_takes_the_lowest_free_devices_all_or_none(tmp_path):
    locks = str(tmp_path / "locks")
    first = D.try_acquire(locks, 3, 2, "pid 1 first")
    assert sorted(first) == [0, 1]
    assert D.try_acquire(locks, 3, 2, "pid 2 second") is None  # one free: takes none ...
    third = D.try_acquire(locks, 3, 1, "pid 3 third")  # ... so GPU 2 is still free
    assert sorted(third) == [2]
    assert D.holders(locks, 3) == "GPU 0: pid 1 first; GPU 1: pid 1 first; GPU 2: pid 3 third"
    for fd in first.values():
        os.close(fd)  # the job ends: its locks go with its descriptors
    assert D.holders(locks, 3) == "GPU 2: pid 3 third"
    again = D.try_acquire(locks, 3, 2, "pid 4 again")
    assert sorted(again) == [0, 1]
    for fd in [*again.values(), *third.values()]:
        os.close(fd)


# ---------------------------------------------------------------------------------------------------------------------
# The CLI in real processes


def test_more_gpus_than_declared_fails_in_one_line_before_the_command_runs(gpu_env, tmp_path):
    marker = tmp_path / "ran"
    res = _run(["--gpus", "3", "--", "touch", str(marker)], gpu_env)
    assert res.returncode != 0 and not marker.exists()
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "asks for 3 GPU(s) but this machine has 2 (RSPO_GPU_COUNT)" in lines[0], res.stderr
    assert not _ledger(gpu_env)  # nothing was taken
    res = _run(["--gpus", "1", "--", "true"], {**gpu_env, D.COUNT_ENV: "two"})
    assert res.returncode != 0 and res.stderr.strip() == (
        "rspo_core.devices: error: RSPO_GPU_COUNT='two': expected a whole number of GPUs >= 0")


def test_a_job_gets_its_devices_and_releases_them(gpu_env):
    res = _run(["--gpus", "2", "--", *SHOW_ENV], gpu_env)
    assert res.returncode == 0, res.stderr
    assert "cvd=0,1 order=PCI_BUS_ID" in res.stdout
    assert "GPU 0,1 of 2 (RSPO_GPU_COUNT) for this job: CUDA_VISIBLE_DEVICES=0,1" in res.stderr
    events = _ledger(gpu_env)
    assert [(e["event"], e["gpus"]) for e in events] == [("acquired", [0, 1]), ("released", [0, 1])]
    assert events[1]["rc"] == 0
    assert _run(["--gpus", "1", "--", "sh", "-c", "exit 3"], gpu_env).returncode == 3  # the command's own status


@pytest.mark.parametrize("assigned", [{"CUDA_VISIBLE_DEVICES": "5"}, {"SLURM_JOB_ID": "42", "SLURM_JOB_GPUS": "0,1"}])
def test_a_schedulers_assignment_is_left_alone(gpu_env, assigned):
    # asks for more than the 2 declared: the scheduler's call, not the wrapper's
    proc = subprocess.Popen([*WRAP, "--gpus", "8", "--", *SHOW_ENV], env={**gpu_env, **assigned},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    cvd = assigned.get("CUDA_VISIBLE_DEVICES", "unset")
    assert out.strip() == f"pid={proc.pid} cvd={cvd} order=unset"  # exec'd in place, environment as it was
    assert "assigned by the scheduler" in err and "left alone" in err
    assert not _ledger(gpu_env) and not Path(gpu_env[D.LOCK_DIR_ENV]).exists()  # no lock taken


def test_a_sigkilled_jobs_devices_are_free_for_the_next_job(gpu_env):
    holder = subprocess.Popen([*WRAP, "--gpus", "2", "--", "sleep", "60"], env=gpu_env, start_new_session=True,
                              stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: _ledger(gpu_env), what="the first job's devices")
        busy = _run(["--gpus", "1", "--wait-s", "0", "--", "true"], gpu_env)
        assert busy.returncode != 0 and "no 1 free GPU(s) of 2 after 0 s" in busy.stderr, busy.stderr
        assert f"GPU 0: pid {holder.pid} sleep 60; GPU 1: pid {holder.pid} sleep 60" in busy.stderr
    finally:
        os.killpg(holder.pid, signal.SIGKILL)  # the wrapper and its command, no clean-up
        holder.wait()
    start = time.monotonic()
    res = _run(["--gpus", "2", "--wait-s", "0", "--", *SHOW_ENV], gpu_env)
    assert res.returncode == 0 and "cvd=0,1" in res.stdout, res.stderr
    assert time.monotonic() - start < 10
    assert [e["event"] for e in _ledger(gpu_env)] == ["acquired", "acquired", "released"]  # the killed one never said


def test_a_command_sigkilled_alone_frees_its_devices_and_fails_the_job(gpu_env, tmp_path):
    pid_file = tmp_path / "cmd.pid"
    job = subprocess.Popen([*WRAP, "--gpus", "1", "--", "sh", "-c", f"echo $$ > {pid_file}; exec sleep 60"],
                           env=gpu_env, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), what="the command's start")
    os.kill(int(pid_file.read_text()), signal.SIGKILL)
    assert job.wait(timeout=30) == 128 + signal.SIGKILL
    assert "released GPU 0" in job.stderr.read()
    assert _run(["--gpus", "2", "--wait-s", "0", "--", "true"], gpu_env).returncode == 0


def test_a_sigterm_to_the_wrapper_reaches_the_command(gpu_env, tmp_path):
    ready = tmp_path / "ready"
    job = subprocess.Popen([*WRAP, "--gpus", "1", "--", "sh", "-c",
                            f'trap "exit 7" TERM; touch {ready}; while :; do sleep 0.05; done'],
                           env=gpu_env, stderr=subprocess.PIPE, text=True)
    _wait_for(ready.exists, what="the command's start")
    job.send_signal(signal.SIGTERM)  # to the wrapper only (as `timeout` or `kill PID` would)
    assert job.wait(timeout=30) == 7  # the command's own exit
    assert "released GPU 0 after" in job.stderr.read()


def test_a_wrapper_sigkilled_alone_leaves_its_command_holding_the_devices(gpu_env, tmp_path):
    """The command inherits the locked descriptors: while it runs (on the GPU) its devices stay held, even without the
    wrapper; the next job waits for it (logged) and gets them when it ends."""
    env = {**gpu_env, D.COUNT_ENV: "1"}
    pid_file = tmp_path / "cmd.pid"
    wrapper = subprocess.Popen([*WRAP, "--gpus", "1", "--", "sh", "-c", f"echo $$ > {pid_file}; exec sleep 3"],
                               env=env, stderr=subprocess.DEVNULL)
    _wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), what="the command's start")
    wrapper.kill()
    wrapper.wait()
    cmd_pid = int(pid_file.read_text())
    assert _alive(cmd_pid)  # the orphaned command still runs
    assert _run(["--gpus", "1", "--wait-s", "0", "--", "true"], env).returncode != 0
    waited = _run(["--gpus", "1", "--wait-s", "30", "--", "true"], env)
    assert waited.returncode == 0, waited.stderr
    assert "waiting for 1 free GPU(s) of 1 (held: GPU 0: pid" in waited.stderr
    assert not _alive(cmd_pid)  # got the device only once the command had ended


# ---------------------------------------------------------------------------------------------------------------------
# Through the workflow

BASE = "model~tiny/algo~base/k~1/n~1/reward~pass/seed~0"
BENCHES = ("arithmetic", "arithmetic_clean", "arithmetic_seen")  # the micro config's test set + contamination sets


@pytest.mark.timeout(600)
def test_concurrent_generate_jobs_of_a_snakemake_run_never_share_a_device(gpu_env, tmp_path):
    cfg = load_yaml(MICRO)
    cfg["models"]["tiny"]["pretrain_args"].update(steps=2, eval_every=0, eval_problems=4, batch_size=16)
    cfg["eval"]["gpus"] = 1  # hf backend on CPU: the wrapper assigns the declared devices all the same
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    wd = tmp_path / "wd"
    wd.mkdir()
    targets = [f"results/eval/{BASE}/{b}/samples.jsonl" for b in BENCHES]
    res = subprocess.run(snakemake_cmd(wd, *targets, "--resources", "gpu=2", configfile=config), cwd=REPO,
                         env=gpu_env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]

    events = _ledger(gpu_env)
    starts = {e["pid"]: e for e in events if e["event"] == "acquired"}
    ends = {e["pid"]: e for e in events if e["event"] == "released"}
    assert len(starts) == len(ends) == len(BENCHES) and set(starts) == set(ends), events
    assert all(len(starts[p]["gpus"]) == 1 and ends[p]["rc"] == 0 for p in starts), events
    jobs = [(starts[p]["gpus"], starts[p]["t"], ends[p]["t"]) for p in starts]  # (devices, from, to)
    overlapping = [(a, b) for i, a in enumerate(jobs) for b in jobs[i + 1:] if a[1] < b[2] and b[1] < a[2]]
    assert overlapping, f"no two generate jobs ran at the same time: {jobs}"  # else the check below proves nothing
    for a, b in overlapping:
        assert set(a[0]).isdisjoint(b[0]), f"jobs running at the same time shared a device: {a} {b}"
    for bench in BENCHES:
        log = (wd / "results" / "logs" / "eval" / BASE / bench / "generate.log").read_text()
        assert log.startswith("rspo_core.devices: GPU "), log[:500]
        assert "of 2 (RSPO_GPU_COUNT) for this job: CUDA_VISIBLE_DEVICES=" in log.splitlines()[0]


def test_gpu_rules_of_the_paper_config_start_through_the_wrapper():
    commands = dry_run(str(REPO / "config" / "paper.yaml")).commands
    wrap = "python -m rspo_core.devices --gpus {} -- python -m {}"
    for rule, gpus, module in (("train", 8, "rspo_patch.openrlhf.launch"), ("generate", 1, "analysis.generate"),
                               ("verify", 1, "analysis.verify")):
        assert all(wrap.format(gpus, module) in cmd for _, cmd in commands[rule]), rule
    assert not any("rspo_core.devices" in (cmd or "") for rule in ("score", "figure", "aggregate")
                   for _, cmd in commands[rule])


def test_the_default_config_has_no_wrapper_in_any_command():
    commands = dry_run(str(REPO / "config" / "config.yaml")).commands
    assert {"train", "generate", "verify"} <= set(commands)
    assert not any("rspo_core.devices" in (cmd or "") for jobs in commands.values() for _, cmd in jobs)
