"""The ``csv_release`` preparer: a research-style release of split CSVs -> the benchmark format.

The research releases of GeoDE, iWildCam, AutoArborist, ... are a directory with one CSV per
split (``train.csv``, ``val1.csv``, ``test1.csv``, ...; at least ``uid``, ``label``,
``filename`` and any metadata columns) and the images next to them (``filename`` is relative
to the release directory or to its ``images/`` folder)::

    tdc-harness prepare GeoDE --source ~/downloads/GeoDE     # or put it under <data_root>/raw/GeoDE

What it does: checks every split the spec names is there, UIDs are unique across splits and
every image exists; maps string class names to integers (sorted names; ``label_name`` keeps
the name); adds ``caption`` / ``caption_nolabel`` when the release has none ("a photo of a
<class name>" / "a photo"); links (or copies, across filesystems) the images under
``images/`` with the same relative names; writes parquet splits and a manifest with the
CSVs' and images' checksums. Detection releases (box files) need their own preparer.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from harness.datasets.dataset import DatasetDir, sha256_file
from harness.datasets.preparers import PREPARERS, content_checksums, images_checksum
from harness.datasets.writer import REQUIRED_COLUMNS, write_splits
from harness.settings import HarnessSettings
from harness.specs import DatasetSpec
from submissions.errors import ConfigError, DataNotFound

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
            f"<data_root>/raw/{spec.path}/ (data root: TDC_DATA_ROOT)."
        )
    return root


def read_split(path: Path) -> pd.DataFrame:
    import pandas as pd

    df = pd.read_csv(path, dtype={"uid": str, "filename": str})
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ConfigError(f"{path}: missing required columns {missing} (has {list(df.columns)})")
    return df


def normalise_labels(spec: DatasetSpec, splits: dict[str, pd.DataFrame]) -> dict[str, object]:
    """Labels as int (classification, reid) or float (regression); returns manifest notes."""
    import pandas as pd

    if spec.task_type == "detection":
        raise ConfigError(
            f"{spec.name}: csv_release does not convert detection boxes; register a preparer "
            "for the release's box format (docs/benchmark-format.md, 'Adding a dataset')"
        )
    labels = pd.concat([df["label"] for df in splits.values()])
    if spec.task_type == "regression":
        for df in splits.values():
            df["label"] = pd.to_numeric(df["label"], errors="raise").astype("float64")
        return {}
    if pd.api.types.is_integer_dtype(labels):
        return {}
    names = sorted(labels.astype(str).unique())
    code = {n: i for i, n in enumerate(names)}
    for df in splits.values():
        df["label_name"] = df["label"].astype(str)
        df["label"] = df["label_name"].map(code).astype("int64")
    return {"classes": names}


def add_captions(spec: DatasetSpec, df: pd.DataFrame) -> None:
    """Template captions when the release has none; the label-free one names no class."""
    if "caption" in df.columns and "caption_nolabel" in df.columns:
        return
    if spec.task_type == "regression":
        df["caption"] = "a photo"
    elif "label_name" in df.columns:
        df["caption"] = [f"a photo of a {n}" for n in df["label_name"]]
    else:
        df["caption"] = [f"a photo of class {c}" for c in df["label"]]
    df["caption_nolabel"] = "a photo"


def check_uids(splits: dict[str, pd.DataFrame]) -> None:
    import pandas as pd

    owner = pd.concat([df["uid"] for df in splits.values()], ignore_index=True)
    dup = owner[owner.duplicated()].unique()
    if len(dup):
        raise ConfigError(
            f"{len(dup)} UIDs occur twice across or within splits, e.g. {', '.join(dup[:5])}"
        )


def resolve_image(root: Path, name: str) -> Path | None:
    rel = PurePosixPath(name)
    if rel.is_absolute() or ".." in rel.parts:
        raise ConfigError(f"image filename {name!r} must be relative, without '..'")
    for candidate in (root / rel, root / "images" / rel):
        if candidate.is_file():
            return candidate
    return None


def link_images(root: Path, filenames: list[str], image_root: Path) -> None:
    """Hard-link each image into ``image_root`` (copy when linking is impossible)."""
    found = {name: resolve_image(root, name) for name in dict.fromkeys(filenames)}
    missing = [n for n, p in found.items() if p is None]
    if missing:
        raise DataNotFound(
            f"{len(missing)} images named in the split CSVs are missing under {root} "
            f"(or {root / 'images'}), e.g. {', '.join(missing[:5])}"
        )
    for name, src in found.items():
        if src is None:  # unreachable: reported above; keeps the type checker exact
            continue
        dst = image_root / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src, dst)
        except OSError:  # other filesystem, or links not allowed
            shutil.copyfile(src, dst)


@PREPARERS.register("csv_release")
def prepare_csv_release(
    spec: DatasetSpec,
    *,
    out: DatasetDir,
    settings: HarnessSettings,
    source: Path | None,
) -> None:
    """Convert the release at ``source`` (or ``<data_root>/raw/<path>``) into ``out``."""
    root = release_dir(spec, settings, source)
    splits = {name: read_split(root / f"{name}.csv") for name in spec.split_names()}
    check_uids(splits)
    notes = normalise_labels(spec, splits)
    for df in splits.values():
        add_captions(spec, df)
    image_root = out.root / spec.image_root
    filenames = [f for df in splits.values() for f in df["filename"]]
    link_images(root, filenames, image_root)
    extra = {
        "name": spec.name,
        "preparer": "csv_release",
        "release_csv_sha256": {s: sha256_file(root / f"{s}.csv") for s in splits},
        "images": images_checksum(image_root, filenames),
        "content_sha256": content_checksums(splits),
        **notes,
    }
    write_splits(out, splits, dataset_version=spec.version, extra=extra)
    log.info("%s: converted %s", spec.name, {k: len(v) for k, v in splits.items()})
