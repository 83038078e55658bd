"""Unknown UIDs named more than once, found in bounded memory (for ``validation_stream``).

    unknowns = Unknowns.of(limit=UNKNOWN_REPEAT_LIMIT, entries=len(subset))
    unknowns.add(start, raw_chunk, positions, kind)          # per chunk, unknown UIDs only
    repeats, sample = unknowns.repeats(subset, chunk_rows)   # entries repeating one, SAMPLE

Each unknown UID is kept as one uint64: the top bits of its fingerprint (seeded per process,
so collisions cannot be prepared) over its position in the file. Only UIDs whose fingerprint
is shared can repeat; those are re-read from the file and compared exactly, by canonical
text, ``BUCKET_BYTES`` of them at a time, so the counts are exact.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from harness.datasets.uid_index import BLOCK
from harness.datasets.uid_keys import mix
from harness.validation import SAMPLE
from submissions.subset_file import Kind, SubsetFile, canonical_strings

BUCKET_BYTES = 4 << 20  # unknown UIDs compared at once: text + 16 bytes of bookkeeping each
_SEED = np.uint64(secrets.randbits(64))


@dataclass
class Unknowns:
    """Each unknown UID as one uint64, while there are at most ``limit``: the top bits of
    its fingerprint above its file position (``shift`` bits), so one in-place sort groups
    equal fingerprints, and their positions come with them."""

    limit: int
    shift: int
    keys: npt.NDArray[np.uint64] | None  # allocated at once, resident only as filled
    count: int = 0

    @classmethod
    def of(cls, limit: int, entries: int) -> Unknowns:
        shift = max(1, (entries - 1).bit_length())
        return cls(limit, shift, np.empty(min(limit, entries), np.uint64))

    def add(self, start: int, raw: np.ndarray, at: npt.NDArray[np.int64], kind: Kind) -> None:
        n, self.count = self.count, self.count + len(at)
        if self.keys is None:
            return
        if self.count > self.limit:  # too many to search (check_subset's rule): drop them
            self.keys = None
            return
        fp = _fingerprint(_comparable(raw, kind)) >> np.uint64(self.shift) << np.uint64(self.shift)
        self.keys[n : self.count] = fp | (start + at).astype(np.uint64)

    def repeats(self, subset: SubsetFile, chunk: int) -> tuple[int, list[str]]:
        """(entries repeating an unknown UID, the SAMPLE smallest such UIDs), exactly: only
        entries whose fingerprint is shared can repeat; they are compared by text, a bucket
        of fingerprints at a time (``_Bucket``)."""
        if self.keys is None or not self.count:
            return 0, []
        keys, self.keys = self.keys[: self.count], None
        keys.sort()
        keys = keys[_shared(keys, self.shift)]  # a copy: the store is freed
        if not len(keys):  # no two fingerprints alike: no UID repeats
            return 0, []
        shift = np.uint64(self.shift)
        fps = keys >> shift
        fps = fps[np.concatenate([[True], fps[1:] != fps[:-1]])]  # the shared ones, sorted
        per_bucket = max(1, BUCKET_BYTES // (_comparable_width(subset) + 16))
        low = np.uint64((1 << self.shift) - 1)
        extra, sample = 0, list[str]()
        for b in range(0, len(fps), per_bucket):
            ours = fps[b : b + per_bucket]
            lo = np.searchsorted(keys, ours[0] << shift)
            hi = np.searchsorted(keys, (ours[-1] << shift) | low, side="right")
            at = np.sort(keys[lo:hi] & low).astype(np.int64)
            more, repeated = _Bucket.count(subset, at, ours, self.shift, chunk)
            extra += more
            sample = sorted([*sample, *_decoded(_smallest(repeated, SAMPLE))])[:SAMPLE]
        return extra, sample


def _shared(keys: npt.NDArray[np.uint64], shift: int) -> npt.NDArray[np.bool_]:
    """Which sorted keys share their fingerprint bits with a neighbour (block by block)."""
    same = np.empty(max(len(keys) - 1, 0), bool)
    s = np.uint64(shift)
    for b in range(0, len(same), BLOCK):
        e = min(b + BLOCK, len(same))
        same[b:e] = (keys[b + 1 : e + 1] >> s) == (keys[b:e] >> s)
    shared = np.zeros(len(keys), bool)
    shared[1:] |= same
    shared[:-1] |= same
    return shared


@dataclass
class _Bucket:
    """Exact counts of the UIDs of some fingerprints, without sorting text: the first UID
    seen of each fingerprint is its representative; later ones equal to it are counted with
    it, any other (a fingerprint collision: rare) is kept and counted apart."""

    fps: npt.NDArray[np.uint64]  # sorted
    shift: int
    reps: np.ndarray
    seen: npt.NDArray[np.int64]
    others: list[np.ndarray] = field(default_factory=list)

    @classmethod
    def count(
        cls,
        subset: SubsetFile,
        positions: npt.NDArray[np.int64],
        fps: npt.NDArray[np.uint64],
        shift: int,
        chunk: int,
    ) -> tuple[int, np.ndarray]:
        """(entries repeating a UID, the repeated UIDs) among those at ``positions``
        (sorted), whose fingerprints are ``fps``; the file is read once, by chunks."""
        dtype = _comparable(subset.raw[:0], subset.kind).dtype
        bucket = cls(fps, shift, np.zeros(len(fps), dtype), np.zeros(len(fps), np.int64))
        for start, block in subset.chunks(chunk):
            lo, hi = np.searchsorted(positions, [start, start + len(block)])
            if lo < hi:
                bucket.add(_comparable(block[positions[lo:hi] - start], subset.kind))
            if hi == len(positions):
                break
        return bucket.result()

    def add(self, values: np.ndarray) -> None:
        s = np.uint64(self.shift)
        group = np.searchsorted(self.fps, _fingerprint(values) >> s)
        new = np.flatnonzero(self.seen[group] == 0)
        if len(new):
            first_groups, first = np.unique(group[new], return_index=True)
            self.reps[first_groups] = values[new[first]]
        same = values == self.reps[group]
        self.seen += np.bincount(group[same], minlength=len(self.fps))
        if not bool(same.all()):
            self.others.append(values[~same])

    def result(self) -> tuple[int, np.ndarray]:
        extra = int((self.seen - 1).sum())  # every fingerprint here was seen at least twice
        repeated = self.reps[self.seen > 1]
        if self.others:
            values, counts = np.unique(np.concatenate(self.others), return_counts=True)
            extra += int((counts - 1).sum())
            repeated = np.concatenate([repeated, values[counts > 1]])
        return extra, repeated


def _smallest(values: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` smallest values, sorted (a partition first: no sort of them all)."""
    if len(values) > k:
        values = np.partition(values, k - 1)[:k]
    return np.sort(values)


def _comparable(raw: np.ndarray, kind: Kind) -> np.ndarray:
    """Canonical UIDs in a fixed-width form that sorts and compares as the text does:
    byte strings for ASCII forms (bytes, decimal, hex), unicode for str."""
    if kind == "bytes":
        return np.ascontiguousarray(raw)
    text = canonical_strings(raw, kind)
    return text if kind == "str" else text.astype(f"S{_comparable_width_of(kind, raw)}")


def _comparable_width_of(kind: Kind, raw: np.ndarray) -> int:
    return {"int": 20, "uint": 20, "uid128": 32}.get(kind, raw.dtype.itemsize)


def _comparable_width(subset: SubsetFile) -> int:
    """Bytes a UID takes in ``_comparable`` form."""
    if subset.kind == "str":
        return subset.raw.dtype.itemsize
    return _comparable_width_of(subset.kind, subset.raw)


def _decoded(values: np.ndarray) -> list[str]:
    return [v.decode("ascii") if isinstance(v, bytes) else str(v) for v in values.tolist()]


def _fingerprint(values: np.ndarray) -> npt.NDArray[np.uint64]:
    """A 64-bit hash of each fixed-width value: its 64-bit words mixed in turn from a seed
    drawn per process (so collisions cannot be prepared; they only cost time anyway)."""
    n, width = len(values), values.dtype.itemsize
    padded = np.zeros((n, -(-width // 8) * 8), np.uint8)
    padded[:, :width] = np.ascontiguousarray(values).view(np.uint8).reshape(n, width)
    words = padded.view(np.uint64)
    h = np.full(n, _SEED, np.uint64)
    for j in range(words.shape[1]):
        h = mix(h ^ words[:, j])
    return h
