"""The ``demo_reid`` benchmark: identities = digit specimens, views, query/gallery roles."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.datasets import Dataset
from harness.datasets.demo_reid import LAYOUT, REGIMES, SIZE, build, render_view


def test_split_sizes_follow_the_layout(demo_reid_dataset: Dataset) -> None:
    ds = demo_reid_dataset
    expected: dict[str, int] = {}
    for d in LAYOUT:
        expected[d.split] = expected.get(d.split, 0) + d.identities * d.views
    assert {s: ds.split_size(s) for s in ds.spec.split_names()} == expected


def test_identities_never_cross_splits(demo_reid_dataset: Dataset) -> None:
    ds = demo_reid_dataset
    seen_ids: set[int] = set()
    seen_specimens: set[tuple[str, int]] = set()
    for split in ds.spec.split_names():
        table = ds.split(split)
        ids = set(table["label"].astype(int))
        specimens = set(zip(table["source"], table["source_index"].astype(int), strict=True))
        assert not ids & seen_ids and not specimens & seen_specimens
        seen_ids |= ids
        seen_specimens |= specimens
        # One identity is one specimen of one digit.
        assert table.groupby("label")["source_index"].nunique().max() == 1
        assert table.groupby("label")["digit"].nunique().max() == 1


def test_test_splits_have_one_query_per_identity(demo_reid_dataset: Dataset) -> None:
    ds = demo_reid_dataset
    for task in ds.spec.tasks:
        table = ds.split(task.test)
        assert set(table["role"]) == {"query", "gallery"}
        queries = table[table["role"] == "query"]
        assert queries["label"].is_unique
        assert set(queries["label"]) == set(table[table["role"] == "gallery"]["label"])
        assert "role" not in ds.split(task.query).columns
    assert set(ds.split("test3")["digit"]) == {1, 7}
    assert set(ds.split("test1")["source"]) == {"uci"}
    assert set(ds.split("test2")["regime"]) == {"heavy"}


def test_views_of_one_specimen_differ_but_stay_close() -> None:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:28, :28]
    ring = (np.abs(np.hypot(yy - 13.5, xx - 13.5) - 8) < 2) * 255.0
    bar = (np.abs(xx - 13.5) < 2) * (np.abs(yy - 13.5) < 10) * 255.0
    views = [render_view(ring, REGIMES["mild"], rng) for _ in range(4)]
    other = render_view(bar, REGIMES["mild"], rng)
    assert views[0].shape == (SIZE, SIZE)
    flat = [v.astype(float).ravel() for v in views]
    assert not np.array_equal(flat[0], flat[1])

    def cos(a: np.ndarray, b: np.ndarray) -> float:
        return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))

    same = np.mean([cos(flat[0], f) for f in flat[1:]])
    assert same > cos(flat[0], other.astype(float).ravel())


def test_deterministic(demo_reid_dataset: Dataset, tmp_path: Path) -> None:
    again = build(tmp_path)
    for split in ("test2", "train"):
        assert again[split].equals(demo_reid_dataset.split(split))
    for f in again["test2"]["filename"][:20]:
        assert (tmp_path / f).read_bytes() == (demo_reid_dataset.image_root / f).read_bytes()
