"""Per-stage times of a finished Snakemake run, from Snakemake's own log.

    python benchmarks/stage_times.py [.snakemake/log/<latest>.snakemake.log] [--cores N]

Snakemake writes, for every job, a block ``[<timestamp>]`` / ``rule NAME:`` / ... / ``jobid: J`` / ... ``threads: T``
when it starts the job, and ``[<timestamp>]`` / ``Finished jobid: J (Rule: NAME)`` (Snakemake 9; ``Finished job J.``
in 8) when it ends (``localrule`` for local rules).
This script pairs them and prints, per rule: the number of jobs, the summed wall seconds of its jobs, the summed
core-seconds (wall x threads) and the longest job, then the run's total wall time (first start to last finish).
Core-seconds over (cores x wall) is how busy the run kept the machine. Without an argument it reads the newest log in
``.snakemake/log/``.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import sys
from collections import defaultdict
from datetime import datetime

_STAMP = re.compile(r"^\[(?P<ts>\w{3} \w{3}\s+\d+ \d\d:\d\d:\d\d \d{4})\]$")
_RULE = re.compile(r"^(?:local)?rule (?P<rule>\w+):$")
_JOBID = re.compile(r"^\s+jobid: (?P<id>\d+)$")
_THREADS = re.compile(r"^\s+threads: (?P<n>\d+)$")
_DONE = re.compile(r"^Finished job(?:id:)? (?P<id>\d+)(?:\.| \(Rule: \w+\))$")  # Snakemake 8 / 9 wording


def parse_log(lines: list[str]) -> dict[int, dict]:
    """jobid -> {rule, threads, start, end} (datetimes; ``end`` None for a job that never finished)."""
    jobs: dict[int, dict] = {}
    stamp = None
    current = None  # the job block being read: {rule, start}
    for line in lines:
        line = line.rstrip("\n")
        m = _STAMP.match(line)
        if m:
            stamp = datetime.strptime(" ".join(m["ts"].split()), "%a %b %d %H:%M:%S %Y")
            current = None
            continue
        if (m := _RULE.match(line)) and stamp is not None:
            current = {"rule": m["rule"], "start": stamp, "threads": 1, "end": None}
            continue
        if current is not None and (m := _JOBID.match(line)):
            jobs[int(m["id"])] = current
            continue
        if current is not None and (m := _THREADS.match(line)):
            current["threads"] = int(m["n"])
            continue
        if (m := _DONE.match(line)) and int(m["id"]) in jobs:
            jobs[int(m["id"])]["end"] = stamp
    return jobs


def stage_table(jobs: dict[int, dict]) -> tuple[list[tuple], float]:
    """Rows (rule, jobs, wall_s, core_s, longest_s) sorted by core-seconds, and the run's wall seconds."""
    per = defaultdict(lambda: [0, 0.0, 0.0, 0.0])
    done = [j for j in jobs.values() if j["end"] is not None]
    for j in done:
        s = (j["end"] - j["start"]).total_seconds()
        row = per[j["rule"]]
        row[0] += 1
        row[1] += s
        row[2] += s * j["threads"]
        row[3] = max(row[3], s)
    rows = sorted(((r, *v) for r, v in per.items()), key=lambda r: -r[3])
    wall = (max(j["end"] for j in done) - min(j["start"] for j in done)).total_seconds() if done else 0.0
    return rows, wall


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("log", nargs="?", help="a .snakemake/log/*.snakemake.log file (default: the newest)")
    ap.add_argument("--cores", type=int, default=2, help="cores of the run, for the utilisation line")
    a = ap.parse_args(argv)
    path = a.log or max(glob.glob(".snakemake/log/*.snakemake.log"), key=os.path.getmtime, default=None)
    if path is None:
        print("no Snakemake log found in .snakemake/log/; pass one", file=sys.stderr)
        return 2
    with open(path) as f:
        jobs = parse_log(f.readlines())
    rows, wall = stage_table(jobs)
    print(f"{path}: {sum(r[1] for r in rows)} finished jobs, wall {wall:.0f} s")
    print(f"{'rule':<18}{'jobs':>6}{'wall_s':>10}{'core_s':>10}{'longest_s':>11}")
    for rule, n, w, c, longest in rows:
        print(f"{rule:<18}{n:>6}{w:>10.0f}{c:>10.0f}{longest:>11.0f}")
    core = sum(r[3] for r in rows)
    if wall:
        print(f"core-seconds {core:.0f} over {a.cores} cores x {wall:.0f} s wall: {core / (a.cores * wall):.0%} busy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
