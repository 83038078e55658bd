"""One way every table-based source becomes a prepared dataset: research layout, CSV release.

    build_from_tables(spec, out=scratch, raw={"train": df, "val1": q1, ...},
                      image_root=research_root / "iWildCam" / "train", options=options,
                      extra={"research": {...}})

Converts the tables (:mod:`harness.datasets.tables`), checks every image under the external
``image_root`` (never copied; the manifest records the root), reads detection boxes, gives
reid test splits their query/gallery roles, and writes splits and manifest into ``out``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.datasets.boxes import add_yolo_boxes
from harness.datasets.dataset import DatasetDir
from harness.datasets.image_files import check_images
from harness.datasets.preparers import PrepareOptions, content_checksums
from harness.datasets.tables import convert_tables
from harness.datasets.writer import write_splits
from harness.specs import DatasetSpec
from submissions.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


def build_from_tables(
    spec: DatasetSpec,
    *,
    out: DatasetDir,
    raw: Mapping[str, pd.DataFrame],
    image_root: Path,
    options: PrepareOptions,
    extra: Mapping[str, Any],
) -> None:
    """Write the prepared dataset (splits and manifest) into ``out``."""
    splits, notes = convert_tables(spec, raw, on_missing_label=options.on_missing_label)
    images = check_images(image_root, (f for df in splits.values() for f in df["filename"]))
    if spec.task_type == "detection":
        notes["images_without_boxes"] = _boxes(spec, splits, Path(images["root"]))
    if spec.task_type == "reid" and (rule := assign_reid_roles(spec, splits)):
        notes["reid_roles"] = rule
    manifest_extra = {
        "name": spec.name,
        **extra,
        "image_root": images["root"],
        "images": images,
        "content_sha256": content_checksums(splits),
        **notes,
    }
    write_splits(out, splits, dataset_version=spec.version, extra=manifest_extra)
    log.info("%s: %s", spec.name, {k: len(v) for k, v in splits.items()})


def _boxes(spec: DatasetSpec, splits: Mapping[str, pd.DataFrame], root: Path) -> dict[str, int]:
    if spec.table.boxes is None:
        if all("boxes" in df.columns for df in splits.values()):
            return {}
        raise ConfigError(
            f"{spec.name} is a detection dataset: set `table: {{boxes: yolo_files}}` under "
            f"datasets.{spec.name} in configs/datasets.yaml (YOLO label files beside the "
            "images), or give the tables a `boxes` column"
        )
    return {
        name: add_yolo_boxes(df, image_root=root, where=f"{spec.name}/{name}")
        for name, df in splits.items()
    }


def assign_reid_roles(spec: DatasetSpec, splits: Mapping[str, pd.DataFrame]) -> str | None:
    """Test splits without a ``role``: each identity's first image (table order) is its query.

    Returns the rule for the manifest, or None when every test table had its own roles.
    """
    assigned = False
    for name in dict.fromkeys(t.test for t in spec.tasks):
        df = splits[name]
        if "role" in df.columns:
            continue
        first = ~df["label"].duplicated(keep="first")
        df["role"] = first.map({True: "query", False: "gallery"})
        assigned = True
    if not assigned:
        return None
    return "an identity's first image in each test table is its query, the rest its gallery"
