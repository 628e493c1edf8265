"""Reading JSONL files: one JSON object per line, errors named by file and line."""

from __future__ import annotations

import json
import os


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read a JSONL file into a list of dicts (blank lines skipped).

    Raises ValueError naming the file and line number on a line that is not a JSON object.
    """
    rows = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(
                    f"{path}:{lineno}: not valid JSON ({exc.msg}); expected one JSON object per line"
                ) from exc
            if not isinstance(obj, dict):
                raise ValueError(f"{path}:{lineno}: got a JSON {type(obj).__name__}; expected a JSON object per line")
            rows.append(obj)
    return rows
