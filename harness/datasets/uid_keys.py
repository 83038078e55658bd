"""UID -> (64-bit sort key, exact check value): the two key schemes of the UID index.

The index sorts every UID of a dataset by a 64-bit key and confirms each key match against
an exact *check* value, so lookups are exact whatever the hash does. Two schemes:

- ``hex128`` — every UID of the dataset is DataComp-style 128-bit (``u8,u8`` records or
  32-char lowercase hex text). key = mix(hi ^ mix(lo)), check = lo. ``mix`` is a bijection,
  so (key, lo) determines (hi, lo): equal (key, check) means an equal UID. 30M submitted
  records are keyed without ever making a string.
- ``text`` — any other UIDs. The canonical text, padded to the index width ``W`` code points,
  is hashed word by word; check = the padded code points themselves. Longer text cannot be
  in the index and is marked invalid.

Both forms of a UID reach the same key: a ``u8,u8`` record and its hex text match the same
entry, and integers match their decimal text::

    q = query_block(raw_block, kind, scheme="hex128", width=32)   # Query(valid, key, check)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from submissions.subset_file import Kind, canonical_strings
from submissions.uid128 import HEX_CHARS, parse_hex, split128

U64 = npt.NDArray[np.uint64]
_C1, _C2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_SEED, _PRIME = np.uint64(0xCBF29CE484222325), np.uint64(0x100000001B3)


@dataclass(frozen=True)
class Query:
    """Keys of a block of UIDs: ``valid`` False where the UID cannot be in the index."""

    valid: npt.NDArray[np.bool_]
    key: U64
    check: np.ndarray  # (n,) uint64 for hex128, (n, W) uint32 for text


def mix(x: U64) -> U64:
    """splitmix64's finaliser: a bijection on uint64 that spreads every input bit (in place)."""
    x ^= x >> np.uint64(30)
    x *= _C1
    x ^= x >> np.uint64(27)
    x *= _C2
    x ^= x >> np.uint64(31)
    return x


def hex128_key(hi: U64, lo: U64) -> U64:
    return mix(hi ^ mix(lo.copy()))


def _hex128_parts(raw: np.ndarray, kind: Kind) -> tuple[npt.NDArray[np.bool_], U64, U64]:
    if kind == "uid128":
        hi, lo = split128(raw)
        return np.ones(len(raw), bool), hi, lo
    if kind in ("str", "bytes"):
        return parse_hex(canonical_strings(raw, kind))
    zeros = np.zeros(len(raw), np.uint64)  # decimal text never has 32 hex digits
    return np.zeros(len(raw), bool), zeros, zeros.copy()


def _query_hex128(raw: np.ndarray, kind: Kind, width: int) -> Query:
    del width
    valid, hi, lo = _hex128_parts(raw, kind)
    return Query(valid=valid, key=hex128_key(hi, lo), check=lo)


def code_points(text: npt.NDArray[np.str_], width: int) -> tuple[npt.NDArray[np.bool_], np.ndarray]:
    """(fits, (n, width) uint32 code points zero-padded); ``fits`` False for longer text."""
    n, w = len(text), text.dtype.itemsize // 4
    src = np.ascontiguousarray(text, dtype=f"<U{max(w, 1)}").view(np.uint32).reshape(n, max(w, 1))
    out = np.zeros((n, width), np.uint32)
    m = min(src.shape[1], width)
    out[:, :m] = src[:, :m]
    fits = ~np.any(src[:, width:], axis=1) if src.shape[1] > width else np.ones(n, bool)
    return fits, out


def text_key(cps: np.ndarray) -> U64:
    """Hash of (n, W) code points, W even: FNV-style over 64-bit words, then mixed."""
    words = cps.view(np.uint64)
    h = np.full(len(cps), _SEED, dtype=np.uint64)
    for j in range(words.shape[1]):
        h ^= words[:, j]
        h *= _PRIME
    return mix(h)


def _query_text(raw: np.ndarray, kind: Kind, width: int) -> Query:
    fits, cps = code_points(canonical_strings(raw, kind), width)
    return Query(valid=fits, key=text_key(cps), check=cps)


QUERIES: dict[str, Callable[[np.ndarray, Kind, int], Query]] = {
    "hex128": _query_hex128,
    "text": _query_text,
}


def query_block(raw: np.ndarray, kind: Kind, *, scheme: str, width: int) -> Query:
    """Keys and check values of one block of stored UIDs under ``scheme``."""
    return QUERIES[scheme](raw, kind, width)


def _check_hex128(raw: np.ndarray, kind: Kind, width: int) -> np.ndarray:
    del width
    return _hex128_parts(raw, kind)[2]


def _check_text(raw: np.ndarray, kind: Kind, width: int) -> np.ndarray:
    return code_points(canonical_strings(raw, kind), width)[1]


CHECKS: dict[str, Callable[[np.ndarray, Kind, int], np.ndarray]] = {
    "hex128": _check_hex128,
    "text": _check_text,
}


def check_block(raw: np.ndarray, kind: Kind, *, scheme: str, width: int) -> np.ndarray:
    """Only the check values of a block (what ``query_block`` returns as ``check``)."""
    return CHECKS[scheme](raw, kind, width)


def lo_halves(raw: np.ndarray, kind: Kind) -> U64 | None:
    """The low halves of ``u8,u8`` records as a view (no copy), else None."""
    if kind != "uid128":
        return None
    names = raw.dtype.names or ("f0", "f1")
    lo: U64 = raw[names[1]]
    return lo


def text_width(raw: np.ndarray, kind: Kind) -> int:
    """Longest canonical UID of a block, in code points."""
    if len(raw) == 0:
        return 0
    if kind == "uid128":
        return HEX_CHARS
    text = canonical_strings(raw, kind)
    w = text.dtype.itemsize // 4
    cps = np.ascontiguousarray(text).view(np.uint32).reshape(len(text), w)
    used = np.flatnonzero(np.any(cps, axis=0))
    return int(used[-1]) + 1 if len(used) else 0


def is_hex128(raw: np.ndarray, kind: Kind) -> bool:
    """Whether every UID of a block is a 128-bit UID in one of its two forms."""
    return kind == "uid128" or (
        kind in ("str", "bytes") and bool(_hex128_parts(raw, kind)[0].all())
    )


def choose_scheme(arrays: list[tuple[np.ndarray, Kind]], block: int) -> tuple[str, int]:
    """hex128 when every UID is 128-bit (either form), else text as wide as the longest UID."""
    blocks = [(a[i : i + block], k) for a, k in arrays for i in range(0, len(a), block)]
    if blocks and all(is_hex128(b, k) for b, k in blocks):
        return "hex128", 0
    width = max((text_width(b, k) for b, k in blocks), default=0)
    return "text", max(2, width + (width & 1))  # even: the hash reads 64-bit words


def gather_checks(
    arrays: list[tuple[np.ndarray, Kind]],
    codes: npt.NDArray[np.int8],
    rows: np.ndarray,
    *,
    scheme: str,
    width: int,
    block: int,
) -> np.ndarray:
    """The check value of every sorted entry, gathered from the split arrays block by block."""
    if scheme == "text":
        out: np.ndarray = np.empty((len(codes), width), np.uint32)
    else:
        out = np.empty(len(codes), np.uint64)
    for start in range(0, len(codes), block):
        c, r = codes[start : start + block], rows[start : start + block]
        part = out[start : start + block]
        for code, (raw, kind) in enumerate(arrays):
            sel = np.flatnonzero(c == code)
            if len(sel):
                part[sel] = check_block(raw[r[sel]], kind, scheme=scheme, width=width)
    return out
