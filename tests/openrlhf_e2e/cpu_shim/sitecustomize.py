"""Loaded by Python at start-up from PYTHONPATH (test tier tests/openrlhf_e2e only): every process of a run — the
Snakemake job, the launcher, Ray workers, vLLM's engine subprocess — imports it. It does nothing unless
RSPO_CPU_SHIM=1, then installs ``rspo_cpu_shim`` (device plumbing for OpenRLHF on a CPU-only machine) and, with
RSPO_CPU_PROBE_FILE set, ``rspo_logprob_probe`` (a read-only weight-sync check)."""

import os

if os.environ.get("RSPO_CPU_SHIM") == "1":
    import rspo_cpu_shim

    rspo_cpu_shim.install()
    if os.environ.get("RSPO_CPU_PROBE_FILE"):
        import rspo_logprob_probe

        rspo_logprob_probe.install()
