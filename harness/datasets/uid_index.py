"""The UID index: any UID of a dataset -> (split, row), built once, memory-mapped after.

Every lookup from UID to row goes through here, never by position in a subset file.

    index = ds.uid_index()
    codes, rows = index.lookup(np.array(["a1", "zz"]))   # codes: split number or -1
    index.splits[codes[0]], rows[0]                       # ("train", 17)
    rows = index.pool_rows(uids)                          # DataNotFound if any is not in the pool

Layout under ``<dataset>/index/``: ``keys.npy`` (sorted uint64 hashes), ``codes.npy`` (int8
split number), ``rows.npy`` (int64 row), ``meta.json`` (splits, sizes, manifest hash). A hash
match is confirmed against the split's UID strings, so the lookup is exact.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from submissions.errors import DataNotFound

if TYPE_CHECKING:
    from harness.datasets.dataset import Dataset

log = logging.getLogger(__name__)

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


def hash_uids(uids: npt.NDArray[np.str_]) -> npt.NDArray[np.uint64]:
    """FNV-1a over the code points of each UID, vectorised column by column."""
    arr = np.ascontiguousarray(np.asarray(uids, dtype=np.str_))
    width = max(arr.dtype.itemsize // 4, 1)
    cols = (
        arr.view(np.uint32).reshape(len(arr), width)
        if len(arr)
        else np.zeros((0, width), np.uint32)
    )
    h = np.full(len(arr), _FNV_OFFSET, dtype=np.uint64)
    for j in range(width):
        h ^= cols[:, j].astype(np.uint64)
        h *= _FNV_PRIME
    return h


@dataclass(frozen=True)
class UidIndex:
    splits: tuple[str, ...]
    keys: npt.NDArray[np.uint64]
    codes: npt.NDArray[np.int8]
    rows: npt.NDArray[np.int64]
    split_uids: dict[str, npt.NDArray[np.str_]]

    @classmethod
    def build(cls, split_uids: dict[str, npt.NDArray[np.str_]]) -> UidIndex:
        splits = tuple(split_uids)
        keys = np.concatenate([hash_uids(u) for u in split_uids.values()])
        codes = np.concatenate(
            [np.full(len(u), i, np.int8) for i, u in enumerate(split_uids.values())]
        )
        rows = np.concatenate([np.arange(len(u), dtype=np.int64) for u in split_uids.values()])
        order = np.argsort(keys, kind="stable")
        keys, codes, rows = keys[order], codes[order], rows[order]
        if len(keys) > 1 and bool(np.any(keys[1:] == keys[:-1])):
            raise DataNotFound(
                "duplicate UIDs (or a 64-bit hash collision) across the dataset's splits"
            )
        return cls(
            splits,
            keys,
            codes,
            rows,
            {k: np.asarray(v, dtype=np.str_) for k, v in split_uids.items()},
        )

    @classmethod
    def open_or_build(cls, ds: Dataset) -> UidIndex:
        index_dir = ds.dir.index_dir
        meta_path = index_dir / "meta.json"
        if (
            meta_path.is_file()
            and json.loads(meta_path.read_text()).get("manifest") == ds.manifest_hash()
        ):
            return cls.load(index_dir, ds)
        log.info("building UID index of %s", ds.spec.name)
        index = cls.build({s: ds.uids(s) for s in ds.spec.split_names()})
        index.save(index_dir, manifest_hash=ds.manifest_hash())
        return index

    def save(self, index_dir: Path, *, manifest_hash: str) -> None:
        index_dir.mkdir(parents=True, exist_ok=True)
        for name in ("keys", "codes", "rows"):
            np.save(index_dir / f"{name}.npy", getattr(self, name))
        meta = {"splits": list(self.splits), "manifest": manifest_hash}
        (index_dir / "meta.json").write_text(json.dumps(meta))

    @classmethod
    def load(cls, index_dir: Path, ds: Dataset) -> UidIndex:
        meta = json.loads((index_dir / "meta.json").read_text())
        keys, codes, rows = (
            np.load(index_dir / f"{n}.npy", mmap_mode="r") for n in ("keys", "codes", "rows")
        )
        return cls(
            tuple(meta["splits"]), keys, codes, rows, {s: ds.uids(s) for s in meta["splits"]}
        )

    def lookup(
        self, uids: npt.NDArray[np.str_]
    ) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.int64]]:
        """Split code (-1 if unknown) and row of every UID, in input order."""
        h = hash_uids(uids)
        pos = np.searchsorted(self.keys, h)
        pos = np.minimum(pos, max(len(self.keys) - 1, 0))
        hit = (self.keys[pos] == h) if len(self.keys) else np.zeros(len(h), bool)
        codes = np.where(hit, self.codes[pos], -1).astype(np.int8)
        rows = np.where(hit, self.rows[pos], -1).astype(np.int64)
        for i, split in enumerate(self.splits):  # confirm hash hits against the real strings
            sel = np.flatnonzero(codes == i)
            wrong = self.split_uids[split][rows[sel]] != np.asarray(uids)[sel]
            codes[sel[wrong]], rows[sel[wrong]] = -1, -1
        return codes, rows

    def pool_rows(
        self, uids: npt.NDArray[np.str_], *, pool: str | None = None
    ) -> npt.NDArray[np.int64]:
        """Pool rows of ``uids``; DataNotFound naming the first UIDs that are not in the pool."""
        pool_code = self.splits.index(pool or self.splits[0])
        codes, rows = self.lookup(uids)
        bad = np.flatnonzero(codes != pool_code)
        if len(bad):
            sample = ", ".join(map(str, np.asarray(uids)[bad[:10]]))
            raise DataNotFound(f"{len(bad)} UIDs are not in the pool, e.g. {sample}")
        return rows
