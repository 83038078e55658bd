"""The UID index: exact lookups in every form, hash collisions, persistence, rebuilds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.datasets import Dataset, uid_index, uid_keys
from harness.datasets.uid_index import UidIndex
from submissions.errors import ConfigError, DataNotFound
from submissions.uid128 import records, to_hex


def test_text_lookup_in_every_accepted_form() -> None:
    index = UidIndex.build({"train": np.array(["a", "bb", "17", "ccc"]), "test": np.array(["x"])})
    assert index.scheme == "text" and index.splits == ("train", "test")
    codes, rows = index.lookup(np.array(["bb", "x", "way-too-long-uid", "a", "17", ""]))
    assert codes.tolist() == [0, 1, -1, 0, 0, -1] and rows.tolist() == [1, 0, -1, 0, 2, -1]
    assert index.lookup(np.array([17, 3]))[1].tolist() == [2, -1]  # ints as decimal text
    assert index.lookup(np.array([b"ccc"]))[1].tolist() == [3]
    assert index.lookup(np.array(["ccc"], dtype=object))[1].tolist() == [3]
    assert index.lookup(np.array(["ccc"], dtype="<U40"))[1].tolist() == [3]  # wider dtype
    assert index.lookup(np.array([], dtype=str))[0].tolist() == []


def test_hex128_index_matches_records_and_text_alike() -> None:
    rng = np.random.default_rng(0)
    hi, lo = (rng.integers(0, 2**64, 8, dtype=np.uint64, endpoint=False) for _ in range(2))
    index = UidIndex.build({"train": records(hi[:5], lo[:5]), "val": to_hex(hi[5:], lo[5:])})
    assert index.scheme == "hex128"
    assert index.lookup(to_hex(hi, lo))[1].tolist() == [0, 1, 2, 3, 4, 0, 1, 2]
    assert index.lookup(records(hi[::-1], lo[::-1]))[0].tolist() == [1, 1, 1, 0, 0, 0, 0, 0]
    upper = np.array([to_hex(hi, lo)[0].upper(), "nothex", "12"])
    assert index.lookup(upper)[0].tolist() == [-1, -1, -1]
    assert index.lookup(np.array([12]))[0].tolist() == [-1]


@pytest.mark.parametrize("scheme", ["text", "hex128"])
def test_colliding_keys_still_give_exact_answers(
    monkeypatch: pytest.MonkeyPatch, scheme: str
) -> None:
    def same(*args: object) -> np.ndarray:
        return np.zeros(len(args[0]), np.uint64)  # type: ignore[arg-type]

    monkeypatch.setattr(uid_keys, "text_key" if scheme == "text" else "hex128_key", same)
    rng = np.random.default_rng(0)
    hi, lo = (rng.integers(0, 2**64, 30, dtype=np.uint64, endpoint=False) for _ in range(2))
    uids = to_hex(hi, lo) if scheme == "hex128" else np.array([f"u{i}" for i in range(30)])
    index = UidIndex.build({"train": uids[:20], "test": uids[20:25]})
    assert index.scheme == scheme and len(set((index.keys >> index.low_bits).tolist())) == 1
    query = np.concatenate([uids[::-1], uids[:3]])
    codes, rows = index.lookup(query)
    expect = {u: (0, i) for i, u in enumerate(uids[:20])} | {
        u: (1, i) for i, u in enumerate(uids[20:25])
    }
    assert [(int(c), int(r)) for c, r in zip(codes, rows, strict=True)] == [
        expect.get(u, (-1, -1)) for u in query
    ]
    with pytest.raises(ConfigError, match="occur twice"):  # not adjacent in key order
        UidIndex.build({"train": uids[:20], "test": uids[[25, 26, 3]]})


def test_a_uid_in_two_splits_is_a_dataset_error() -> None:
    with pytest.raises(ConfigError, match="'b' in train row 1 and test row 0"):
        UidIndex.build({"train": np.array(["a", "b"]), "test": np.array(["b"])})


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.text(min_size=1, max_size=9).filter(lambda s: "\x00" not in s),
        min_size=1,
        max_size=60,
        unique=True,
    ),
    st.lists(st.integers(0, 200), max_size=80),
)
def test_lookup_agrees_with_a_dict(uids: list[str], picks: list[int]) -> None:
    cut = len(uids) // 2
    index = UidIndex.build({"train": np.array(uids[:cut] or ["-"]), "val": np.array(uids[cut:])})
    oracle = {u: (0, i) for i, u in enumerate(uids[:cut] or ["-"])}
    oracle |= {u: (1, i) for i, u in enumerate(uids[cut:])}
    query = [uids[p] if p < len(uids) else f"?{p}" for p in picks] or ["?"]
    codes, rows = index.lookup(np.array(query))
    assert list(zip(codes.tolist(), rows.tolist(), strict=True)) == [
        oracle.get(q, (-1, -1)) for q in query
    ]


def test_many_blocks_and_threads_give_the_same_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    uids = np.array([f"img{i:06d}" for i in range(5000)])
    index = UidIndex.build({"train": uids})
    query = np.random.default_rng(0).permutation(np.append(uids[:3000], ["x", "y"]))
    expected = index.lookup(query)
    monkeypatch.setattr(uid_index, "BLOCK", 97)
    monkeypatch.setattr(uid_index, "WORKERS", 2)
    got = index.lookup(query)
    assert np.array_equal(got[0], expected[0]) and np.array_equal(got[1], expected[1])
    assert (got[1][query != "x"][:5] >= 0).all()


def test_pool_rows_names_uids_outside_the_pool(tiny_dataset: Dataset) -> None:
    index = tiny_dataset.uid_index()
    pool = tiny_dataset.uids("train")
    assert index.pool_rows(pool[[9, 4]]).tolist() == [9, 4]
    with pytest.raises(DataNotFound, match=r"2 UIDs are not in the pool, e\.g\. t1-00000, nope"):
        index.pool_rows(np.array([pool[0], tiny_dataset.uids("test1")[0], "nope"]))


def _copy(ds: Dataset, root: Path) -> Dataset:
    dst = root / ds.spec.path
    shutil.copytree(ds.dir.root / "splits", dst / "splits")
    shutil.copy(ds.dir.manifest_path, dst / "manifest.json")
    return Dataset.open(ds.spec, data_root=root)


def test_index_is_saved_memory_mapped_and_rebuilt_when_the_dataset_changes(
    tiny_dataset: Dataset, tmp_path: Path
) -> None:
    ds = _copy(tiny_dataset, tmp_path)
    first = UidIndex.open_or_build(ds)
    meta = json.loads((ds.dir.index_dir / "meta.json").read_text())
    assert meta["scheme"] == "text" and meta["splits"][0] == "train"
    again = UidIndex.open_or_build(ds)
    assert isinstance(again.keys, np.memmap) and (again.keys == first.keys).all()
    assert again.lookup(ds.uids("val2")[:2])[1].tolist() == [0, 1]
    meta["format"] = 1  # an index written by an older version is rebuilt, not misread
    (ds.dir.index_dir / "meta.json").write_text(json.dumps(meta))
    assert not isinstance(UidIndex.open_or_build(ds).keys, np.memmap)
    manifest = json.loads(ds.dir.manifest_path.read_text())
    manifest["dataset_version"] = "changed"
    ds.dir.manifest_path.write_text(json.dumps(manifest))
    ds = Dataset.open(ds.spec, data_root=tmp_path)  # manifest is cached per handle
    rebuilt = UidIndex.open_or_build(ds)
    assert not isinstance(rebuilt.keys, np.memmap)  # built afresh, not loaded
    names = sorted(p.name for p in ds.dir.root.iterdir() if p.name != ".index.lock")
    assert names == ["index", "manifest.json", "splits"]
