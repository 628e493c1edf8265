"""Every `python -m <module> ...` command the rules build parses with that module's REAL argument parser.

The shell commands of a dry run of each shipped config are cut into their `python -m MODULE ARGS` parts; each part
goes to MODULE.main(ARGS) with argparse's parse_args wrapped to stop right after parsing (nothing runs). A flag the
CLI does not know, or a bad value, makes argparse exit with status 2 and fails the test. The OpenRLHF launcher has its
own test (test_openrlhf_command_on_cpu.py), the end-to-end test runs the default-config commands for real.
"""

from __future__ import annotations

import argparse
import importlib
import re
import shlex

import pytest
from wf_helpers import REPO, dry_run

MAINS = {  # module of `python -m` -> where its main(argv) lives
    "analysis.datasets": "analysis.datasets",
    "analysis.models": "analysis.models",
    "analysis.generate": "analysis.generate",
    "analysis.verify": "analysis.verify",
    "analysis.metrics": "analysis.metrics",
    "analysis.aggregate": "analysis.aggregate",
    "analysis.claims": "analysis.claims",
    "analysis.base_models": "analysis.base_models",
    "analysis.figures": "analysis.figures.__main__",
    "analysis.report": "analysis.report",
    "analysis.contamination": "analysis.contamination",
    "rspo_patch.pretrain": "rspo_patch.pretrain",
    "rspo_patch.train_local": "rspo_patch.train_local",
    "analysis.train_and_prefill": "analysis.train_and_prefill",
    "rspo_patch.bandit": "rspo_patch.bandit",
    "rspo_core.devices": "rspo_core.devices",  # the GPU rules' device wrapper: `... --gpus N -- python -m MODULE ...`
}


class _Parsed(Exception):
    pass


def _commands(config: str, targets=("all",)) -> dict[str, list[str]]:
    """rule -> shell commands of the (cached) dry runs of ``config`` for each target."""
    out: dict[str, list[str]] = {}
    for target in targets:
        for rule, jobs in dry_run(str(REPO / config), () if target == "all" else (target,)).commands.items():
            out.setdefault(rule, []).extend(cmd for _, cmd in jobs if cmd)
    return out


def _python_calls(cmd: str, *, wrapper: bool = True) -> list[tuple[str, list[str]]]:
    """(module, argv) of every `python -m module ...` in a shell command (redirections and env prefixes dropped). The
    device wrapper of the GPU rules (`python -m rspo_core.devices --gpus N -- python -m MODULE ...`) is a call of its
    own, left out with ``wrapper=False``."""
    calls = []
    for part in re.split(r"&&|;| -- (?=python -m )", cmd):
        m = re.search(r"python -m ([\w.]+)(.*)", part, flags=re.S)
        if not m or (not wrapper and m.group(1) == "rspo_core.devices"):
            continue
        args = re.split(r"\s+>>?\s", m.group(2))[0]
        calls.append((m.group(1), shlex.split(args)))
    return calls


@pytest.fixture
def parse_only():
    original = argparse.ArgumentParser.parse_args

    def stop(self, args=None, namespace=None):
        ns = original(self, args, namespace)
        raise _Parsed(ns)

    def run(module: str, argv: list[str]):
        main = importlib.import_module(MAINS[module]).main
        # patched only around main(): the dry runs that produce the commands parse flags too (validate.smk)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(argparse.ArgumentParser, "parse_args", stop)
            with pytest.raises(_Parsed) as parsed:
                main(argv)
        return parsed.value.args[0]

    return run


@pytest.mark.parametrize("config, targets", [
    ("config/config.yaml", ("all", "contamination")),
    ("config/smollm2.yaml", ("all", "contamination")),
    ("config/paper.yaml", ("all", "contamination")),
])
def test_every_rule_command_parses(config, targets, tmp_path, parse_only):
    commands = _commands(config, targets)
    seen = set()
    for rule, cmds in sorted(commands.items()):
        for cmd in cmds[:3]:  # jobs of one rule differ only in their wildcards
            for module, argv in _python_calls(cmd):
                if module == "rspo_patch.openrlhf.launch":
                    continue  # OpenRLHF's parser: test_openrlhf_command_on_cpu.py
                assert module in MAINS, f"rule {rule}: unexpected module {module}"
                ns = parse_only(module, argv)
                assert ns is not None
                seen.add(module)
    expected = {"analysis.generate", "analysis.verify", "analysis.metrics", "analysis.aggregate", "analysis.figures",
                "analysis.report", "analysis.contamination"}
    if config == "config/paper.yaml":
        expected.add("rspo_core.devices")  # the GPU rules start through it
    assert expected <= seen, expected - seen


def test_paper_eval_commands_carry_the_protocol(tmp_path, parse_only):
    commands = _commands("config/paper.yaml")
    gen = next(c for c in commands["generate"] if "/aime24/" in c and "algo~base" in c)
    (module, argv), = _python_calls(gen, wrapper=False)
    ns = parse_only(module, argv)
    assert (ns.n, ns.temperature, ns.top_p, ns.max_new_tokens) == (256, 0.6, 0.95, 3000)  # AIME: 256 samples
    assert ns.backend == "vllm" and ns.template == "qwen_math_cot" and ns.max_model_len == 4096
    ver = commands["verify"][0]
    (module, argv), = _python_calls(ver, wrapper=False)
    ns = parse_only(module, argv)
    assert ns.verifier == "xverify" and ns.xverify_model.endswith("models/xverify")


@pytest.mark.parametrize("config, prefilled", [
    ("config/config.yaml", True),  # local trainer, hf sampling, one thread each: the train job pre-fills
    ("config/smollm2.yaml", True),
    ("config/paper.yaml", False),  # OpenRLHF + vLLM: the generate jobs sample
])
def test_train_jobs_prefill_exactly_the_generate_jobs_of_their_cell(config, prefilled):
    """Every trained cell's evaluation is pre-filled by its train job with the very flags of the generate job that
    owns the samples (so the record matches and the generate job only renames), and nothing else is pre-filled."""
    from analysis.train_and_prefill import split_groups

    commands = _commands(config)
    generate = {}
    for cmd in commands["generate"]:
        (module, argv), = _python_calls(cmd, wrapper=False)
        generate[argv[argv.index("--out") + 1]] = argv
    groups = {}
    for cmd in commands["train"]:
        for module, argv in _python_calls(cmd):
            if module == "analysis.train_and_prefill":
                for g in split_groups(argv)[1]:
                    groups[g[g.index("--out") + 1]] = g
    if not prefilled:
        assert groups == {}
        return
    trained = {out for out in generate if "/algo~base/" not in out}
    assert trained and set(groups) == trained
    for out, g in groups.items():
        assert g == generate[out], out
