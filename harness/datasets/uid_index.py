"""The UID index: any UID of a dataset -> (split, row), built once, memory-mapped after.

Every lookup from UID to row goes through here, never by position in a subset file.

    index = ds.uid_index()                                # or UidIndex.build({"train": uids, ...})
    codes, rows = index.lookup(np.array(["a1", "zz"]))   # codes: split number or -1
    index.splits[codes[0]], rows[0]                       # ("train", 17)
    rows = index.pool_rows(uids)                          # DataNotFound if any is not in the pool
    res = index.resolve(subset.raw, subset.kind)          # the fast path validation uses

Lookups take any UID array the subset file contract accepts (str, bytes, ints, ``u8,u8``).
Layout under ``<dataset>/index/`` (see harness.datasets.uid_keys for the two schemes):
``keys.npy`` (sorted uint64: the top bits of each UID's 64-bit key, the entry number in the
``low_bits`` below), ``check.npy`` (exact value per entry: uint64 low halves or the UID
text), ``codes.npy`` (int8 split number), ``rows.npy`` (row in the split) and ``meta.json``
(scheme, width, low_bits, splits, sizes, manifest hash). A key-prefix match counts only when
the check value matches too, so lookups are exact; entries sharing a prefix are tried in turn.

How a lookup scales: the submission's keys are sorted once (packed with their positions,
a plain sort), so the binary searches walk the index in order, each block within one small
slice of it; every pass is O(n) or O(n log n) numpy work, in threads (numpy releases the
GIL), and blocks of ``BLOCK`` UIDs bound the temporaries to a few MB beyond ~27 bytes a UID.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from harness.datasets.uid_keys import (
    Query,
    check_block,
    choose_scheme,
    gather_checks,
    lo_halves,
    query_block,
)
from submissions.errors import ConfigError, DataNotFound
from submissions.subset_file import Kind, as_uid_array, canonical_strings

if TYPE_CHECKING:
    from harness.datasets.dataset import Dataset

log = logging.getLogger(__name__)

INDEX_FORMAT = 3
BLOCK = 1 << 15
WORKERS = max(1, min(4, os.cpu_count() or 1))


@dataclass(frozen=True)
class Resolution:
    """Where each UID of a submission lives, listed in the order of its sort key.

    ``order[i]`` is a position in the submitted array; ``codes[i]`` its split number (-1:
    unknown) and ``rows[i]`` its row in that split (-1: unknown). Repeated known UIDs show as
    equal (code, row) pairs.
    """

    order: npt.NDArray[np.int64]
    codes: npt.NDArray[np.int8]
    rows: npt.NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class UidIndex:
    """Sorted keys of every UID of a dataset, with their split and row."""

    splits: tuple[str, ...]
    sizes: tuple[int, ...]
    scheme: str
    width: int
    low_bits: int  # keys hold a 64-bit UID key's top bits with the entry number below
    keys: npt.NDArray[np.uint64]
    check: np.ndarray
    codes: npt.NDArray[np.int8]
    rows: np.ndarray

    # --- building ------------------------------------------------------------------------

    @classmethod
    def build(cls, split_uids: Mapping[str, np.ndarray]) -> UidIndex:
        """An in-memory index of ``{split: UIDs in row order}`` (the pool first)."""
        arrays = {s: _as_lookup_array(u) for s, u in split_uids.items()}
        if len(arrays) > 127:
            raise ConfigError("a dataset may have at most 127 splits")
        scheme, width = choose_scheme(list(arrays.values()), BLOCK)
        sizes = tuple(len(a) for a, _ in arrays.values())
        starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        keys = np.empty(int(starts[-1]), np.uint64)
        for (raw, kind), first in zip(arrays.values(), starts, strict=False):

            def fill(start: int, raw: np.ndarray = raw, kind: Kind = kind, at: int = first) -> None:
                q = query_block(raw[start : start + BLOCK], kind, scheme=scheme, width=width)
                keys[at + start : at + start + len(q.key)] = q.key

            _parallel(fill, len(raw))
        order, prefix = _sort_positions(keys, keep_positions=True)
        codes, rows = _split_rows(order, starts)
        del order
        check = gather_checks(
            list(arrays.values()), codes, rows, scheme=scheme, width=width, block=BLOCK
        )
        low_bits = 64 - bin(int(prefix)).count("1")
        index = cls(tuple(arrays), sizes, scheme, width, low_bits, keys, check, codes, rows)
        index._reject_duplicates(arrays)
        return index

    def _reject_duplicates(self, arrays: Mapping[str, tuple[np.ndarray, Kind]]) -> None:
        """A UID in two places: equal check values among entries that share a key prefix."""
        low = np.uint64((1 << self.low_bits) - 1)
        shared = (self.keys[1:] ^ self.keys[:-1]) <= low
        idx = np.flatnonzero(np.concatenate([[False], shared]) | np.append(shared, False))
        if len(idx) == 0:
            return
        rows = np.ascontiguousarray(self.check[idx]).reshape(len(idx), -1)
        ident = np.concatenate(
            [(self.keys[idx] & ~low)[:, None].view(np.uint8), rows.view(np.uint8)], axis=1
        )
        _, first, counts = np.unique(ident, axis=0, return_index=True, return_counts=True)
        if not bool(np.any(counts > 1)):
            return
        dup = ident[first[counts > 1][0]]
        hits = idx[np.flatnonzero((ident == dup).all(axis=1))[:2]]
        where = [(self.splits[self.codes[i]], int(self.rows[i])) for i in hits]
        raw, kind = arrays[where[0][0]]
        uid = str(canonical_strings(raw[[where[0][1]]], kind)[0])
        raise ConfigError(
            f"{int((counts - 1).sum())} UIDs occur twice in the dataset, e.g. {uid!r} in "
            f"{where[0][0]} row {where[0][1]} and {where[1][0]} row {where[1][1]}"
        )

    @classmethod
    def open_or_build(cls, ds: Dataset) -> UidIndex:
        """The dataset's index, rebuilt (atomically) when its manifest changed."""
        index_dir = ds.dir.index_dir
        manifest = ds.manifest_hash()
        if _current(index_dir, manifest):
            return cls.load(index_dir)
        # One builder at a time: concurrent first uploads would otherwise race on the swap.
        with _build_lock(index_dir):
            if _current(index_dir, manifest):
                return cls.load(index_dir)
            log.info("building UID index of %s", ds.spec.name)
            index = cls.build({s: ds.uids(s) for s in ds.spec.split_names()})
            index.save(index_dir, manifest_hash=manifest)
        return index

    def save(self, index_dir: Path, *, manifest_hash: str) -> None:
        """Write to a sibling temp dir, then swap it in, so readers never see half an index."""
        index_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=index_dir.parent, prefix=".index-"))
        try:
            check = self.check
            if self.scheme == "text":
                check = np.ascontiguousarray(check).reshape(-1).view(f"<U{self.width}")
            for name, arr in (("keys", self.keys), ("check", check)):
                np.save(tmp / f"{name}.npy", arr, allow_pickle=False)
            for name, arr in (("codes", self.codes), ("rows", self.rows)):
                np.save(tmp / f"{name}.npy", arr, allow_pickle=False)
            meta = {
                "format": INDEX_FORMAT,
                "scheme": self.scheme,
                "width": self.width,
                "low_bits": self.low_bits,
                "splits": list(self.splits),
                "sizes": list(self.sizes),
                "manifest": manifest_hash,
            }
            (tmp / "meta.json").write_text(json.dumps(meta))
            _swap_in(tmp, index_dir)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    @classmethod
    def load(cls, index_dir: Path) -> UidIndex:
        meta = _meta(index_dir)
        if meta.get("format") != INDEX_FORMAT:
            raise DataNotFound(f"no UID index (format {INDEX_FORMAT}) in {index_dir}")
        arrays = {
            n: np.load(index_dir / f"{n}.npy", mmap_mode="r", allow_pickle=False)
            for n in ("keys", "check", "codes", "rows")
        }
        check = arrays["check"]
        if meta["scheme"] == "text":
            check = check.view(np.uint32).reshape(len(check), meta["width"])
        return cls(
            tuple(meta["splits"]),
            tuple(meta["sizes"]),
            meta["scheme"],
            int(meta["width"]),
            int(meta["low_bits"]),
            arrays["keys"],
            check,
            arrays["codes"],
            arrays["rows"],
        )

    # --- lookups -------------------------------------------------------------------------

    def resolve(self, raw: np.ndarray, kind: Kind) -> Resolution:
        """Split and row of every UID of ``raw`` (a checked 1-D UID array of ``kind``)."""
        n = len(raw)
        key = np.empty(n, np.uint64)
        valid = np.empty(n, bool)
        # hex128 checks are 8 bytes a UID: keep them (or view the records' low halves);
        # text checks are as big as the text: gather them again per block instead.
        check = lo_halves(raw, kind) if self.scheme == "hex128" else None
        kept = np.empty(n, np.uint64) if self.scheme == "hex128" and check is None else None

        def keys_of(start: int) -> None:
            q = query_block(raw[start : start + BLOCK], kind, scheme=self.scheme, width=self.width)
            key[start : start + len(q.key)] = q.key
            valid[start : start + len(q.key)] = q.valid
            if kept is not None:
                kept[start : start + len(q.key)] = q.check

        _parallel(keys_of, n)
        check = kept if kept is not None else check
        # key's memory now holds the sorted key prefixes
        order, prefix = _sort_positions(key, min_bits=self.low_bits)
        valid = valid[order]
        codes = np.full(n, -1, np.int8)
        rows = np.full(n, -1, np.int64)

        def match(start: int) -> None:
            sl = slice(start, start + BLOCK)
            if check is not None:
                chk = check[order[sl]]
            else:
                chk = check_block(raw.take(order[sl]), kind, scheme=self.scheme, width=self.width)
            self._match_block(prefix, key[sl], valid[sl], chk, codes[sl], rows[sl])

        _parallel(match, n)
        return Resolution(order=order, codes=codes, rows=rows)

    def _match_block(
        self,
        prefix: np.uint64,
        key: npt.NDArray[np.uint64],
        valid: npt.NDArray[np.bool_],
        check: np.ndarray,
        codes_out: npt.NDArray[np.int8],
        rows_out: npt.NDArray[np.int64],
    ) -> None:
        """Fill codes/rows of a block of sorted key prefixes (``key & prefix``).

        Every index entry whose key shares a UID's prefix is tried in turn until the check
        value matches. The block's keys are sorted, so their answers lie in one slice of the
        index: searching that slice (a few MB) instead of the whole index stays in cache.
        """
        n_keys = len(self.keys)
        if n_keys == 0 or len(key) == 0:
            return
        lo = int(np.searchsorted(self.keys, key[0]))
        hi = int(np.searchsorted(self.keys, key[-1] | ~prefix, side="right"))
        pos = lo + np.searchsorted(self.keys[lo:hi], key)
        todo = np.flatnonzero(valid)
        while len(todo):
            p = np.minimum(pos[todo], n_keys - 1)
            same = (pos[todo] < n_keys) & ((self.keys[p] & prefix) == key[todo])
            todo, p = todo[same], p[same]
            hit = _equal(_take(self.check, p), _take(check, todo))
            codes_out[todo[hit]] = self.codes[p[hit]]
            rows_out[todo[hit]] = self.rows[p[hit]]
            todo = todo[~hit]  # a different UID with the same prefix: look at the next entry
            pos[todo] += 1

    def lookup(self, uids: np.ndarray) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.int64]]:
        """Split code (-1 if unknown) and row of every UID, in input order."""
        arr, kind = _as_lookup_array(uids)
        res = self.resolve(arr, kind)
        codes = np.empty(len(arr), np.int8)
        rows = np.empty(len(arr), np.int64)
        codes[res.order], rows[res.order] = res.codes, res.rows
        return codes, rows

    def pool_rows(self, uids: np.ndarray, *, pool: str | None = None) -> npt.NDArray[np.int64]:
        """Pool rows of ``uids``; DataNotFound naming the first UIDs that are not in the pool."""
        pool_code = self.splits.index(pool or self.splits[0])
        codes, rows = self.lookup(uids)
        bad = np.flatnonzero(codes != pool_code)
        if len(bad):
            arr, kind = _as_lookup_array(uids)
            sample = ", ".join(canonical_strings(arr[bad[:10]], kind))
            raise DataNotFound(f"{len(bad)} UIDs are not in the pool, e.g. {sample}")
        return rows

    def split_code(self, split: str) -> int:
        return self.splits.index(split)

    def __len__(self) -> int:
        return len(self.keys)


def _as_lookup_array(uids: np.ndarray) -> tuple[np.ndarray, Kind]:
    arr = np.asarray(uids)
    if arr.ndim == 1 and len(arr) == 0:
        return np.empty(0, np.str_), "str"
    return as_uid_array(arr, strict=False)


def _blocks(raw: np.ndarray, kind: Kind, scheme: str, width: int) -> Iterator[tuple[int, Query]]:
    for start in range(0, len(raw), BLOCK):
        yield start, query_block(raw[start : start + BLOCK], kind, scheme=scheme, width=width)


def _parallel(fn: Callable[[int], None], n: int) -> None:
    """Run ``fn(start)`` for every block start; numpy releases the GIL, so threads scale."""
    starts = range(0, n, BLOCK)
    workers = min(WORKERS, len(starts))
    if workers <= 1:
        for start in starts:
            fn(start)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in pool.map(fn, starts):
            pass


def _sort_positions(
    key: npt.NDArray[np.uint64], *, min_bits: int = 1, keep_positions: bool = False
) -> tuple[npt.NDArray[np.int64], np.uint64]:
    """Sort keys with their positions packed into the low bits (a plain sort is ~4x faster
    than argsort and needs no second array). Returns the positions in key order and the mask
    of the key bits kept; ``key`` is overwritten with its sorted prefixes (with the positions
    still in the low bits if ``keep_positions``)."""
    n = len(key)
    bits = max(min_bits, (n - 1).bit_length(), 1)
    low = np.uint64((1 << bits) - 1)
    prefix = ~low
    key &= prefix
    step = BLOCK * 32
    for start in range(0, n, step):
        key[start : start + step] |= np.arange(start, min(n, start + step), dtype=np.uint64)
    key.sort()
    order = (key & low).view(np.int64)
    if not keep_positions:
        key &= prefix
    return order, prefix


def _take(arr: np.ndarray, idx: np.ndarray) -> np.ndarray:
    # take(axis=0) gathers 2-D rows ~3x faster than fancy indexing; 1-D is the other way.
    return arr.take(idx, axis=0) if arr.ndim > 1 else arr[idx]


def _equal(a: np.ndarray, b: np.ndarray) -> npt.NDArray[np.bool_]:
    """Row-wise equality; text rows are compared as 64-bit words, column by column (OR of
    XORs: ~3x faster than ``(a == b).all(axis=1)`` for a few columns)."""
    if a.ndim == 1:
        eq: npt.NDArray[np.bool_] = a == b
        return eq
    if a.shape[1] % 2 == 0:
        a, b = (np.ascontiguousarray(x).view(np.uint64) for x in (a, b))
    diff = a[:, 0] ^ b[:, 0]
    for j in range(1, a.shape[1]):
        diff |= a[:, j] ^ b[:, j]
    return diff == 0


def _split_rows(
    order: npt.NDArray[np.int64], starts: npt.NDArray[np.int64]
) -> tuple[np.ndarray, ...]:
    """(split code, row in split) of global positions, block by block to bound temporaries."""
    codes = np.empty(len(order), np.int8)
    rows = np.empty(
        len(order), np.uint32 if int(np.diff(starts).max(initial=0)) < 2**32 else np.int64
    )
    for b in range(0, len(order), BLOCK * 16):
        o = order[b : b + BLOCK * 16]
        c = np.searchsorted(starts, o, side="right") - 1
        codes[b : b + len(o)] = c
        rows[b : b + len(o)] = o - starts[c]
    return codes, rows


def _meta(index_dir: Path) -> dict:
    try:
        return dict(json.loads((index_dir / "meta.json").read_text()))
    except (OSError, ValueError):
        return {}


def _current(index_dir: Path, manifest: str) -> bool:
    meta = _meta(index_dir)
    return meta.get("manifest") == manifest and meta.get("format") == INDEX_FORMAT


@contextlib.contextmanager
def _build_lock(index_dir: Path) -> Iterator[None]:
    """An exclusive advisory lock (fcntl) beside ``index_dir``, held while building."""
    import fcntl

    index_dir.parent.mkdir(parents=True, exist_ok=True)
    with (index_dir.parent / ".index.lock").open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _swap_in(tmp: Path, index_dir: Path) -> None:
    """Replace ``index_dir`` by ``tmp``; a concurrent builder that won the race is kept."""
    old = None
    if index_dir.exists():
        old = Path(tempfile.mkdtemp(dir=index_dir.parent, prefix=".index-old-"))
        os.replace(index_dir, old / "index")
    # Another process may have swapped its (equal) index in first: keep that one.
    with contextlib.suppress(OSError):
        os.replace(tmp, index_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
