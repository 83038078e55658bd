"""Writing a dataset in the benchmark format; used by every preparer and by test fixtures.

    write_splits(DatasetDir(root), {"train": pool_df, "val1": q1, "test1": t1, ...},
                 dataset_version="1.0")

Images must already be under the dataset's image root; the manifest records the split row
counts and checksums of every split and image file, so two preparations can be compared.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from harness.datasets.dataset import FORMAT_VERSION, DatasetDir, sha256_file
from submissions.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

REQUIRED_COLUMNS = ("uid", "label", "filename")


def check_split(name: str, df: pd.DataFrame) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ConfigError(f"split {name!r} lacks required columns {missing}")
    if df["uid"].duplicated().any():
        raise ConfigError(f"split {name!r} has duplicate UIDs")


def write_splits(
    ddir: DatasetDir,
    splits: Mapping[str, pd.DataFrame],
    *,
    dataset_version: str,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write split tables and the manifest; returns the manifest."""
    (ddir.root / "splits").mkdir(parents=True, exist_ok=True)
    entries: dict[str, Any] = {}
    for name, df in splits.items():
        check_split(name, df)
        df = df.reset_index(drop=True).astype({"uid": str})
        path = ddir.split_path(name)
        df.to_parquet(path, index=False)
        entries[name] = {"rows": len(df), "sha256": sha256_file(path)}
    manifest = {
        "format_version": FORMAT_VERSION,
        "dataset_version": dataset_version,
        "splits": entries,
        **(extra or {}),
    }
    ddir.manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest
