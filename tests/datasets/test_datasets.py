"""analysis.datasets: every loader driven by hand-made fixtures in the data set's real raw schema; no network."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from analysis import datasets as D

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parents[2]


def load_fixture(name):
    return json.loads((FIXTURES / f"{name}.json").read_text())


def prep(name, tmp_path, **kw):
    out = tmp_path / f"{name}.jsonl"
    n = D.prepare(name, out, raw=load_fixture(name), allow_count_mismatch=True, **kw)
    rows = D.read_jsonl(out)
    assert n == len(rows)
    return rows


# ---------------------------------------------------------------------------------------------------------------------
# registry


def test_registry_covers_the_benchmarks_and_math_train():
    assert set(D.BENCHMARKS) == {"aime24", "amc", "amc23", "math500", "minerva", "olympiadbench", "aime25",
                                 "livemathbench", "math_train"}
    assert D.EVAL_BENCHMARKS == ["aime24", "amc", "amc23", "math500", "minerva", "olympiadbench", "aime25",
                                 "livemathbench"]
    mt = D.BENCHMARKS["math_train"]
    assert mt.split == "train" and mt.expected_rows == 7500 and len(mt.configs) == 7 and mt.is_train
    assert D.BENCHMARKS["aime25"].configs == ["AIME2025-I", "AIME2025-II"]
    assert D.BENCHMARKS["livemathbench"].gated and not D.BENCHMARKS["math500"].gated
    with pytest.raises(ValueError, match="unknown benchmark 'gsm8k'.*aime24"):
        D.get_spec("gsm8k")


# ---------------------------------------------------------------------------------------------------------------------
# each loader on its fixture


def test_aime24_keeps_source_id_and_strips_leading_zeros_visibly(tmp_path):
    rows = prep("aime24", tmp_path)
    assert [r["id"] for r in rows] == [D.content_id("aime24", r["problem"]) for r in load_fixture("aime24")]
    assert rows[0]["answer"] == "27" and rows[0]["meta"]["answer_raw"] == "027"
    assert rows[1]["answer"] == "1" and "answer_raw" not in rows[1]["meta"]
    assert rows[0]["meta"]["id"] == 60 and rows[0]["question"].startswith("Find the number of ordered pairs")


def test_amc23_float_strings_canonicalised_with_original_in_meta(tmp_path):
    rows = prep("amc23", tmp_path)
    assert [r["answer"] for r in rows] == ["36", "6", "7"]
    assert [r["meta"].get("answer_raw") for r in rows] == ["36.0", "6.0", None]
    assert all(isinstance(r["answer"], str) for r in rows)


def test_math500_keeps_latex_answers_and_metadata(tmp_path):
    rows = prep("math500", tmp_path)
    assert rows[0]["answer"] == "\\left( 3, \\frac{\\pi}{2} \\right)"
    assert rows[0]["meta"] == {"unique_id": "test/precalculus/807.json", "subject": "Precalculus", "level": 2}
    assert rows[1]["answer"] == "\\frac{5}{6}"


def test_minerva(tmp_path):
    rows = prep("minerva", tmp_path)
    assert [r["answer"] for r in rows] == ["580", "11"]
    assert rows[0]["question"].startswith("Preamble:")


def test_olympiadbench_list_answers_joined_and_flagged(tmp_path):
    rows = prep("olympiadbench", tmp_path)
    assert rows[0]["answer"] == "2, 3"
    assert rows[0]["meta"]["multiple_answer"] is True and rows[0]["meta"]["final_answer"] == ["$2$", "$3$"]
    assert rows[1]["answer"] == "80" and rows[1]["meta"]["unit"] == "km/h" and rows[1]["meta"]["multiple_answer"] is False
    assert rows[2]["answer"] == "\\frac{3}{4}" and rows[2]["meta"]["unit"] is None
    assert rows[0]["meta"]["source_id"] == 2231


def test_aime25_concatenates_configs_in_order(tmp_path):
    rows = prep("aime25", tmp_path)
    assert [r["meta"]["config"] for r in rows] == ["AIME2025-I", "AIME2025-I", "AIME2025-II"]
    assert [r["answer"] for r in rows] == ["70", "5", "19"]
    assert len({r["id"] for r in rows}) == 3


def test_livemathbench_with_raw_rows_needs_no_token(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    rows = prep("livemathbench", tmp_path)
    assert [r["answer"] for r in rows] == ["2", "B"]
    assert rows[1]["meta"]["question_type"] == "Multiple-Choice"


def test_math_train_answer_is_last_boxed_with_balanced_braces(tmp_path):
    rows = prep("math_train", tmp_path)
    assert [r["answer"] for r in rows] == ["\\frac{1}{2}", "7", "\\{2,3,5\\}", "1"]
    assert rows[0]["meta"]["type"] == "Algebra" and rows[0]["meta"]["level"] == "Level 1"
    assert "\\boxed" in rows[0]["meta"]["solution"]
    assert rows[2]["meta"]["config"] == "number_theory"


def test_math_train_row_without_box_is_an_error_when_too_many(tmp_path):
    raw = [{"problem": "p", "level": "Level 1", "type": "Algebra", "solution": "no box here"}]
    with pytest.raises(ValueError, match="1/1 rows have no extractable answer.*row 0: MATH solution has no"):
        D.prepare("math_train", tmp_path / "x.jsonl", raw=raw, allow_count_mismatch=True)
    assert not (tmp_path / "x.jsonl").exists()


def test_math_train_drops_a_rare_unboxed_row_with_a_warning(tmp_path, caplog):
    good = {"problem": "p", "level": "Level 1", "type": "Algebra", "solution": "so $\\boxed{4}$"}
    raw = [dict(good, problem=f"p{i}") for i in range(150)]
    raw[7]["solution"] = "the answer is four"
    with caplog.at_level("WARNING"):
        n = D.prepare("math_train", tmp_path / "x.jsonl", raw=raw, allow_count_mismatch=True)
    assert n == 149 and "dropped 1/150 rows" in caplog.text
    ids = [r["id"] for r in D.read_jsonl(tmp_path / "x.jsonl")]
    assert D.content_id("math_train", "p7") not in ids and ids[7] == D.content_id("math_train", "p8")


def test_benchmark_row_without_answer_is_never_dropped(tmp_path):
    raw = load_fixture("olympiadbench")
    raw[1]["final_answer"] = []
    with pytest.raises(ValueError, match="olympiadbench row 1: OlympiadBench final_answer"):
        D.prepare("olympiadbench", tmp_path / "o.jsonl", raw=raw, allow_count_mismatch=True)


def test_wrong_schema_names_missing_field(tmp_path):
    with pytest.raises(ValueError, match="lacks a non-empty 'problem' field"):
        D.prepare("math500", tmp_path / "x.jsonl", raw=[{"question": "q", "answer": "1"}], allow_count_mismatch=True)


# ---------------------------------------------------------------------------------------------------------------------
# row counts, gating, atomic writes


def test_row_count_mismatch_names_benchmark_got_expected(tmp_path):
    out = tmp_path / "aime24.jsonl"
    with pytest.raises(ValueError, match=r"'aime24'.*got 3 rows, expected 30"):
        D.prepare("aime24", out, raw=load_fixture("aime24"))
    assert not out.exists()


def test_row_count_exact_passes_without_escape_hatch(tmp_path):
    raw = load_fixture("aime24") * 10  # 30 rows, the registered count
    assert D.prepare("aime24", tmp_path / "a.jsonl", raw=raw) == 30


def test_gated_without_token_fails_before_loading(tmp_path, monkeypatch):
    def forbidden(*a, **k):
        raise AssertionError("the download must not be reached without a token")

    monkeypatch.setattr(D, "load_raw", forbidden)  # a tripwire, not a stand-in: the test passes only if never called
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    with pytest.raises(D.GatedDatasetError, match="accept its terms.*HF_TOKEN"):
        D.prepare("livemathbench", tmp_path / "l.jsonl")
    assert issubclass(D.GatedDatasetError, ValueError)


def test_write_jsonl_atomic_roundtrip_and_bad_json(tmp_path):
    p = tmp_path / "sub" / "x.jsonl"
    rows = [{"id": "a", "question": "ü 1+1", "answer": "2", "meta": {}}]
    assert D.write_jsonl_atomic(p, rows) == 1
    assert D.read_jsonl(p) == rows
    assert [f.name for f in p.parent.iterdir()] == ["x.jsonl"]  # no temp file left behind
    p.write_text('{"a": 1}\n[1, 2]\n')
    with pytest.raises(ValueError, match=":2: got a JSON list"):
        D.read_jsonl(p)


# ---------------------------------------------------------------------------------------------------------------------
# helpers


@pytest.mark.parametrize(
    "value, expected, raw",
    [("27.0", "27", "27.0"), (27.0, "27", 27.0), (27, "27", None), ("033", "33", "033"), ("0", "0", None),
     (0.5, "0.5", None), ("\\frac{1}{2}", "\\frac{1}{2}", None), (" 12 ", "12", " 12 "), ("-4.00", "-4", "-4.00"),
     ("2.50", "2.50", None)],
)
def test_answer_to_str(value, expected, raw):
    assert D.answer_to_str(value) == (expected, raw)


@pytest.mark.parametrize("bad", [None, True, [1], float("nan")])
def test_answer_to_str_rejects_non_scalars(bad):
    with pytest.raises(ValueError, match="gold answer"):
        D.answer_to_str(bad)


@pytest.mark.parametrize(
    "text, expected",
    [("so $\\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}"), ("\\boxed{1} then \\boxed{2}", "2"),
     ("\\boxed{\\{1,2\\}}", "\\{1,2\\}"), ("\\boxed 5.", "5"), ("\\fbox{3}", "3"), ("\\boxed{a}^{b}", "a"),
     ("none", None), ("\\boxed{x", None), ("\\boxed{\\text{(A)}}", "\\text{(A)}")],
)
def test_last_boxed(text, expected):
    assert D.last_boxed(text) == expected


def test_strip_math_delimiters():
    assert D.strip_math_delimiters("$x^2$") == "x^2"
    assert D.strip_math_delimiters("\\(3\\)") == "3"
    assert D.strip_math_delimiters("$a$ and $b$") == "$a$ and $b$"


# ---------------------------------------------------------------------------------------------------------------------
# synthetic arithmetic


def test_arithmetic_deterministic_disjoint_and_well_formed(tmp_path):
    kw = dict(tiers=["add1", "mul1", "add2", "word"], n_train=320, n_test=40)
    a = D.make_arithmetic_rows(seed=0, **kw)
    b = D.make_arithmetic_rows(seed=0, **kw)
    c = D.make_arithmetic_rows(seed=1, **kw)
    assert a == b and a != c
    train, test = a
    assert len(train) == 320 and len(test) == 40
    assert not ({r["question"] for r in train} & {r["question"] for r in test})
    assert len({r["question"] for r in train}) == 320
    for r in train + test:
        q, ans, tier = r["question"], r["answer"], r["meta"]["tier"]
        assert ans.lstrip("-").isdigit()
        if tier == "word":
            assert q == q.lower() and q.endswith("?")
        else:
            assert " " not in q and "=" not in q
            assert int(ans) == eval(q)  # "12+7" / "3*4" are valid Python expressions
            if tier in ("add1", "mul1"):
                assert max(r["meta"]["a"], r["meta"]["b"]) <= 9
    assert {r["meta"]["tier"] for r in train} == {"add1", "mul1", "add2", "word"}
    assert sum(r["meta"]["tier"] == "add1" for r in train) == 80  # 320 split evenly over 4 tiers


def test_arithmetic_files_match_rows(tmp_path):
    tr, te = tmp_path / "tr.jsonl", tmp_path / "te.jsonl"
    assert D.make_arithmetic(tr, te, tiers=["add2"], n_train=50, n_test=10, seed=3) == (50, 10)
    assert (D.read_jsonl(tr), D.read_jsonl(te)) == D.make_arithmetic_rows(tiers=["add2"], n_train=50, n_test=10,
                                                                          seed=3)


def test_arithmetic_whole_small_space_can_be_used():
    train, test = D.make_arithmetic_rows(tiers=["add1"], n_train=90, n_test=10, seed=0)
    assert len({r["question"] for r in train + test}) == 100


@pytest.mark.parametrize(
    "kw, match",
    [(dict(tiers=["add1"], n_train=95, n_test=10), "tier 'add1' has only 100 distinct problems; requested 95"),
     (dict(tiers=["add9"], n_train=5, n_test=1), "unknown arithmetic tier"),
     (dict(tiers=[], n_train=5, n_test=1), "tiers is empty"),
     (dict(tiers=["add1", "add1"], n_train=5, n_test=1), "duplicates"),
     (dict(tiers=["add1"], n_train=-1, n_test=1), "non-negative")],
)
def test_arithmetic_bad_input(kw, match):
    with pytest.raises(ValueError, match=match):
        D.make_arithmetic_rows(seed=0, **kw)


def test_cli_arithmetic_and_list(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    tr, te = tmp_path / "tr.jsonl", tmp_path / "te.jsonl"
    r = subprocess.run([sys.executable, "-m", "analysis.datasets", "arithmetic", "--train", str(tr), "--test", str(te),
                        "--tiers", "add1,mul1", "add2", "--n-train", "30", "--n-test", "6", "--seed", "0"],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert len(D.read_jsonl(tr)) == 30 and len(D.read_jsonl(te)) == 6
    assert {r["meta"]["tier"] for r in D.read_jsonl(tr)} == {"add1", "mul1", "add2"}
    r = subprocess.run([sys.executable, "-m", "analysis.datasets", "list"], cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and "livemathbench" in r.stdout and "7500" in r.stdout
    r = subprocess.run([sys.executable, "-m", "analysis.datasets", "arithmetic", "--train", str(tr), "--test", str(te),
                        "--tiers", "add1", "--n-train", "100", "--n-test", "5"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "tier 'add1' has only 100" in r.stderr


def test_load_raw_reads_a_local_parquet_dataset_through_datasets(tmp_path):
    """The real ``datasets.load_dataset`` path, offline: a local folder laid out like a hub repo."""
    import dataclasses

    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = load_fixture("amc23")
    (tmp_path / "repo" / "data").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "repo" / "data" / "test-00000-of-00001.parquet")
    spec = dataclasses.replace(D.BENCHMARKS["amc23"], hf_id=str(tmp_path / "repo"))
    tagged = D.load_raw(spec, cache_dir=tmp_path / "cache")
    assert [r for _, r in tagged] == rows and {c for c, _ in tagged} == {None}
    assert [r["answer"] for r in D.normalise_rows(spec, tagged)] == ["36", "6", "7"]


# ---------------------------------------------------------------------------------------------------------------------
# pinning: revisions, row counts, ids


# sha -> the hub page it was read from (commit / tree URL of that very data set); nothing else may be pinned.
VERIFIED_REVISIONS = {
    "math500": "ff5b20257d8185524591543f8ff5993951537bb8",  # .../datasets/HuggingFaceH4/MATH-500/commits/ff5b202...
    "amc": "b16c5c52362a8f0acafef95fd6d94a8468982e08",  # .../AI-MO/aimo-validation-amc/commit/b16c5c5...
    "olympiadbench": "3b426ee1d587c71b495146dde9f3e995ee7ac59f",  # .../Hothan/OlympiadBench/tree/3b426ee...
}


def test_every_data_set_is_pinned_or_marked_unverified():
    for name, spec in D.BENCHMARKS.items():
        assert spec.revision == VERIFIED_REVISIONS.get(name, D.REVISION_UNVERIFIED), name
        assert spec.revision_verified == (name in VERIFIED_REVISIONS)
    counts = {n: s.expected_rows for n, s in D.BENCHMARKS.items()}
    assert counts == {"aime24": 30, "amc": 83, "amc23": 40, "math500": 500, "minerva": 272, "olympiadbench": 675,
                      "aime25": 30, "livemathbench": None, "math_train": 7500}
    assert D.BENCHMARKS["livemathbench"].configs == ["v202505_all_en"]  # OpenCompass's v202505 default: all, en


def _local_hub_copy(tmp_path, rows, split):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "repo" / "data").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "repo" / "data" / f"{split}-00000-of-00001.parquet")
    return str(tmp_path / "repo")


def test_load_raw_passes_a_verified_revision_and_warns_on_an_unverified_one(tmp_path, monkeypatch, caplog):
    """The real datasets.load_dataset runs (a local folder ignores the revision); a spy records what it was given."""
    import dataclasses

    import datasets

    seen, real = [], datasets.load_dataset

    def spy(*args, **kwargs):
        seen.append(kwargs.get("revision"))
        return real(*args, **kwargs)

    monkeypatch.setattr(datasets, "load_dataset", spy)
    rows = [{"id": 0, "problem": "schema check only: not a real AMC problem", "answer": 142.0, "url": "u"}]
    spec = dataclasses.replace(D.BENCHMARKS["amc"], hf_id=_local_hub_copy(tmp_path, rows, "train"))
    with caplog.at_level("WARNING"):
        assert [r for _, r in D.load_raw(spec, cache_dir=tmp_path / "c1")] == rows
    assert seen == ["b16c5c52362a8f0acafef95fd6d94a8468982e08"] and "no verified commit sha" not in caplog.text
    spec = dataclasses.replace(spec, revision=D.REVISION_UNVERIFIED)
    with caplog.at_level("WARNING"):
        D.load_raw(spec, cache_dir=tmp_path / "c2")
    assert seen[-1] is None and "amc (" in caplog.text and "no verified commit sha is pinned" in caplog.text


def test_amc_float_answers_in_the_numina_schema(tmp_path):
    """aimo-validation-amc's schema (card: id int64, problem, answer float64, url); the rows are schema probes."""
    raw = [{"id": 0, "problem": "schema probe 1", "answer": 142.0, "url": "u0"},
           {"id": 1, "problem": "schema probe 2", "answer": 0.5, "url": "u1"}]
    rows = D.normalise_rows(D.get_spec("amc"), [(None, r) for r in raw])
    assert [r["answer"] for r in rows] == ["142", "0.5"] and rows[0]["meta"] == {"id": 0, "url": "u0",
                                                                                 "answer_raw": 142.0}
    with pytest.raises(ValueError, match=r"'amc'.*got 2 rows, expected 83"):
        D.prepare("amc", tmp_path / "a.jsonl", raw=raw)


def test_livemathbench_count_is_not_verified_and_says_so(caplog):
    with caplog.at_level("WARNING"):
        D.check_count(D.get_spec("livemathbench"), 123)
    assert "got 123 rows; no verified row count" in caplog.text


def test_ids_are_content_hashes_independent_of_order_and_repeats_are_numbered(caplog):
    raw = load_fixture("minerva")
    spec = D.get_spec("minerva")
    a = D.normalise_rows(spec, [(None, r) for r in raw])
    b = D.normalise_rows(spec, [(None, r) for r in reversed(raw)])
    assert {r["id"]: r["answer"] for r in a} == {r["id"]: r["answer"] for r in b}
    import hashlib

    assert a[0]["id"] == "minerva-" + hashlib.sha256(raw[0]["question"].encode()).hexdigest()[:12]
    with caplog.at_level("WARNING"):
        c = D.normalise_rows(spec, [(None, raw[0]), (None, raw[1]), (None, raw[0])])
    assert [r["id"] for r in c] == [a[0]["id"], a[1]["id"], a[0]["id"] + "-2"] and "repeats the question" in caplog.text
