"""Property tests: the reader never crashes on hostile bytes, and subsets round-trip."""

from __future__ import annotations

import io
import struct

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from submissions.errors import SubsetFileError
from submissions.subset_file import MAGIC, read_subset_bytes, subset_from_uids
from submissions.uid128 import records, to_hex

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _read_or_reject(data: bytes) -> None:
    """Either a usable SubsetFile or a SubsetFileError; anything else fails the test."""
    try:
        sub = read_subset_bytes(data, max_bytes=1 << 20)
    except SubsetFileError as err:
        assert err.code and str(err)
        return
    assert len(sub) >= 1
    assert len(sub.uids) == len(sub)  # canonical text can always be made
    assert sub.uid_strings([0, len(sub) - 1])


@FAST
@given(st.binary(max_size=512))
def test_arbitrary_bytes_never_crash_the_reader(data: bytes) -> None:
    _read_or_reject(data)


_DESCRS = st.sampled_from(
    [
        *("<U4", "|S3", "<i8", "<u2", "<f8", "|b1", "|O", "<c16", "|V16", "<M8[D]", ">U2", "<U0"),
        *("[('f0', '<u8'), ('f1', '<u8')]", "[('a', '|O')]", "<Q99x", "(2,)u8", "'"),
    ]
)
_SHAPES = st.sampled_from(
    ["()", "(0,)", "(1,)", "(3,)", "(2, 2)", "(-1,)", "(1000000000000,)", "(1.5,)"]
)


@FAST
@given(
    version=st.sampled_from([b"\x01\x00", b"\x02\x00", b"\x03\x00", b"\x04\x00"]),
    descr=_DESCRS,
    shape=_SHAPES,
    fortran=st.sampled_from(["False", "True", "1"]),
    data=st.binary(max_size=96),
    cut=st.integers(min_value=0, max_value=40),
)
def test_npy_shaped_garbage_never_crashes_the_reader(
    version: bytes, descr: str, shape: str, fortran: str, data: bytes, cut: int
) -> None:
    quoted = descr if descr.startswith(("[", "(")) else repr(descr)
    header = f"{{'descr': {quoted}, 'fortran_order': {fortran}, 'shape': {shape}, }}".encode()
    fmt = "<H" if version == b"\x01\x00" else "<I"
    blob = MAGIC + version + struct.pack(fmt, len(header)) + header + data
    _read_or_reject(blob)
    _read_or_reject(blob[: max(len(blob) - cut, 0)])


@FAST
@given(st.lists(st.binary(min_size=1, max_size=3), min_size=1, max_size=4), st.data())
def test_mutated_valid_files_never_crash_the_reader(patches: list, data: st.DataObject) -> None:
    buf = io.BytesIO()
    np.save(buf, np.array(["pa00001", "pa00002", "é"]), allow_pickle=False)
    blob = bytearray(buf.getvalue())
    for patch in patches:
        at = data.draw(st.integers(min_value=0, max_value=len(blob) - 1))
        blob[at : at + len(patch)] = patch
    _read_or_reject(bytes(blob))


_UID_TEXT = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
    min_size=1,
    max_size=12,
)


@settings(max_examples=100, deadline=None)
@given(st.lists(_UID_TEXT, min_size=1, max_size=40, unique=True))
def test_text_subsets_round_trip_in_file_order(uids: list[str]) -> None:
    buf = io.BytesIO()
    np.save(buf, np.array(uids), allow_pickle=False)
    sub = read_subset_bytes(buf.getvalue())
    assert sub.uids.tolist() == uids
    assert subset_from_uids(uids).uids.tolist() == sub.uids.tolist()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1)), min_size=1))
def test_uid128_subsets_round_trip_as_hex(pairs: list[tuple[int, int]]) -> None:
    hi = np.array([p[0] for p in pairs], np.uint64)
    lo = np.array([p[1] for p in pairs], np.uint64)
    buf = io.BytesIO()
    np.save(buf, records(hi, lo), allow_pickle=False)
    sub = read_subset_bytes(buf.getvalue())
    assert sub.kind == "uid128"
    assert sub.uids.tolist() == [f"{a:032x}" for a in ((h << 64) | lo_ for h, lo_ in pairs)]
    assert to_hex(hi, lo).tolist() == sub.uids.tolist()
