"""The ``demo_detection`` benchmark: real digits on canvases, boxes that fit the ink, tasks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness.datasets import Dataset
from harness.datasets.demo_detection import CANVAS, INK, LAYOUT, build
from harness.recipes.detection import parse_boxes, split_boxes


def test_split_sizes_follow_the_layout(demo_detection_dataset: Dataset) -> None:
    ds = demo_detection_dataset
    expected: dict[str, int] = {}
    for draw in LAYOUT:
        expected[draw.split] = expected.get(draw.split, 0) + draw.canvases
    assert {s: ds.split_size(s) for s in ds.spec.split_names()} == expected
    assert ds.manifest["classes"] == [str(d) for d in range(10)]


def test_no_uid_in_two_splits_and_required_columns(demo_detection_dataset: Dataset) -> None:
    ds = demo_detection_dataset
    seen: set[str] = set()
    for split in ds.spec.split_names():
        table = ds.split(split)
        assert {"uid", "label", "filename", "boxes", "caption", "caption_nolabel"} <= set(table)
        uids = set(table["uid"])
        assert not uids & seen
        seen |= uids


def test_boxes_are_tight_around_the_ink(demo_detection_dataset: Dataset) -> None:
    from PIL import Image

    ds = demo_detection_dataset
    table = ds.split("test3").iloc[:30]
    for fname, cell, label in zip(table["filename"], table["boxes"], table["label"], strict=True):
        boxes = parse_boxes(cell)
        img = np.asarray(Image.open(ds.image_root / fname))
        assert img.shape == (CANVAS, CANVAS)
        ink = img >= INK
        covered = np.zeros_like(ink)
        for _, cx, cy, w, h in boxes:
            x0, y0 = round((cx - w / 2) * CANVAS), round((cy - h / 2) * CANVAS)
            x1, y1 = round((cx + w / 2) * CANVAS), round((cy + h / 2) * CANVAS)
            assert ink[y0:y1, x0:x1].any()
            assert ink[y0, x0:x1].any() or ink[y0:y1, x0].any()  # touches its top or left edge
            covered[y0:y1, x0:x1] = True
        # Noise alone never reaches the ink level far from every digit.
        assert not (ink & ~covered).sum() > 3
        areas = boxes[:, 3] * boxes[:, 4]
        assert label == int(boxes[int(np.argmax(areas)), 0])


def test_tasks_shift_source_classes_or_scale(demo_detection_dataset: Dataset) -> None:
    ds = demo_detection_dataset
    pool = ds.split("train")
    assert (pool["source"] == "mnist").mean() > 0.85
    assert set(ds.split("test1")["source"]) == {"uci"}
    classes2 = {int(b[0]) for b in np.concatenate(split_boxes(ds, "test2"))}
    assert classes2 <= {0, 1, 2, 3, 4}
    small = np.concatenate(split_boxes(ds, "test3"))[:, 3].mean()
    normal = np.concatenate(split_boxes(ds, "test4"))[:, 3].mean()
    assert small < 0.75 * normal
    assert ds.split("test3")["n_objects"].min() >= 3


def test_deterministic(demo_detection_dataset: Dataset, tmp_path: Path) -> None:
    again = build(tmp_path)
    for split in ("val1", "test3", "train"):
        assert again[split].equals(demo_detection_dataset.split(split))
    for f in again["test3"]["filename"][:20]:
        assert (tmp_path / f).read_bytes() == (demo_detection_dataset.image_root / f).read_bytes()


@pytest.mark.parametrize("bad", ["[[0, 0.5, 0.5, 0, 0.1]]", "[[1, 1.5, 0.5, 0.1, 0.1]]"])
def test_malformed_boxes_are_refused(bad: str) -> None:
    from submissions.errors import DataNotFound

    with pytest.raises(DataNotFound, match="normalised"):
        parse_boxes(bad)
    assert parse_boxes(json.dumps([])).shape == (0, 5)
