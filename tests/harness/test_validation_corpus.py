"""The bad-input corpus: malformed and cheating subset files, each rejected with its own code.

The ``corpus`` fixture writes one file per kind into a fresh directory; every file must be
rejected by ``validate_file`` with exactly the expected code, and validating all of them must
write nothing (neither next to the files nor into the dataset).
"""

from __future__ import annotations

import io
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from harness.datasets import Dataset
from harness.validation import load_and_validate, validate_file
from submissions.errors import SubsetFileError, ValidationFailed
from submissions.subset_file import MAGIC, read_subset_bytes, read_subset_file


@dataclass(frozen=True)
class Bad:
    code: str
    data: bytes
    max_bytes: int = 1 << 30
    fraction: float = 0.1


def npy(arr: np.ndarray, *, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


def handmade(header: str, data: bytes = b"", version: tuple[int, int] = (1, 0)) -> bytes:
    """A .npy file with a header we choose (numpy would refuse to write most of these)."""
    fmt = "<H" if version == (1, 0) else "<I"
    blob = header.encode("latin1")
    return MAGIC + bytes(version) + struct.pack(fmt, len(blob)) + blob + data


def build_corpus(ds: Dataset) -> dict[str, Bad]:
    pool = ds.uids("train")
    good = pool[:10]
    valid = npy(good)
    npz = io.BytesIO()
    np.savez(npz, uids=good)
    header = "{'descr': '%s', 'fortran_order': False, 'shape': (%d,), }"
    return {
        "empty file": Bad("empty_file", b""),
        "over the size cap": Bad("too_large", valid, max_bytes=64),
        "a pickle": Bad("pickle", pickle.dumps(list(good), protocol=4)),
        "an npz archive": Bad("npz_archive", npz.getvalue()),
        "a CSV file": Bad("not_npy", ("uid\n" + "\n".join(good)).encode()),
        "cut inside the magic": Bad("truncated_header", MAGIC + b"\x01"),
        "unknown format version": Bad("unsupported_version", MAGIC + b"\x09\x00" + valid[8:]),
        "huge header length": Bad(
            "header_too_large", MAGIC + b"\x02\x00" + struct.pack("<I", 10**6)
        ),
        "code in the header": Bad("bad_header", handmade("__import__('os').system('true')")),
        "invalid dtype text": Bad("bad_dtype", handmade(header % ("<Q99x", 1), b"\0" * 8)),
        "pickled object array": Bad(
            "object_array", npy(np.array(["pa00000", 7], dtype=object), allow_pickle=True)
        ),
        "record with an object field": Bad(
            "object_field",
            handmade(
                "{'descr': [('a', '|O'), ('b', '<u8')], 'fortran_order': False, 'shape': (1,)}"
            ),
        ),
        "0-d array": Bad("scalar_array", npy(np.array(pool[0]))),
        "2-d array": Bad("multidimensional", npy(good.reshape(2, 5))),
        "float UIDs": Bad("float_dtype", npy(np.arange(10, dtype=np.float32))),
        "a boolean mask": Bad("bool_dtype", npy(np.ones(len(pool), bool))),
        "complex numbers": Bad("complex_dtype", npy(np.array([1 + 2j]))),
        "dates": Bad("datetime_dtype", npy(np.array(["2024-01-01"], dtype="M8[D]"))),
        "raw void bytes": Bad("void_dtype", npy(np.zeros(3, "V16"))),
        "wrong record dtype": Bad("record_dtype", npy(np.zeros(3, "u4,u4"))),
        "no UIDs": Bad("empty_array", npy(np.array([], dtype="U7"))),
        "data cut short": Bad("truncated", valid[:-5]),
        "header promises more": Bad("truncated", handmade(header % ("<U7", 10**9), b"x" * 28)),
        "bytes after the data": Bad("trailing_data", valid + b"extra"),
        "an empty UID": Bad("empty_uid", npy(np.array([pool[0], ""]))),
        "non-ASCII byte strings": Bad("non_ascii_bytes", npy(np.array([b"pa0000\xff"]))),
        "a lone surrogate": Bad(
            "bad_code_point", handmade(header % ("<U1", 1), b"\x00\xd8\x00\x00")
        ),
        # cheating: well-formed files that break a benchmark rule
        "an unknown UID": Bad("unknown_uid", npy(np.append(good, "pa99999"))),
        "a duplicate": Bad("duplicate_uid", npy(np.append(good, good[3]))),
        "a query example": Bad("query_leak", npy(np.append(good, ds.uids("val1")[0]))),
        "a test example": Bad("test_leak", npy(np.append(good, ds.uids("test2")[5]))),
        "over the budget": Bad("over_budget", npy(pool[:31])),
    }


def _snapshot(*roots: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p): (p.stat().st_size, p.stat().st_mtime_ns)
        for root in roots
        for p in sorted(root.rglob("*"))
    }


@pytest.fixture
def corpus(tiny_dataset: Dataset, tmp_path: Path) -> dict[str, tuple[Bad, Path]]:
    out = {}
    for i, (name, bad) in enumerate(build_corpus(tiny_dataset).items()):
        path = tmp_path / f"bad{i:02d}.npy"
        path.write_bytes(bad.data)
        out[name] = (bad, path)
    return out


def test_corpus_is_large_and_every_kind_has_its_own_code(corpus: dict) -> None:
    kinds = {bad.code for bad, _ in corpus.values()}
    assert len(kinds) >= 25
    assert len(kinds) == len(corpus) - 1  # only the two truncation variants share a code


def test_every_bad_file_is_rejected_with_its_code_and_nothing_is_written(
    corpus: dict[str, tuple[Bad, Path]], tiny_dataset: Dataset, tmp_path: Path
) -> None:
    tiny_dataset.uid_index()  # built (and written) once, before the snapshot
    before = _snapshot(tmp_path, tiny_dataset.dir.root)
    for name, (bad, path) in corpus.items():
        report = validate_file(
            path, ds=tiny_dataset, fraction=bad.fraction, task=None, max_bytes=bad.max_bytes
        )
        assert not report.ok, name
        assert [p.code for p in report.problems] == [bad.code], name
        assert report.sha256 is None or bad.code == "over_budget", name
    assert _snapshot(tmp_path, tiny_dataset.dir.root) == before


def test_reader_gives_the_same_code_for_a_path_and_for_bytes(
    corpus: dict[str, tuple[Bad, Path]],
) -> None:
    for name, (bad, path) in corpus.items():
        codes = [_code(read_subset_file, path, bad), _code(read_subset_bytes, bad.data, bad)]
        assert codes[0] == codes[1], name
        cheating = bad.code in {"unknown_uid", "duplicate_uid", "query_leak", "test_leak"}
        assert codes[0] == ("accepted" if cheating or bad.code == "over_budget" else bad.code)


def _code(read, source, bad: Bad) -> str:  # type: ignore[no-untyped-def]
    try:
        read(source, max_bytes=bad.max_bytes)
    except SubsetFileError as err:
        return err.code
    return "accepted"


def test_load_and_validate_raises_with_every_problem(
    corpus: dict[str, tuple[Bad, Path]], tiny_dataset: Dataset
) -> None:
    _, path = corpus["a pickle"]
    with pytest.raises(ValidationFailed) as info:
        load_and_validate(path, ds=tiny_dataset, fraction=0.3, task="nope")
    codes = [p["code"] for p in info.value.problems()]
    assert codes == ["pickle", "fraction_not_allowed", "unknown_task"]
    assert info.value.http_status == 422
