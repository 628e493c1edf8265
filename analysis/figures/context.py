"""What a figure may read: the tidy tables, the cell manifest (results/cells.json) and the toy policy lab JSON.

Every accessor records the files it read (sha256, rows) into ``ctx.inputs`` for the figure's sidecar. Tables are read
once per context and cached.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from analysis.aggregate import CELL_COLUMNS, METRIC_COLUMNS, TRAIN_COLUMNS, TRAIN_FILE
from analysis.figures.colors import use_methods
from analysis.manifest import manifest_methods, read_manifest

TABLE_FILES = {"passk": "passk.csv", "maxk": "maxk.csv", "train_curves": TRAIN_FILE}
TABLE_COLUMNS = {
    "passk": list(CELL_COLUMNS) + list(METRIC_COLUMNS),
    "maxk": list(CELL_COLUMNS) + list(METRIC_COLUMNS),
    "train_curves": list(TRAIN_COLUMNS),
}


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes (read in 1 MiB chunks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class FigureContext:
    """Inputs of the figures. cells_path: the DAG's results/cells.json (analysis.manifest), the only source of which
    cells and benchmarks belong to a family."""

    out_dir: Path
    tables_dir: Path | None = None
    bandit_path: Path | None = None
    cells_path: Path | None = None
    ci: str = "auto"
    png_dpi: int | None = None  # None: the style's savefig.dpi (200)
    inputs: dict = field(default_factory=dict)
    _cache: dict = field(default_factory=dict)

    def _cached(self, key: str, load):
        """load() -> (data, record) once per context; record (path -> facts) goes into inputs on every call."""
        if key not in self._cache:
            self._cache[key] = load()
        data, record = self._cache[key]
        self.inputs.update(record)  # run_figure resets inputs per figure; the cache must not hide a read
        return data

    def table(self, name: str) -> pd.DataFrame:
        """passk / maxk / train_curves as a DataFrame; a missing file gives an empty frame with its columns."""
        if name not in TABLE_FILES:
            raise ValueError(f"unknown table {name!r}; expected one of {sorted(TABLE_FILES)}")

        def load():
            df, record = pd.DataFrame(columns=TABLE_COLUMNS[name]), {}
            if self.tables_dir is not None:
                path = Path(self.tables_dir) / TABLE_FILES[name]
                if path.is_file():
                    df = pd.read_csv(path)
                    record[str(path)] = {"sha256": sha256_file(path), "rows": len(df)}
                else:
                    record[str(path)] = {"missing": True}
            for c in ("model", "algo", "reward", "cell", "k_schedule", "benchmark", "metric"):
                if c in df.columns:
                    df[c] = df[c].astype(object).where(df[c].notna(), None)
            if "k_schedule" in df.columns:
                df["k_schedule"] = df["k_schedule"].fillna("constant")
            return df, record

        return self._cached(f"table:{name}", load)

    @property
    def bandit(self) -> dict | None:
        """The toy policy lab JSON (rspo_patch.bandit --out), or None when not given or absent."""

        def load():
            data, record = None, {}
            if self.bandit_path is not None:
                path = Path(self.bandit_path)
                if path.is_file():
                    data = json.loads(path.read_text())
                    record[str(path)] = {"sha256": sha256_file(path)}
                else:
                    record[str(path)] = {"missing": True}
            return data, record

        return self._cached("bandit", load)

    @property
    def manifest(self) -> dict | None:
        """results/cells.json (analysis.manifest layout), or None when no cells_path was given. Every read also tells
        the colour map the manifest's methods (colors.use_methods: a plugin's uses_k, the run's set of methods), so
        a figure drawn from this context styles them from this manifest, whichever context was read before."""

        def load():
            if self.cells_path is None:
                return None, {}
            path = Path(self.cells_path)
            return read_manifest(path), {str(path): {"sha256": sha256_file(path)}}

        data = self._cached("manifest", load)
        use_methods(manifest_methods(data or {}))
        return data

    def family(self, name: str) -> dict | None:
        """Manifest family ``name``: {description, benchmarks, models, cells: [dict with the tables' cell columns]}
        (base cells included where the config family sets ``base``); None without a manifest or such a family."""
        return ((self.manifest or {}).get("families") or {}).get(name)
