"""The subset file contract: a strict, safe, memory-mapped reader of ``.npy`` subset files.

A subset is a 1-D ``.npy`` array of UIDs. Accepted dtypes (``SubsetFile.kind``):

=========  ===============================================  =============================
kind       dtype                                            canonical UID text
=========  ===============================================  =============================
str        unicode ``<U*`` / ``>U*``                        the string itself
bytes      byte strings ``S*`` (ASCII only)                 the decoded string
int/uint   any signed / unsigned integer                    decimal, e.g. ``"17"``
uid128     DataComp record of two uint64 (``u8,u8``)        32-char lowercase hex
=========  ===============================================  =============================

Everything else is rejected with a :class:`~submissions.errors.SubsetFileError` whose
``code`` names the reason (see :data:`ERROR_CODES`). The file is never unpickled
(``allow_pickle`` is never enabled; the header is parsed with ``ast.literal_eval``) and the
data is memory-mapped, so a 500 MB file costs no extra RAM until it is used::

    sub = read_subset_file(Path("my_subset.npy"))     # SubsetFileError(code, message)
    sub.kind, len(sub), sub.nbytes                       # "uid128", 30_000_000, 480_000_128
    sub.raw                                               # the mapped 1-D array, as stored
    sub.uid_strings([0, 1])                               # canonical text of two entries
    sub.uids                                              # all canonical UIDs (small files)
    write_subset_file(Path("out.npy"), ["pa00001", "pa00007"])

The canonical form of a *validated* subset (sorted pool row ids and their sha256) is made by
``harness.validation``, which needs the dataset; this module knows no dataset.
"""

from __future__ import annotations

import ast
import os
import struct
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from submissions.errors import SubsetFileError
from submissions.uid128 import is_uid128_dtype, split128, to_hex

Kind = Literal["str", "bytes", "int", "uint", "uid128"]

DEFAULT_MAX_BYTES = 1 << 30  # the server's default upload cap (TDC_MAX_UPLOAD_BYTES)
MAX_HEADER_BYTES = 10_000  # numpy's own limit for untrusted headers
MAGIC = b"\x93NUMPY"
_VERSIONS = {(1, 0): ("<H", "latin1"), (2, 0): ("<I", "latin1"), (3, 0): ("<I", "utf8")}
_SCAN_BYTES = 2 << 20  # content scans read a file in blocks of this many bytes
_MAX_CODE_POINT = 0x10FFFF

ERROR_CODES: dict[str, str] = {
    "empty_file": "the file has zero bytes",
    "too_large": "the file exceeds the size cap",
    "pickle": "the file is a Python pickle, never loaded",
    "npz_archive": "the file is an .npz archive, not a single .npy array",
    "not_npy": "the file is not in NumPy .npy format",
    "truncated_header": "the file ends inside the .npy header",
    "unsupported_version": "unknown .npy format version",
    "header_too_large": "the .npy header is larger than numpy's safety limit",
    "bad_header": "the .npy header is not a valid header dictionary",
    "bad_dtype": "the header's dtype description is not a valid dtype",
    "object_array": "an array of Python objects (needs pickle)",
    "object_field": "a record dtype with a Python-object field (needs pickle)",
    "scalar_array": "a 0-d array instead of a 1-D array",
    "multidimensional": "an array with more than one dimension",
    "float_dtype": "floating-point UIDs",
    "bool_dtype": "boolean values (a mask, not UIDs)",
    "complex_dtype": "complex numbers",
    "datetime_dtype": "dates or time spans",
    "void_dtype": "raw bytes (void) without fields",
    "record_dtype": "a record dtype other than DataComp's two uint64 fields",
    "empty_array": "an array with no UIDs",
    "truncated": "the header promises more data than the file holds",
    "trailing_data": "extra bytes after the array data",
    "empty_uid": "an empty-string UID",
    "non_ascii_bytes": "byte-string UIDs with non-ASCII bytes",
    "bad_code_point": "unicode UIDs with invalid code points (surrogates or > U+10FFFF)",
}

_HINT = (
    "save a 1-D array of UIDs with numpy, e.g. "
    "np.save('subset.npy', np.array(uids, dtype=str)) (or DataComp's u8,u8 records)"
)


def _fail(code: str, detail: str) -> SubsetFileError:
    return SubsetFileError(code, f"{ERROR_CODES[code]}: {detail}")


@dataclass(frozen=True, eq=False)
class SubsetFile:
    """A read subset: the stored 1-D array (memory-mapped for files), its kind and size.

    ``offset`` is where the array's data starts in ``path`` (files only).
    """

    raw: np.ndarray
    kind: Kind
    nbytes: int
    path: Path | None = None
    offset: int = 0

    def __len__(self) -> int:
        return len(self.raw)

    @property
    def size(self) -> int:
        return len(self.raw)

    @cached_property
    def uids(self) -> npt.NDArray[np.str_]:
        """Every canonical UID, in file order (materialises them: mind large files)."""
        return canonical_strings(self.raw, self.kind)

    def uid_strings(self, positions: Sequence[int] | np.ndarray) -> list[str]:
        """Canonical UIDs of the entries at ``positions`` (file order indices)."""
        picked = self.raw[np.asarray(positions, dtype=np.int64)]
        return [str(u) for u in canonical_strings(picked, self.kind)]

    def chunks(self, rows: int) -> Iterator[tuple[int, np.ndarray]]:
        """``(start, raw[start:start+rows])`` blocks, to bound memory on large files.

        A file's blocks are read into fresh arrays rather than sliced from the mapping:
        pages of a mapping stay in the process's resident memory once touched, so walking
        a 1 GB mapping would grow it by 1 GB; reads leave the data in the page cache only.
        """
        n = len(self.raw)
        if self.path is None:
            for start in range(0, n, rows):
                yield start, self.raw[start : start + rows]
            return
        dtype, size = self.raw.dtype, self.raw.dtype.itemsize
        with self.path.open("rb") as f:
            for start in range(0, n, rows):
                count = min(rows, n - start)
                f.seek(self.offset + start * size)
                block = np.fromfile(f, dtype=dtype, count=count)
                if len(block) != count:
                    raise _fail("truncated", f"{self.path} changed while it was read")
                yield start, block


def as_uid_array(
    uids: Sequence[str] | Sequence[int] | np.ndarray, *, strict: bool = True
) -> tuple[np.ndarray, Kind]:
    """A 1-D array of UIDs (object arrays, e.g. from pandas, become str) and its kind.

    ``strict=False`` (lookups) lets empty or odd text through, as UIDs that match nothing;
    byte strings must still be ASCII so they can be decoded.
    """
    arr = np.asarray(uids)
    if arr.dtype.kind == "O":
        arr = np.asarray([str(u) for u in arr.ravel()], dtype=np.str_).reshape(arr.shape)
    kind = _kind(arr.dtype, arr.shape)
    if strict or kind == "bytes":
        _SCANS.get(kind, _no_scan)(_blocks(arr))
    return arr, kind


def subset_from_uids(uids: Sequence[str] | Sequence[int] | np.ndarray) -> SubsetFile:
    """An in-memory subset under the same contract as a file (for baselines and tests)."""
    arr, kind = as_uid_array(uids)
    return SubsetFile(raw=arr, kind=kind, nbytes=int(arr.nbytes))


def canonical_strings(raw: np.ndarray, kind: Kind) -> npt.NDArray[np.str_]:
    """Canonical UID text of a block of stored values of the given kind."""
    return _CANONICAL[kind](raw)


def _canon_str(raw: np.ndarray) -> npt.NDArray[np.str_]:
    return np.asarray(raw, dtype=raw.dtype.newbyteorder("<"))


def _canon_bytes(raw: np.ndarray) -> npt.NDArray[np.str_]:
    return raw.astype(f"<U{max(raw.dtype.itemsize, 1)}")  # ASCII checked when read


def _canon_int(raw: np.ndarray) -> npt.NDArray[np.str_]:
    return raw.astype(np.int64 if raw.dtype.kind == "i" else np.uint64).astype(np.str_)


def _canon_uid128(raw: np.ndarray) -> npt.NDArray[np.str_]:
    return to_hex(*split128(raw))


_CANONICAL = {
    "str": _canon_str,
    "bytes": _canon_bytes,
    "int": _canon_int,
    "uint": _canon_int,
    "uid128": _canon_uid128,
}


# --- reading -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Header:
    dtype: np.dtype
    count: int
    offset: int
    kind: Kind


def read_subset_file(path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> SubsetFile:
    """Read and check a subset file; the data stays memory-mapped."""
    path = Path(path)
    try:
        total = path.stat().st_size
        _check_total(total, max_bytes)
        with path.open("rb") as f:
            head = f.read(12 + MAX_HEADER_BYTES)
    except OSError as err:
        raise SubsetFileError("unreadable", f"cannot read {path}: {err.strerror}") from None
    hdr = _parse(head, total)
    raw = np.memmap(path, dtype=hdr.dtype, mode="r", offset=hdr.offset, shape=(hdr.count,))
    return _checked(SubsetFile(raw=raw, kind=hdr.kind, nbytes=total, path=path, offset=hdr.offset))


def read_subset_bytes(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> SubsetFile:
    """Read and check a subset held in memory (no copy of the data is made)."""
    total = len(data)
    _check_total(total, max_bytes)
    hdr = _parse(bytes(data[: 12 + MAX_HEADER_BYTES]), total)
    raw = np.frombuffer(data, dtype=hdr.dtype, count=hdr.count, offset=hdr.offset)
    return _checked(SubsetFile(raw=raw, kind=hdr.kind, nbytes=total))


def _check_total(total: int, max_bytes: int) -> None:
    if total == 0:
        raise _fail("empty_file", _HINT)
    if total > max_bytes:
        raise _fail("too_large", f"{total:,} bytes > the cap of {max_bytes:,} bytes")


def _checked(sub: SubsetFile) -> SubsetFile:
    rows = max(1, _SCAN_BYTES // max(sub.raw.dtype.itemsize, 1))
    _SCANS.get(sub.kind, _no_scan)(block for _, block in sub.chunks(rows))
    return sub


def _parse(head: bytes, total: int) -> _Header:
    """Check everything the header says against the file size; no data is read."""
    _check_magic(head)
    fmt, encoding = _version(head)
    start = 8 + struct.calcsize(fmt)
    if len(head) < start:
        raise _fail("truncated_header", f"{total} bytes")
    (hlen,) = struct.unpack(fmt, head[8:start])
    if hlen > MAX_HEADER_BYTES:
        raise _fail("header_too_large", f"{hlen:,} bytes > {MAX_HEADER_BYTES:,}")
    if start + hlen > total:
        raise _fail("truncated_header", f"header of {hlen} bytes, file of {total}")
    fields = _header_dict(head[start : start + hlen], encoding)
    dtype = _dtype(fields["descr"])
    kind = _kind(dtype, fields["shape"])
    count = fields["shape"][0]
    offset = start + hlen
    expected, have = count * dtype.itemsize, total - offset
    if have < expected:
        raise _fail("truncated", f"{count:,} UIDs need {expected:,} bytes, the file holds {have:,}")
    if have > expected:
        raise _fail("trailing_data", f"{have - expected:,} bytes after {count:,} UIDs")
    return _Header(dtype=dtype, count=count, offset=offset, kind=kind)


def _check_magic(head: bytes) -> None:
    if head.startswith(MAGIC):
        return
    if len(head) < len(MAGIC) and MAGIC.startswith(head):
        raise _fail("truncated_header", f"only {len(head)} bytes")
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        raise _fail("pickle", "pickled files are never loaded; " + _HINT)
    if head.startswith(b"PK\x03\x04"):
        raise _fail("npz_archive", "submit one array saved with np.save, not np.savez")
    raise _fail("not_npy", _HINT)


def _version(head: bytes) -> tuple[str, str]:
    if len(head) < 8:
        raise _fail("truncated_header", f"only {len(head)} bytes")
    version = (head[6], head[7])
    if version not in _VERSIONS:
        raise _fail("unsupported_version", f"version {version[0]}.{version[1]}; 1.0-3.0 exist")
    return _VERSIONS[version]


def _header_dict(blob: bytes, encoding: str) -> dict[str, Any]:
    try:
        fields = ast.literal_eval(blob.decode(encoding))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError, UnicodeError):
        raise _fail("bad_header", "not a Python dict literal") from None
    if not isinstance(fields, dict) or set(fields) != {"descr", "fortran_order", "shape"}:
        raise _fail("bad_header", "expected exactly the keys descr, fortran_order, shape")
    shape = fields["shape"]
    if not isinstance(fields["fortran_order"], bool) or not isinstance(shape, tuple):
        raise _fail("bad_header", "fortran_order must be a bool and shape a tuple")
    if not all(type(d) is int and d >= 0 for d in shape):
        raise _fail("bad_header", f"shape {shape!r} must hold non-negative integers")
    return fields


def _dtype(descr: Any) -> np.dtype:
    try:
        return np.lib.format.descr_to_dtype(descr)
    except Exception:  # numpy raises many types for hostile descriptions
        raise _fail("bad_dtype", f"{str(descr)[:80]!r}") from None


_FAMILY = {
    "f": "float_dtype",
    "b": "bool_dtype",
    "c": "complex_dtype",
    "M": "datetime_dtype",
    "m": "datetime_dtype",
}
_KINDS: dict[str, Kind] = {"U": "str", "S": "bytes", "i": "int", "u": "uint"}


def _kind(dtype: np.dtype, shape: tuple[int, ...]) -> Kind:
    """The accepted kind of a (dtype, shape), else the specific rejection."""
    if dtype.hasobject:
        code = "object_field" if dtype.names else "object_array"
        raise _fail(code, "object arrays need pickle and are never loaded; " + _HINT)
    if len(shape) == 0:
        raise _fail("scalar_array", "save a 1-D array, e.g. np.array([uid])")
    if len(shape) > 1:
        raise _fail("multidimensional", f"shape {shape}; flatten it to 1-D (arr.ravel())")
    if dtype.kind in _FAMILY:
        raise _fail(_FAMILY[dtype.kind], f"dtype {dtype.str}; " + _HINT)
    if dtype.kind == "V":
        if is_uid128_dtype(dtype):
            kind: Kind = "uid128"
        else:
            code = "record_dtype" if dtype.names else "void_dtype"
            raise _fail(code, f"dtype {dtype.descr}; 128-bit UIDs must be np.dtype('u8,u8')")
    elif dtype.kind in _KINDS:
        kind = _KINDS[dtype.kind]
    else:  # numpy's newer string dtypes and anything else
        raise _fail("bad_dtype", f"dtype {dtype.str} is not a UID dtype; " + _HINT)
    if shape[0] == 0:
        raise _fail("empty_array", "a subset must name at least one UID")
    if dtype.itemsize == 0:  # '<U0' / '|S0': every UID is the empty string
        raise _fail("empty_uid", f"dtype {dtype.str} holds zero characters")
    return kind


# --- content scans: cheap vectorised checks so later conversions cannot fail ---------------


def _blocks(raw: np.ndarray) -> Iterator[np.ndarray]:
    rows = max(1, _SCAN_BYTES // max(raw.dtype.itemsize, 1))
    for start in range(0, len(raw), rows):
        yield raw[start : start + rows]


def _scan_str(blocks: Iterable[np.ndarray]) -> None:
    for block in blocks:
        width = block.dtype.itemsize // 4
        if width == 0:
            raise _fail("empty_uid", "the dtype holds zero characters")
        cps = np.ascontiguousarray(block, dtype=block.dtype.newbyteorder("<")).view(np.uint32)
        cps = cps.reshape(len(block), width)
        if not bool(np.all(cps[:, 0])):
            raise _fail("empty_uid", "every UID must be a non-empty string")
        if int(cps.max()) < 0xD800:  # the usual case (ASCII, most scripts): one pass
            continue
        bad = (cps > _MAX_CODE_POINT) | ((cps >= 0xD800) & (cps <= 0xDFFF))
        if bool(np.any(bad)):
            raise _fail("bad_code_point", "save the UIDs as ordinary Python strings")


def _scan_bytes(blocks: Iterable[np.ndarray]) -> None:
    for block in blocks:
        width = block.dtype.itemsize
        if width == 0:
            raise _fail("empty_uid", "the dtype holds zero bytes")
        b = np.ascontiguousarray(block).view(np.uint8).reshape(len(block), width)
        if not bool(np.all(b[:, 0])):
            raise _fail("empty_uid", "every UID must be a non-empty string")
        if bool(np.any(b >= 0x80)):
            raise _fail("non_ascii_bytes", "save non-ASCII UIDs as a unicode (str) array")


def _no_scan(blocks: Iterable[np.ndarray]) -> None:
    del blocks


_SCANS = {"str": _scan_str, "bytes": _scan_bytes}


# --- writing -------------------------------------------------------------------------------


def write_subset_file(path: Path, uids: Sequence[str] | Sequence[int] | np.ndarray) -> Path:
    """Write ``uids`` as a subset file the reader accepts (atomically); returns ``path``."""
    arr, _ = as_uid_array(uids)
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, arr, allow_pickle=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
