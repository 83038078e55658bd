"""Validation of a subset file in bounded memory: :func:`check_subset`'s report, by chunks.

``check_subset`` resolves every UID at once: ~26 bytes of temporaries a UID on top of the
whole file mapped (pages of a mapping stay resident once read), so a 100 MB upload grew the
web process by ~300 MB and a 410 MB one by ~740 MB. :func:`check_file` reads the file in
chunks of about ``CHUNK_BYTES`` (never through its mapping) and keeps only what the report
needs, so its memory does not grow with the file::

    report = check_file(read_subset_file(path), spec=ds.spec, index=ds.uid_index(),
                        fraction=0.1, task=None, labels=pool_labels(ds), keep_rows=False)

What is kept, per split of the index (and for unknown UIDs):

- the count, and the first ``FIRST`` entries (position, UID) for the samples;
- a bitset of the rows named: a repeat is counted when its bit is already set. The pool's
  bitset *is* the set of pool rows named, in order: sha256, ``pool_rows``, no sort;
- the ``SAMPLE`` smallest repeated rows; if a known UID repeats, one more pass (resolving
  again, until the samples are full) finds the first ``FIRST`` entries naming them;
- while there are at most ``UNKNOWN_REPEAT_LIMIT`` unknown UIDs: one uint64 each (its
  fingerprint's top bits over its position). Only UIDs whose fingerprint is shared can
  repeat; those are re-read from the file and compared exactly, by their canonical text,
  ``BUCKET_BYTES`` of fingerprints at a time.

Memory: a chunk's temporaries + one bit per row of each split named + 8 bytes per unknown
UID up to the limit (8 MB), whatever the file's size: +18 MB of server RSS for a 100 MiB
upload, +20 MB for 1 GiB, against +430 MB and +3.5 GB before (``benchmarks/server.py``).
The problems, their counts and samples, the size, sha256 and class counts are those of
``check_subset`` (property tests compare the two). One difference: ``pool_rows`` holds each
pool row once, so it differs from ``check_subset``'s for a subset naming a pool UID twice,
which is invalid anyway. Time: about that of ``check_subset`` for uploads (one thread, but
no whole-array sorts); up to ~2x on large valid subsets (1M UIDs of a 4M pool: 0.47 s
against 0.24 s), which only the evaluation runner meets.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from harness import validation as rules
from harness.datasets.uid_index import BLOCK
from harness.validation import (
    FIRST,
    SAMPLE,
    PoolLabels,
    ValidationReport,
    distinct_sample,
    duplicate_problem,
    leak_problem,
    request_problems,
    size_problems,
    unknown_problem,
)
from harness.validation_unknowns import Unknowns
from submissions.subset_file import Kind, SubsetFile, canonical_strings

if TYPE_CHECKING:
    from harness.datasets.uid_index import UidIndex
    from harness.specs import DatasetSpec
    from submissions.schemas import Problem

# A chunk is one index BLOCK of UIDs (resolved in one thread: more threads, each with its own
# block's temporaries, bought no time on 2 cores and cost ~10 MB each), fewer if wide.
CHUNK_BYTES = 2 << 20
MIN_CHUNK = 1 << 10
_BITS_BLOCK = 1 << 16  # bitset bytes turned into rows at once (512k rows)


def check_file(
    subset: SubsetFile,
    *,
    spec: DatasetSpec,
    index: UidIndex,
    fraction: float,
    task: str | None,
    labels: PoolLabels | None = None,
    keep_rows: bool = True,
    chunk_rows: int | None = None,
) -> ValidationReport:
    """Every rule on ``subset``, read in chunks; ``keep_rows=False`` leaves ``pool_rows``
    None (the server needs only the sha256)."""
    pool_code = index.split_code(spec.pool)
    pool_size = index.sizes[pool_code]
    budget, problems = request_problems(spec, pool_size=pool_size, fraction=fraction, task=task)
    tally = _Tally.of(subset, index, pool_code, labels, chunk_rows or chunk_rows_of(subset))
    tally.read()
    problems += tally.unknown()
    problems += duplicate_problem(*tally.repeats())
    problems += tally.leaks(spec)
    problems += size_problems(len(subset), budget, fraction, pool_size)
    pool = tally.seen.get(pool_code, _Seen.of_size(0))
    distinct_pool = int(tally.counts[pool_code + 1]) == len(subset) and not pool.extra
    return ValidationReport(
        ok=not problems,
        dataset=spec.name,
        fraction=fraction,
        task=task,
        size=len(subset),
        budget=budget,
        pool_size=pool_size,
        kind=subset.kind,
        nbytes=subset.nbytes,
        sha256=_sha256(pool.rows()) if distinct_pool else None,
        problems=problems,
        class_counts=tally.class_counts(),
        pool_class_counts=labels.counts() if labels else {},
        pool_rows=np.concatenate([np.empty(0, np.int64), *pool.rows()]) if keep_rows else None,
    )


def chunk_rows_of(subset: SubsetFile) -> int:
    """UIDs per chunk: one index BLOCK, or about CHUNK_BYTES of the file if that is fewer."""
    return max(MIN_CHUNK, min(BLOCK, CHUNK_BYTES // max(subset.raw.dtype.itemsize, 1)))


# --- per split: rows named, repeats ----------------------------------------------------------


@dataclass
class _Seen:
    """The rows of one split named so far (one bit each), how many entries repeated one, and
    the SAMPLE smallest rows named more than once."""

    bits: npt.NDArray[np.uint8]
    extra: int = 0
    smallest: npt.NDArray[np.int64] = field(default_factory=lambda: np.empty(0, np.int64))

    @classmethod
    def of_size(cls, rows: int) -> _Seen:
        return cls(bits=np.zeros((rows + 7) // 8, np.uint8))

    def add(self, rows: npt.NDArray[np.int64]) -> None:
        uniq, counts = np.unique(rows, return_counts=True)
        byte, bit = uniq >> 3, np.left_shift(1, uniq & 7).astype(np.uint8)
        before = (self.bits[byte] & bit) != 0
        self.extra += len(rows) - len(uniq) + int(np.count_nonzero(before))
        again = uniq[before | (counts > 1)]
        if len(again):
            self.smallest = np.union1d(self.smallest, again[:SAMPLE])[:SAMPLE]
        np.bitwise_or.at(self.bits, byte, bit)

    def rows(self) -> Iterator[npt.NDArray[np.int64]]:
        """The rows named, ascending, in blocks."""
        for b in range(0, len(self.bits), _BITS_BLOCK):
            bits = np.unpackbits(self.bits[b : b + _BITS_BLOCK], bitorder="little")
            yield np.flatnonzero(bits).astype(np.int64) + 8 * b


def _sha256(blocks: Iterator[npt.NDArray[np.int64]]) -> str:
    """``subset_sha256`` of the sorted rows given in ascending blocks."""
    digest = hashlib.sha256()
    for rows in blocks:
        digest.update(np.ascontiguousarray(rows, dtype="<i8").view(np.uint8).data)
    return digest.hexdigest()


# --- one pass over the file -----------------------------------------------------------------


@dataclass
class _Tally:
    """What one pass over the file found, per split code (-1: unknown UIDs)."""

    subset: SubsetFile
    index: UidIndex
    pool: int
    labels: PoolLabels | None
    chunk: int
    counts: npt.NDArray[np.int64]  # [unknown, split 0, split 1, ...]
    unknowns: Unknowns
    labelled: npt.NDArray[np.int64] | None = None
    first: dict[int, list[tuple[int, str]]] = field(default_factory=dict)
    seen: dict[int, _Seen] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        subset: SubsetFile,
        index: UidIndex,
        pool: int,
        labels: PoolLabels | None,
        chunk: int,
    ) -> _Tally:
        counts = np.zeros(len(index.splits) + 1, np.int64)
        labelled = np.zeros(len(labels.names), np.int64) if labels else None
        unknowns = Unknowns.of(rules.UNKNOWN_REPEAT_LIMIT, len(subset))
        return cls(subset, index, pool, labels, chunk, counts, unknowns, labelled=labelled)

    def read(self) -> None:
        pool = self.pool
        for start, block in self.subset.chunks(self.chunk):
            codes, rows = _resolve(self.index, block, self.subset.kind)
            counts = np.bincount(codes.astype(np.int64) + 1, minlength=len(self.counts))
            self.counts += counts
            for code in (np.flatnonzero(counts) - 1).tolist():
                at = np.flatnonzero(codes == code)
                self._first(code, start, block, at)
                if code < 0:
                    self.unknowns.add(start, block[at], at, self.subset.kind)
                    continue
                self.seen.setdefault(code, _Seen.of_size(self.index.sizes[code])).add(rows[at])
                if code == pool and self.labels is not None and self.labelled is not None:
                    self.labelled += _label_counts(self.labels, rows[at])

    def _first(self, code: int, start: int, block: np.ndarray, at: npt.NDArray[np.int64]) -> None:
        have = self.first.setdefault(code, [])
        if len(have) < FIRST:
            at = at[: FIRST - len(have)]
            have += zip((start + at).tolist(), _texts(block[at], self.subset.kind), strict=True)

    def sample(self, code: int) -> list[str]:
        return distinct_sample([uid for _, uid in self.first.get(code, [])])

    def class_counts(self) -> dict[str, int]:
        if self.labels is None or self.labelled is None:
            return {}
        return {n: int(c) for n, c in zip(self.labels.names, self.labelled, strict=True)}

    # --- the problems ----------------------------------------------------------------------

    def unknown(self) -> list[Problem]:
        count = int(self.counts[0])
        if not count:
            return []
        return [unknown_problem(self.subset, count, self.first[-1][0][0], self.sample(-1))]

    def repeats(self) -> tuple[int, list[str]]:
        """(entries repeating a UID, sample): unknown UIDs first, then split by split."""
        known = self._repeated_known()
        extra, sample = 0, list[str]()
        for code in (np.flatnonzero(self.counts) - 1).tolist():
            if code < 0:
                more, uids = self.unknowns.repeats(self.subset, self.chunk)
            else:
                more, uids = self.seen[code].extra, distinct_sample(known.get(code, []))
            extra += more
            sample += uids[: SAMPLE - len(sample)]
        return extra, sample

    def _repeated_known(self) -> dict[int, list[str]]:
        """The first FIRST entries naming one of each split's SAMPLE smallest repeated rows
        (a second pass, resolving again, stopped once every sample is full)."""
        wanted = {c: s.smallest for c, s in self.seen.items() if s.extra}
        found: dict[int, list[str]] = {c: [] for c in wanted}
        for _, block in self.subset.chunks(self.chunk) if wanted else ():
            codes, rows = _resolve(self.index, block, self.subset.kind)
            for code, rows_wanted in wanted.items():
                need = FIRST - len(found[code])
                if need > 0:
                    at = np.flatnonzero((codes == code) & np.isin(rows, rows_wanted))[:need]
                    found[code] += _texts(block[at], self.subset.kind)
            if all(len(uids) >= FIRST for uids in found.values()):
                break
        return found

    def leaks(self, spec: DatasetSpec) -> list[Problem]:
        problems = []
        for t in spec.tasks:
            for role, split in (("query", t.query), ("test", t.test)):
                if split not in self.index.splits:
                    continue
                code = self.index.split_code(split)
                count = int(self.counts[code + 1])
                if count:
                    problems.append(leak_problem(t.name, role, split, count, self.sample(code)))
        return problems


def _resolve(
    index: UidIndex, block: np.ndarray, kind: Kind
) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.int64]]:
    """Split code (-1: unknown) and row of each UID of ``block``, in block order."""
    res = index.resolve(block, kind)
    codes = np.empty(len(block), np.int8)
    rows = np.empty(len(block), np.int64)
    codes[res.order], rows[res.order] = res.codes, res.rows
    return codes, rows


def _texts(raw: np.ndarray, kind: Kind) -> list[str]:
    return [str(u) for u in canonical_strings(raw, kind)]


def _label_counts(labels: PoolLabels, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    picked = labels.codes[rows]
    return np.bincount(picked[picked >= 0], minlength=len(labels.names)).astype(np.int64)
