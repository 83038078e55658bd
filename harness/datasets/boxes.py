"""Detection boxes from YOLO label files beside the images, into the ``boxes`` column.

    add_yolo_boxes(df, image_root=source_dir / "images", where="FishDetection/train")
    df["boxes"]   # JSON [[cls, cx, cy, w, h], ...] per image; df["label"]: largest box's class

A label file is found as ultralytics finds it (the image path with its last ``images``
directory replaced by ``labels`` and the suffix by ``.txt``), else next to the image. An image
without a label file has no objects (YOLO's rule), but a dataset where no image has one is
refused: that is a wrong layout, not an empty dataset. Lines are ``cls cx cy w h`` in
normalised coordinates; anything else fails naming the file and line.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from harness.datasets.image_files import safe_relative
from submissions.errors import ConfigError, DataNotFound

if TYPE_CHECKING:
    import pandas as pd

NO_OBJECT = -1  # ``label`` of an image without boxes


def label_file(image_root: Path, name: str) -> Path | None:
    rel = safe_relative(name)
    parts = list(rel.parts)
    candidates = []
    if "images" in parts[:-1]:
        i = len(parts) - 2 - parts[:-1][::-1].index("images")
        parts[i] = "labels"
        candidates.append(PurePosixPath(*parts).with_suffix(".txt"))
    candidates.append(rel.with_suffix(".txt"))
    for c in candidates:
        path = image_root / c
        if path.is_file():
            return path
    return None


def read_yolo(path: Path) -> list[list[float]]:
    boxes: list[list[float]] = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            cls, *coords = line.split()
            box = [float(int(cls)), *(float(c) for c in coords)]
        except ValueError:
            raise ConfigError(f"{path}:{n}: expected 'cls cx cy w h', got {line!r}") from None
        if len(box) != 5 or not all(0 <= c <= 1 for c in box[1:]) or min(box[3:]) <= 0:
            raise ConfigError(f"{path}:{n}: expected 'cls cx cy w h' in (0, 1], got {line!r}")
        boxes.append(box)
    return boxes


def add_yolo_boxes(df: pd.DataFrame, *, image_root: Path, where: str) -> int:
    """Fill ``boxes`` and ``label``; returns how many images had no label file."""
    found = [label_file(image_root, str(f)) for f in df["filename"]]
    without = sum(p is None for p in found)
    if len(df) and without == len(df):
        raise DataNotFound(
            f"{where}: no YOLO label file for any image (looked for labels/<name>.txt beside "
            f"images/ and <name>.txt next to each image under {image_root})"
        )
    boxes = [read_yolo(p) if p is not None else [] for p in found]
    df["boxes"] = [json.dumps([[int(b[0]), *b[1:]] for b in bs]) for bs in boxes]
    df["label"] = [int(max(bs, key=lambda b: b[3] * b[4])[0]) if bs else NO_OBJECT for bs in boxes]
    return without
