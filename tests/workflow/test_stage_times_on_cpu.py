"""benchmarks/stage_times.py on a Snakemake 9 log excerpt (the wording of the log of a real default run), timed by
hand: per-rule job counts, wall and core seconds (wall x threads), and the run's wall time."""

from __future__ import annotations

import importlib.util

from wf_helpers import REPO

spec = importlib.util.spec_from_file_location("stage_times", REPO / "benchmarks" / "stage_times.py")
stage_times = importlib.util.module_from_spec(spec)
spec.loader.exec_module(stage_times)

LOG = """\
[Wed Dec  2 06:00:43 2026]
localrule arithmetic:
    output: results/data/arithmetic_train.jsonl
    jobid: 12
    reason: Missing output files
    resources: tmpdir=/tmp

[Wed Dec  2 06:00:44 2026]
Finished jobid: 12 (Rule: arithmetic)
1 of 4 steps (25%) done

[Wed Dec  2 06:00:44 2026]
localrule pretrain_model:
    jobid: 11
    wildcards: model=tiny
    threads: 2
    resources: tmpdir=/tmp

[Wed Dec  2 06:00:45 2026]
rule train:
    jobid: 20
    wildcards: cell=model~tiny/algo~pg/k~1/n~16/reward~pass/seed~0

[Wed Dec  2 06:01:45 2026]
Finished jobid: 11 (Rule: pretrain_model)

[Wed Dec  2 06:02:15 2026]
Finished jobid: 20 (Rule: train)

[Wed Dec  2 06:02:16 2026]
rule train:
    jobid: 21
"""


def test_jobs_are_paired_and_summed_per_rule():
    jobs = stage_times.parse_log(LOG.splitlines(keepends=True))
    assert {j: (v["rule"], v["threads"]) for j, v in jobs.items()} == {
        12: ("arithmetic", 1), 11: ("pretrain_model", 2), 20: ("train", 1), 21: ("train", 1)}
    assert jobs[21]["end"] is None  # started, never finished: left out of the table
    rows, wall = stage_times.stage_table(jobs)
    by_rule = {r[0]: r[1:] for r in rows}
    assert by_rule["pretrain_model"] == (1, 61.0, 122.0, 61.0)  # 06:00:44 -> 06:01:45 on 2 threads
    assert by_rule["train"] == (1, 90.0, 90.0, 90.0)  # 06:00:45 -> 06:02:15
    assert by_rule["arithmetic"] == (1, 1.0, 1.0, 1.0)
    assert wall == 92.0  # first start 06:00:43 -> last finish 06:02:15
    assert [r[0] for r in rows] == ["pretrain_model", "train", "arithmetic"]  # by core-seconds
