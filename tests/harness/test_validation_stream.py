"""Validation of files in bounded memory: the same report as the in-memory core, and memory
that does not grow with the file (issue 17, finding 10)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import harness.validation as rules
import harness.validation_unknowns as unknowns
from harness.datasets import Dataset
from harness.datasets.uid_index import UidIndex
from harness.specs import DatasetSpec, TaskSpec
from harness.validation import ValidationReport, check_subset, pool_labels, validate_file
from harness.validation_stream import check_file
from submissions.subset_file import SubsetFile, read_subset_file, subset_from_uids
from submissions.uid128 import records, to_hex
from tests.infra.ci import unavailable

REPO = Path(__file__).resolve().parents[2]


def assert_same(a: ValidationReport, b: ValidationReport) -> None:
    """Everything a caller sees: problems (messages, counts, samples), identity, counts."""
    assert a.problems == b.problems
    assert (a.ok, a.size, a.budget, a.sha256, a.kind) == (b.ok, b.size, b.budget, b.sha256, b.kind)
    assert a.class_counts == b.class_counts and a.pool_class_counts == b.pool_class_counts
    if a.sha256 is not None:  # a set of pool rows: the same sorted rows
        assert np.array_equal(a.pool_rows, b.pool_rows)


def both(subset: SubsetFile, chunk: int, **kw) -> tuple[ValidationReport, ValidationReport]:  # type: ignore[no-untyped-def]
    return check_subset(subset, **kw), check_file(subset, chunk_rows=chunk, **kw)


# --- the same report ------------------------------------------------------------------------

PARTS = st.sampled_from(["train", "train", "train", "unknown", "val1", "test2", "val2"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    picks=st.lists(st.tuples(PARTS, st.integers(0, 19)), min_size=1, max_size=150),
    chunk=st.integers(1, 40),
    form=st.sampled_from(["str", "bytes"]),
    fraction=st.sampled_from([0.1, 0.25, 0.5, 0.3]),
    task=st.sampled_from([None, "test1", "test9"]),
    limit=st.sampled_from([3, 1_000_000]),
    bucket=st.sampled_from([8, 4 << 20]),
    weak=st.sampled_from([None, 1, 3]),
)
def test_the_report_is_the_in_memory_one(  # type: ignore[no-untyped-def]
    tiny_dataset: Dataset, picks, chunk, form, fraction, task, limit, bucket, weak
) -> None:
    """Repeats of known and unknown UIDs across chunk edges, leaks, a small repeat limit,
    one-fingerprint buckets and fingerprints that collide (``weak``: only that many
    values): every problem, count and sample is check_subset's."""
    ds = tiny_dataset
    uids = [
        f"zz{i:03d}" if part == "unknown" else str(ds.uids(part)[i * 7 % len(ds.uids(part))])
        for part, i in picks
    ]
    arr = np.array(uids) if form == "str" else np.array(uids).astype("S")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(rules, "UNKNOWN_REPEAT_LIMIT", limit)
        mp.setattr(unknowns, "BUCKET_BYTES", bucket)
        if weak:
            real = unknowns._fingerprint
            mp.setattr(unknowns, "_fingerprint", lambda v: real(v) % np.uint64(weak) << 60)
        kw = {"spec": ds.spec, "index": ds.uid_index(), "labels": pool_labels(ds)}
        assert_same(*both(subset_from_uids(arr), chunk, fraction=fraction, task=task, **kw))


def _spec(name: str, fractions: tuple[float, ...] = (0.5,)) -> DatasetSpec:
    return DatasetSpec(
        name=name,
        task_type="classification",
        version="1",
        description="synthetic",
        path=name,
        tasks=(TaskSpec(name="test1", query="val1", test="test1"),),
        fractions=fractions,
        default_recipe="linear_probe",
        primary_metric="accuracy",
    )


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(st.integers(-30, 79), min_size=1, max_size=120),
    chunk=st.integers(1, 30),
    dtype=st.sampled_from(["<i8", ">i4", "<u2", "i1"]),
)
def test_integer_uids_give_the_same_report(rows, chunk, dtype) -> None:  # type: ignore[no-untyped-def]
    """Integers match their decimal text; unknown ones repeat by value (negatives too)."""
    index = UidIndex.build(
        {
            "train": np.arange(50).astype(str),
            "val1": np.arange(50, 60).astype(str),
            "test1": np.arange(60, 70).astype(str),
        }
    )
    arr = np.array(rows).astype(dtype)
    if dtype.endswith("u2"):
        arr = np.abs(np.array(rows)).astype(dtype)
    sub = SubsetFile(raw=arr, kind="uint" if "u" in dtype else "int", nbytes=int(arr.nbytes))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(unknowns, "BUCKET_BYTES", 40)
        assert_same(*both(sub, chunk, spec=_spec("ints"), index=index, fraction=0.5, task=None))


@settings(max_examples=40, deadline=None)
@given(picks=st.lists(st.integers(0, 79), min_size=1, max_size=80), chunk=st.integers(1, 20))
def test_datacomp_records_give_the_same_report(picks, chunk) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(3)
    hi, lo = (rng.integers(0, 2**64, 80, dtype=np.uint64, endpoint=False) for _ in range(2))
    index = UidIndex.build(
        {"train": to_hex(hi[:40], lo[:40]), "val1": records(hi[40:50], lo[40:50]),
         "test1": to_hex(hi[50:60], lo[50:60])}
    )  # fmt: skip
    sub = SubsetFile(raw=records(hi[picks], lo[picks]), kind="uid128", nbytes=16 * len(picks))
    assert_same(*both(sub, chunk, spec=_spec("hex"), index=index, fraction=0.5, task=None))


def test_a_file_is_read_in_chunks_with_the_same_report(
    tiny_dataset: Dataset, tmp_path: Path
) -> None:
    pool = tiny_dataset.uids("train")
    uids = np.array([*pool[:40], pool[3], "nope", "nope", tiny_dataset.uids("test1")[2]])
    path = tmp_path / "s.npy"
    np.save(path, uids.astype("S"))
    sub = read_subset_file(path)
    kw = {"spec": tiny_dataset.spec, "index": tiny_dataset.uid_index(), "fraction": 0.1}
    old, new = both(sub, 7, task=None, labels=pool_labels(tiny_dataset), **kw)
    assert_same(old, new)
    assert [p.code for p in new.problems] == [
        "unknown_uid", "duplicate_uid", "test_leak", "over_budget"
    ]  # fmt: skip
    report = validate_file(path, ds=tiny_dataset, fraction=0.1, task=None)
    assert report.problems == old.problems


def test_keep_rows_false_leaves_out_the_rows(tiny_dataset: Dataset, tmp_path: Path) -> None:
    path = tmp_path / "s.npy"
    np.save(path, tiny_dataset.uids("train")[::10])
    report = validate_file(path, ds=tiny_dataset, fraction=0.1, task=None, keep_rows=False)
    assert report.ok and report.pool_rows is None
    full = validate_file(path, ds=tiny_dataset, fraction=0.1, task=None)
    assert full.sha256 == report.sha256 and full.pool_rows.tolist() == list(range(0, 300, 10))


# --- memory ---------------------------------------------------------------------------------

_CHILD = """
import json, sys
from pathlib import Path
from harness.datasets import Dataset
from harness.specs import DatasetSpec
from harness.validation import validate_file

spec = DatasetSpec.model_validate_json(Path(sys.argv[1]).read_text())
ds = Dataset.open(spec, data_root=Path(sys.argv[2]))
validate_file(Path(sys.argv[3]), ds=ds, fraction=0.1, task=None)  # warm: imports, index

def status(key):
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(key))
    return int(line.split()[1]) / 1024

Path("/proc/self/clear_refs").write_text("5")  # restart the peak (VmHWM) from here
base = status("VmRSS:")
report = validate_file(Path(sys.argv[4]), ds=ds, fraction=0.1, task=None)
print(json.dumps({"grow_mb": status("VmHWM:") - base, "codes": [p.code for p in report.problems],
                  "counts": [p.count for p in report.problems]}))
"""


def test_peak_memory_does_not_grow_with_the_file(tiny_dataset: Dataset, tmp_path: Path) -> None:
    """A 64 MB upload (8M UIDs: the pool over and over, one in ten unknown, some of those
    twice) is validated with a peak RSS growth under half its size. In-memory validation
    grew by ~7x the file (227 MB for half this file), and would fail this."""
    if not Path("/proc/self/clear_refs").exists():
        unavailable("needs Linux's /proc/self/clear_refs to measure a peak")
    n, every, distinct_unknown = 8_000_000, 10, 700_000
    pool = tiny_dataset.uids("train").astype("S8")
    uids = np.resize(pool, n)
    unknown = np.arange(0, n, every)
    uids[unknown] = np.char.add(b"zz", (unknown // every % distinct_unknown).astype("S6"))
    big, small = tmp_path / "big.npy", tmp_path / "small.npy"
    np.save(big, uids)
    np.save(small, pool[:10])
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(tiny_dataset.spec.model_dump_json())
    data_root = tiny_dataset.dir.root.parent
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(spec_path), str(data_root), str(small), str(big)],
        cwd=REPO, capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["codes"] == ["unknown_uid", "duplicate_uid", "over_budget"]
    assert result["counts"][0] == len(unknown)
    # the UIDs named: 270 pool rows (the pool's every tenth was replaced) and the "zz" ones
    assert result["counts"][1] == n - 270 - distinct_unknown
    file_mb = big.stat().st_size / 2**20
    grow = result["grow_mb"]
    assert grow < file_mb / 2, f"peak RSS grew {grow:.0f} MB for a {file_mb:.0f} MB file"
