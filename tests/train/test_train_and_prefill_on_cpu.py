"""analysis.train_and_prefill: the workflow's local training job trains a cell, then samples its evaluation into the
generate jobs' partial files. The reference is a generate run of its own, in a fresh process, on the saved model:
the generate job that finalises the pre-filled file must end with exactly those bytes, without importing torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from analysis import train_and_prefill as TP

REPO = Path(__file__).resolve().parents[2]
SMALL = dict(hidden=32, layers=2, heads=2, intermediate=64)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from analysis.datasets import make_arithmetic
    from rspo_patch.pretrain import pretrain

    d = tmp_path_factory.mktemp("prefill")
    make_arithmetic(d / "train.jsonl", d / "test.jsonl", tiers=["add1"], n_train=80, n_test=20, seed=0)
    (d / "clean.jsonl").write_text("".join(json.dumps({"id": f"c{i}", "question": f"{i}+{9 - i}", "answer": "9"})
                                           + "\n" for i in range(10)))
    base = d / "base"
    pretrain(str(d / "train.jsonl"), str(d / "test.jsonl"), str(base), steps=30, expect_pass1=(0.0, 1.0),
             batch_size=64, lr=3e-3, warmup_steps=5, min_lr_ratio=1.0, eval_every=30, eval_samples=2,
             max_new_tokens=3, progress=False, model_kwargs=SMALL)
    return d, base


def _train(d: Path, base: Path, out: Path) -> list[str]:
    return ["--model", str(base), "--data", str(d / "train.jsonl"), "--out", str(out), "--estimator", "rspo_pass",
            "--k", "2", "--n", "4", "--prompts-per-step", "8", "--steps", "3", "--max-new-tokens", "3", "--lr", "1e-3",
            "--warmup-steps", "1", "--no-progress", "--tensorboard", "off", "--seed", "3", "--template", "plain"]


def _gen(model: Path, data: Path, out: Path, partial: Path, bench: str) -> list[str]:
    return ["--model", str(model), "--data", str(data), "--out", str(out), "--partial", str(partial), "--benchmark",
            bench, "--n", "8", "--temperature", "1.0", "--top-p", "1.0", "--max-new-tokens", "3", "--template",
            "plain", "--seed", "0", "--backend", "hf", "--batch-size", "64"]


def _python(code: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    return res.stdout + res.stderr


# finalises like the workflow's generate job, and reports whether torch / transformers were imported
FINALISE = ("import sys\nfrom analysis.generate import main\nrc = main(sys.argv[1:])\n"
            "print('HEAVY', sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n")


def test_prefilled_samples_are_the_bytes_a_separate_generate_job_writes(setup, tmp_path):
    d, base = setup
    run, model = tmp_path / "run", tmp_path / "run" / "model"
    benches = {"arith": d / "test.jsonl", "clean": d / "clean.jsonl"}
    argv = _train(d, base, run)
    for b, data in benches.items():
        argv += [TP.THEN, *_gen(model, data, tmp_path / "eval" / b / "samples.jsonl", tmp_path / "partial" / f"{b}.jsonl",
                                b)]
    _python("import sys\nfrom analysis.train_and_prefill import main\nmain(sys.argv[1:])\n", *argv)
    assert (model / "model.safetensors").is_file() and (run / "train_log.jsonl").is_file()
    for b, data in benches.items():
        out, partial = tmp_path / "eval" / b / "samples.jsonl", tmp_path / "partial" / f"{b}.jsonl"
        assert not out.exists(), "the train job leaves samples.jsonl to the generate job"
        assert partial.is_file() and Path(f"{partial}.inputs.json").is_file()
        log = _python(FINALISE, *_gen(model, data, out, partial, b))
        assert ", 0 to generate" in log and "HEAVY []" in log, log[-2000:]
        assert out.is_file() and not partial.exists() and not Path(f"{partial}.inputs.json").exists()
        # the reference: the saved model sampled by a generate run of its own (fresh process, its own partial file)
        ref = tmp_path / "ref" / b / "samples.jsonl"
        log = _python("import sys\nfrom analysis.generate import main\nmain(sys.argv[1:])\n",
                      *_gen(model, data, ref, tmp_path / "ref_partial" / f"{b}.jsonl", b))
        assert ", 0 done," in log
        rows = [json.loads(x) for x in out.read_text().splitlines()]
        ref_rows = [json.loads(x) for x in ref.read_text().splitlines()]
        assert len(rows) == 8 * sum(1 for _ in open(data)), b
        assert rows == ref_rows, f"{b}: pre-filled samples differ from a separate generate run"


def test_a_prefill_from_other_weights_is_regenerated_not_reused(setup, tmp_path):
    """The generate job trusts a pre-filled file only for the model it was made from (sha256 of its files)."""
    d, base = setup
    run, model = tmp_path / "run", tmp_path / "run" / "model"
    out, partial = tmp_path / "samples.jsonl", tmp_path / "partial.jsonl"
    argv = [*_train(d, base, run), TP.THEN, *_gen(model, d / "test.jsonl", out, partial, "arith")]
    TP.main(argv)
    other = tmp_path / "other"  # what the cell's model folder would hold after a retraining that ended elsewhere
    TP.main([*_train(d, base, other), "--lr", "5e-3"])
    log = _python(FINALISE, *_gen(other / "model", d / "test.jsonl", out, partial, "arith"))
    assert "made from other inputs (model_sha256" in log and ", 0 done, 20 to generate" in log, log[-2000:]


@pytest.mark.parametrize("tail, match", [
    ([TP.THEN], "group 1 is empty"),
    ([TP.THEN, "--model", "M", "--data", "D", "--out", "O", "--benchmark", "b"], "group 1 has no --partial"),
    ([TP.THEN, "--model", "M", "--data", "D", "--out", "O", "--partial", "P", "--benchmark", "b", "--leave-partial"],
     "group 1 has --leave-partial"),
    ([TP.THEN, "--model", "M", "--data", "D", "--out", "O", "--partial", "P", "--benchmark", "b", "--n", "0"],
     r"group 1: n=0: expected an integer >= 1"),
    (["--estimator", "no_such"], "no_such"),
])
def test_bad_flags_are_one_line_before_any_training(tail, match, tmp_path):
    argv = ["--model", str(tmp_path / "absent"), "--data", str(tmp_path / "absent.jsonl"), "--out", str(tmp_path / "o"),
            *tail]
    with pytest.raises(ValueError, match=match):
        TP.check_argv(argv)
    with pytest.raises(ValueError, match=match):
        TP.main(argv)
    assert not (tmp_path / "o").exists()


def test_split_groups():
    assert TP.split_groups(["--a", "1", TP.THEN, "--b", TP.THEN, "--c", "2"]) == (["--a", "1"], [["--b"], ["--c", "2"]])
    assert TP.split_groups(["--a"]) == (["--a"], [])


def test_rerun_after_an_evaluation_change_resumes_from_the_final_checkpoint_and_only_samples(setup, tmp_path, caplog):
    """What the workflow does when eval settings change (the train job's params change): the rerun job finds the
    final checkpoint, trains nothing, writes the same weights, and samples with the new settings."""
    import logging

    d, base = setup
    ckpt = tmp_path / "ckpt"
    first, second = tmp_path / "first", tmp_path / "second"
    partial = tmp_path / "partial.jsonl"
    gen = _gen(first / "model", d / "test.jsonl", tmp_path / "samples.jsonl", partial, "arith")
    TP.main([*_train(d, base, first), "--ckpt-dir", str(ckpt), TP.THEN, *gen])
    seed0 = partial.read_bytes()
    gen = _gen(second / "model", d / "test.jsonl", tmp_path / "samples.jsonl", partial, "arith")
    gen[gen.index("--seed") + 1] = "1"
    with caplog.at_level(logging.INFO):
        TP.main([*_train(d, base, second), "--ckpt-dir", str(ckpt), TP.THEN, *gen])
    assert "(step 3)" in caplog.text and "resumed from" in caplog.text
    assert (first / "model" / "model.safetensors").read_bytes() == (second / "model" / "model.safetensors").read_bytes()
    assert "made from other inputs" in caplog.text and partial.read_bytes() != seed0
    assert all(json.loads(x)["gen_config"]["seed"] == 1 for x in partial.read_text().splitlines())
