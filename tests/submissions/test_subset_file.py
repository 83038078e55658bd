"""The subset file contract: accepted kinds, canonical UIDs, memory mapping, writing."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from submissions.errors import SubsetFileError
from submissions.subset_file import (
    ERROR_CODES,
    read_subset_bytes,
    read_subset_file,
    subset_from_uids,
    write_subset_file,
)
from submissions.uid128 import is_uid128_dtype, parse_hex, records, to_hex


def npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("arr", "kind", "uids"),
    [
        (np.array(["pa1", "b"]), "str", ["pa1", "b"]),
        (np.array(["pa1", "b"], dtype=">U5"), "str", ["pa1", "b"]),
        (np.array([b"pa1", b"b"]), "bytes", ["pa1", "b"]),
        (np.array([17, -3], dtype=np.int16), "int", ["17", "-3"]),
        (np.array([2**64 - 1, 0], dtype=np.uint64), "uint", ["18446744073709551615", "0"]),
        (
            records(np.array([1, 2**64 - 1], np.uint64), np.array([255, 0], np.uint64)),
            "uid128",
            ["000000000000000100000000000000ff", "ffffffffffffffff0000000000000000"],
        ),
    ],
)
def test_accepted_kinds_and_their_canonical_uids(arr: np.ndarray, kind: str, uids: list) -> None:
    sub = read_subset_bytes(npy(arr))
    assert sub.kind == kind
    assert sub.uids.tolist() == uids
    assert sub.uid_strings([1]) == uids[1:]
    assert len(sub) == sub.size == 2
    assert sub.nbytes == len(npy(arr))


def test_datacomp_big_endian_records_are_accepted() -> None:
    be = np.zeros(1, dtype=[("hi", ">u8"), ("lo", ">u8")])
    be["hi"], be["lo"] = 1, 2
    assert is_uid128_dtype(be.dtype)
    assert read_subset_bytes(npy(be)).uids.tolist() == ["0" * 15 + "1" + "0" * 15 + "2"]


def test_hex_text_and_records_convert_both_ways() -> None:
    rng = np.random.default_rng(0)
    hi, lo = (rng.integers(0, 2**64, 50, dtype=np.uint64, endpoint=False) for _ in range(2))
    text = to_hex(hi, lo)
    assert all(len(t) == 32 and t == t.lower() for t in text)
    assert text[0] == f"{int(hi[0]):016x}{int(lo[0]):016x}"
    ok, hi2, lo2 = parse_hex(text)
    assert ok.all() and (hi2 == hi).all() and (lo2 == lo).all()
    bad = np.array([text[0].upper(), text[0][:31], text[0] + "0", "g" * 32, " " + text[0][1:]])
    assert not parse_hex(bad)[0].any()


def test_files_are_memory_mapped_and_read_lazily(tmp_path: Path) -> None:
    path = write_subset_file(tmp_path / "s.npy", [f"pa{i:05d}" for i in range(1000)])
    sub = read_subset_file(path)
    assert isinstance(sub.raw, np.memmap)
    assert sub.path == path and sub.nbytes == path.stat().st_size
    assert sub.uid_strings([999, 0]) == ["pa00999", "pa00000"]


def test_write_refuses_what_the_reader_would_reject(tmp_path: Path) -> None:
    with pytest.raises(SubsetFileError) as err:
        write_subset_file(tmp_path / "x.npy", np.zeros((2, 2)))
    assert err.value.code == "multidimensional"
    with pytest.raises(SubsetFileError):
        write_subset_file(tmp_path / "x.npy", [])
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_write_accepts_python_lists_and_object_arrays(tmp_path: Path) -> None:
    obj = np.array(["a", "bb"], dtype=object)  # what pandas' .to_numpy() gives
    assert read_subset_file(write_subset_file(tmp_path / "o.npy", obj)).kind == "str"
    assert read_subset_file(write_subset_file(tmp_path / "i.npy", [3, 4])).uids.tolist() == [
        "3",
        "4",
    ]
    assert subset_from_uids(["x"]).uids.tolist() == ["x"]


def test_every_error_code_has_a_message_naming_the_reason() -> None:
    with pytest.raises(SubsetFileError) as err:
        read_subset_bytes(npy(np.array([1.5])))
    assert err.value.code == "float_dtype"
    assert str(err.value).startswith(ERROR_CODES["float_dtype"])
    assert "np.save" in str(err.value)  # says what to do


def test_unreadable_path_is_a_subset_file_error(tmp_path: Path) -> None:
    with pytest.raises(SubsetFileError) as err:
        read_subset_file(tmp_path / "missing.npy")
    assert err.value.code == "unreadable"


def test_submissions_and_validation_import_without_torch() -> None:
    code = (
        "import sys, submissions.subset_file, harness.validation, harness.cli.validate; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])
