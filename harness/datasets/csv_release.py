"""The ``csv_release`` preparer: a directory of split CSVs (``train.csv``, ``val1.csv``, ...).

    tdc-harness prepare GeoDE --source ~/downloads/GeoDE     # or put it under <data_root>/raw/GeoDE

One CSV per split the spec names (``<split>.csv``), read with the dataset's ``table`` section
(column map, label names, caption templates; harness.datasets.tables), and the images either
under the directory's ``images/`` folder or next to the CSVs. The images are referenced where
they are (the manifest records their root), never copied. For the research group's own
layout, where files are named per dataset and images live elsewhere, use
``--research-config`` (harness.datasets.research).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from harness.datasets.dataset import DatasetDir, sha256_file
from harness.datasets.image_files import safe_relative
from harness.datasets.preparers import PREPARERS, PrepareOptions
from harness.datasets.table_release import build_from_tables
from harness.settings import HarnessSettings
from harness.specs import DatasetSpec
from submissions.errors import DataNotFound

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


def release_dir(spec: DatasetSpec, settings: HarnessSettings, source: Path | None) -> Path:
    """Where the release is: ``source`` if given, else ``<data_root>/raw/<spec.path>``."""
    root = Path(source) if source is not None else Path(settings.data_root) / "raw" / spec.path
    root = root.expanduser()
    missing = [s for s in spec.split_names() if not (root / f"{s}.csv").is_file()]
    if missing:
        where = f"{root}" if root.is_dir() else f"{root} (no such directory)"
        raise DataNotFound(
            f"{spec.name}: the release is not prepared and its split CSVs are missing in "
            f"{where}: {', '.join(f'{s}.csv' for s in missing)}. Download the release "
            f"({spec.source or 'see configs/datasets.yaml'}) and pass its directory with "
            f"`tdc-harness prepare {spec.name} --source DIR`, or put it under "
            f"<data_root>/raw/{spec.path}/ (data root: TDC_DATA_ROOT). The research group's "
            f"layout imports with --research-config FILE."
        )
    return root


def read_csv(path: Path) -> pd.DataFrame:
    import pandas as pd

    return pd.read_csv(path, dtype={"uid": str}, keep_default_na=True)


def image_root_of(root: Path, filenames: list[str]) -> Path:
    """``root/images`` when it holds the first image, else ``root`` (the release's layout)."""
    first = safe_relative(filenames[0]) if filenames else None
    if first is not None and (root / "images" / first).is_file():
        return root / "images"
    return root


@PREPARERS.register("csv_release")
def prepare_csv_release(
    spec: DatasetSpec,
    *,
    out: DatasetDir,
    settings: HarnessSettings,
    source: Path | None,
    options: PrepareOptions,
) -> None:
    """Convert the release at ``source`` (or ``<data_root>/raw/<path>``) into ``out``."""
    root = release_dir(spec, settings, source)
    raw = {name: read_csv(root / f"{name}.csv") for name in spec.split_names()}
    column = spec.table.columns.get("filename", "filename")
    names = [str(f) for df in raw.values() if column in df.columns for f in df[column]]
    extra = {
        "preparer": "csv_release",
        "release_csv_sha256": {s: sha256_file(root / f"{s}.csv") for s in raw},
    }
    build_from_tables(
        spec, out=out, raw=raw, image_root=image_root_of(root, names), options=options,
        extra=extra,
    )  # fmt: skip
