"""The synthetic contamination benchmarks (issue 12 item 5): arithmetic_seen is flagged by the real n-gram audit row for
row, arithmetic_clean is cleared; both are deterministic from the seed and disjoint as the docstrings claim.

The default config's own data and contamination sections drive the generator and the audit (both CLIs, on the files
they write), so a config edit that breaks the claim fails here.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from analysis import contamination as AC
from analysis.arithmetic import make_arithmetic_sets
from analysis.datasets import read_jsonl

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
_Q_RE = re.compile(r"^(\d+)([+\-*])(\d+)$")
# sha256 of results/data/arithmetic.jsonl as the default config wrote it before arithmetic_clean existed (generator of
# commit 419cea3, tiers add2, n_train 9800, n_test 200, seed 0): the pre-training held-out set must not move.
DEFAULT_TEST_SHA256 = "079b891f0cad12e35d8c33de26b68b0115ad4732e22fb81ef86d9986cfb03757"


def _flags(args: dict) -> list[str]:
    """``{"n_train": 5, "tiers": "add2"}`` -> ``["--n-train", "5", "--tiers", "add2"]`` (what the rule passes)."""
    out = []
    for key, value in args.items():
        out.append("--" + key.replace("_", "-"))
        out.extend(str(v) for v in value) if isinstance(value, list) else out.append(str(value))
    return out


def _generate(d: Path, args: dict) -> dict[str, Path]:
    """Run ``python -m analysis.datasets arithmetic`` with ``args`` into folder ``d``; the four paths it wrote."""
    d.mkdir(parents=True, exist_ok=True)
    paths = {name: d / f"{name}.jsonl" for name in ("train", "test", "clean", "seen")}
    cmd = [sys.executable, "-m", "analysis.datasets", "arithmetic", "--train", str(paths["train"]),
           "--test", str(paths["test"]), "--clean", str(paths["clean"]), "--seen", str(paths["seen"]), *_flags(args)]
    r = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    return paths


def _audit(d: Path, paths: dict[str, Path], n: int) -> dict:
    """Run ``python -m analysis.contamination`` on the generated files; the JSON document it wrote."""
    cmd = [sys.executable, "-m", "analysis.contamination", "--train", str(paths["train"]),
           "--bench", f"arithmetic={paths['test']}", "--bench", f"arithmetic_clean={paths['clean']}",
           "--bench", f"arithmetic_seen={paths['seen']}", "--out-json", str(d / "audit.json"),
           "--out-csv", str(d / "audit.csv"), "--n", str(n)]
    r = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads((d / "audit.json").read_text())


@pytest.fixture(scope="module")
def default_config() -> dict:
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


@pytest.fixture(scope="module")
def default_sets(tmp_path_factory, default_config) -> dict[str, Path]:
    return _generate(tmp_path_factory.mktemp("default"), default_config["data"]["arithmetic"])


def test_default_config_audit_flags_every_seen_row_and_no_clean_row(default_sets, default_config, tmp_path):
    contam = default_config["contamination"]
    assert contam["benchmarks"] == ["arithmetic_clean", "arithmetic_seen"]
    n = int((contam.get("args") or {}).get("n", 13))
    assert n == 13, "the default config audits at GPT-3's n = 13 (the exact-duplicate check covers short questions)"
    doc = _audit(tmp_path, default_sets, n)
    seen_rows, clean_rows = read_jsonl(default_sets["seen"]), read_jsonl(default_sets["clean"])
    arith = default_config["data"]["arithmetic"]
    assert (len(seen_rows), len(clean_rows)) == (arith["n_seen"], arith["n_clean"])

    seen = doc["benchmarks"]["arithmetic_seen"]
    assert seen["n_flagged"] == seen["n_problems"] == len(seen_rows) and seen["frac_flagged"] == 1.0
    by_id = {f["id"]: f for f in seen["flagged"]}
    assert set(by_id) == {r["id"] for r in seen_rows}
    for row in seen_rows:  # each flag points at the very training row the seen row was copied from
        assert by_id[row["id"]]["exact"] is True
        assert by_id[row["id"]]["train_ids"] == [row["meta"]["train_id"]]

    for name in ("arithmetic_clean", "arithmetic"):
        res = doc["benchmarks"][name]
        assert res["n_flagged"] == 0 and res["n_exact"] == 0 and res["flagged"] == [], name
    assert doc["benchmarks"]["arithmetic_clean"]["n_problems"] == len(clean_rows)


def test_default_sets_are_disjoint_and_well_formed(default_sets, default_config):
    rows = {k: read_jsonl(p) for k, p in default_sets.items()}
    q = {k: [r["question"] for r in v] for k, v in rows.items()}
    assert not set(q["clean"]) & set(q["train"]) and not set(q["clean"]) & set(q["test"])
    assert not set(q["train"]) & set(q["test"])
    assert len(set(q["clean"])) == len(q["clean"]) and len(set(q["seen"])) == len(q["seen"])
    train_by_id = {r["id"]: r for r in rows["train"]}
    for r in rows["seen"]:  # verbatim copies of training rows
        src = train_by_id[r["meta"]["train_id"]]
        assert (r["question"], r["answer"]) == (src["question"], src["answer"])
    ids = [r["id"] for v in rows.values() for r in v]
    assert len(ids) == len(set(ids))
    tiers = default_config["data"]["arithmetic"]["tiers"]
    assert tiers == "add2"
    for r in rows["clean"]:  # same distribution as the trained tier: a+b with a, b in 0..99, gold = a + b
        m = _Q_RE.match(r["question"])
        a, op, b = int(m[1]), m[2], int(m[3])
        assert op == "+" and 0 <= a <= 99 and 0 <= b <= 99 and r["answer"] == str(a + b)
        assert list(r) == ["id", "question", "answer", "meta"] and r["meta"]["tier"] == "add2"


def test_generation_is_deterministic_and_seeded(default_sets, default_config, tmp_path):
    again = _generate(tmp_path / "again", default_config["data"]["arithmetic"])
    for name, path in default_sets.items():
        assert path.read_bytes() == again[name].read_bytes(), name
    other = _generate(tmp_path / "seed1", {**default_config["data"]["arithmetic"], "seed": 1})
    for name in ("clean", "seen"):
        assert other[name].read_bytes() != default_sets[name].read_bytes(), name


def _generate_without_sets(d: Path, args: dict) -> dict[str, Path]:
    d.mkdir(parents=True)
    paths = {name: d / f"{name}.jsonl" for name in ("train", "test")}
    cmd = [sys.executable, "-m", "analysis.datasets", "arithmetic", "--train", str(paths["train"]), "--test",
           str(paths["test"]), *_flags(args)]
    subprocess.run(cmd, cwd=REPO, env=ENV, check=True, capture_output=True)
    return paths


def test_default_clean_set_is_carved_from_the_old_training_set_test_set_unchanged(default_sets, default_config,
                                                                                   tmp_path):
    """The default moved n_clean rows out of n_train: the test set (the pre-training held-out set) is byte-identical
    to the one the config wrote before, and train + clean are exactly the old training questions."""
    arith = default_config["data"]["arithmetic"]
    old_args = {k: v for k, v in arith.items() if k not in ("n_clean", "n_seen")}
    old_args["n_train"] = arith["n_train"] + arith["n_clean"]
    old = _generate_without_sets(tmp_path / "old", old_args)
    assert old["test"].read_bytes() == default_sets["test"].read_bytes()
    assert hashlib.sha256(default_sets["test"].read_bytes()).hexdigest() == DEFAULT_TEST_SHA256
    q = {k: {r["question"] for r in read_jsonl(p)} for k, p in default_sets.items()}
    assert q["train"] | q["clean"] == {r["question"] for r in read_jsonl(old["train"])}


@pytest.mark.parametrize("tiers", ["add2", "add1,mul1,sub2"])
def test_sets_without_clean_and_seen_are_the_plain_train_test_files(tiers, tmp_path):
    args = {"tiers": tiers, "n_train": 120, "n_test": 30, "seed": 4}
    plain = _generate_without_sets(tmp_path / "plain", args)
    with_seen = _generate(tmp_path / "seen", {**args, "n_seen": 15})
    moved = _generate(tmp_path / "moved", {**args, "n_train": 90, "n_clean": 30})
    for name in ("train", "test"):
        assert plain[name].read_bytes() == with_seen[name].read_bytes(), name
    assert plain["test"].read_bytes() == moved["test"].read_bytes()


def test_mixed_tiers_split_like_the_test_set_and_audit_at_13():
    tiers = ["add2", "sub2", "word"]
    sets = make_arithmetic_sets(tiers=tiers, n_train=3000, n_test=90, n_clean=90, n_seen=60, seed=0)
    train, test, clean, seen = (sets[k] for k in ("train", "test", "clean", "seen"))
    assert [sum(r["meta"]["tier"] == t for r in clean) for t in tiers] == [30, 30, 30]
    assert [sum(r["meta"]["tier"] == t for r in seen) for t in tiers] == [20, 20, 20]
    used = {r["question"] for r in train + test}
    assert not {r["question"] for r in clean} & used
    index = AC.build_index(train, 13)
    assert AC.audit_rows("seen", seen, index, 13)["n_flagged"] == 60
    assert AC.audit_rows("clean", clean, index, 13)["n_flagged"] == 0


def test_small_n_would_falsely_flag_clean_rows_of_mixed_operators():
    """Why the config keeps n = 13: the tokeniser drops operators, so at n = 2 a clean "a-b" shares the one 2-gram of
    a trained "a+b" (the module docstring's measurement)."""
    sets = make_arithmetic_sets(tiers=["add2", "sub2"], n_train=9000, n_test=100, n_clean=100, seed=0)
    flagged = AC.audit_rows("clean", sets["clean"], AC.build_index(sets["train"], 2), 2)["flagged"]
    train_q = {r["question"] for r in sets["train"]}

    def twin(q: str) -> str:
        a, op, b = _Q_RE.match(q).groups()
        return f"{a}{'+' if op == '-' else '-'}{b}"

    twins = {r["id"] for r in sets["clean"] if twin(r["question"]) in train_q}
    assert {f["id"] for f in flagged} == twins and len(twins) >= 20  # 44 of 100 with seed 0
    assert not any(f["exact"] for f in flagged)
    assert AC.audit_rows("clean", sets["clean"], AC.build_index(sets["train"], 13), 13)["n_flagged"] == 0


@pytest.mark.parametrize("kw, match", [
    ({"n_clean": 1}, r"tier 'add1' has only 100 distinct problems; requested 90 train \+ 1 clean \+ 10 test = 101"),
    ({"n_seen": 91}, r"tier 'add1' has 90 training rows; requested n_seen share 91"),
    ({"n_clean": -1}, r"n_clean=-1, n_seen=0: expected non-negative sizes"),
])
def test_contamination_bad_sizes(kw, match):
    with pytest.raises(ValueError, match=match):
        make_arithmetic_sets(tiers=["add1"], n_train=90, n_test=10, seed=0, **kw)  # add1: 100 problems


def test_cli_bad_size_is_one_line_and_writes_nothing(tmp_path):
    out = {n: tmp_path / f"{n}.jsonl" for n in ("train", "test", "clean")}
    r = subprocess.run([sys.executable, "-m", "analysis.datasets", "arithmetic", "--train", str(out["train"]),
                        "--test", str(out["test"]), "--clean", str(out["clean"]), "--tiers", "add1", "--n-train", "90",
                        "--n-test", "10", "--n-clean", "5"], cwd=REPO, env=ENV, capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith("error: tier 'add1' has only 100 distinct problems")
    assert not any(p.exists() for p in out.values())
