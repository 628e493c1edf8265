"""A damaged training file stops pre-training with one line naming the file and the line (issue 13: it was a bare
JSONDecodeError with no file name)."""

from __future__ import annotations

import pytest

from rspo_patch.pretrain import read_rows


def test_truncated_data_file_is_named_with_its_line(tmp_path):
    path = tmp_path / "arithmetic_train.jsonl"
    path.write_text('{"id": "a", "question": "1+2", "answer": "3"}\n{"id": "b", "question": "2+')  # cut mid-row
    with pytest.raises(ValueError) as err:
        read_rows(str(path))
    msg = str(err.value)
    assert msg.startswith(f"{path}:2: not valid JSON") and "\n" not in msg, msg


def test_row_without_answer_is_named(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"id": "a", "question": "1+2"}\n')
    with pytest.raises(ValueError, match=r"row 1 needs 'question' and 'answer'"):
        read_rows(str(path))
