"""Concurrent first use of a dataset's UID index: one build, every caller gets an index."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from harness.datasets.uid_index import UidIndex
from tests.conftest import build_tiny_dataset


def test_concurrent_open_or_build_never_fails(tmp_path: Path) -> None:
    ds = build_tiny_dataset(tmp_path)
    uids = ds.uids("train")[:5]
    with ThreadPoolExecutor(max_workers=8) as pool:
        indexes = list(pool.map(lambda _: UidIndex.open_or_build(ds), range(16)))
    for index in indexes:
        codes, rows = index.lookup(uids)
        assert codes.tolist() == [0] * 5 and rows.tolist() == list(range(5))
    leftovers = [p.name for p in ds.dir.root.iterdir() if p.name.startswith(".index-")]
    assert leftovers == []
