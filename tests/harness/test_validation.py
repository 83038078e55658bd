"""Validation rules on the tiny dataset: one test per rule, all problems at once, identity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.datasets import Dataset
from harness.datasets.uid_index import UidIndex
from harness.specs import DatasetSpec, TaskSpec
from harness.validation import (
    check_subset,
    load_and_validate,
    subset_sha256,
    validate_file,
    validate_subset,
)
from submissions.subset_file import SubsetFile, subset_from_uids, write_subset_file
from submissions.uid128 import records, to_hex


def codes(report) -> list[str]:  # type: ignore[no-untyped-def]
    return [p.code for p in report.problems]


def check(ds: Dataset, uids, fraction: float = 0.1, task: str | None = None):  # type: ignore[no-untyped-def]
    return validate_subset(subset_from_uids(uids), ds=ds, fraction=fraction, task=task)


def test_a_valid_subset(tiny_dataset: Dataset) -> None:
    pool = tiny_dataset.uids("train")
    picked = pool[::10]  # 30 = floor(0.1 x 300)
    report = check(tiny_dataset, picked, task="test1")
    assert report.ok and report.problems == []
    assert (report.size, report.budget, report.pool_size) == (30, 30, 300)
    assert report.pool_rows.tolist() == list(range(0, 300, 10))
    assert report.sha256 == subset_sha256(np.arange(0, 300, 10))
    labels = tiny_dataset.split("train")["label"].astype(str)
    assert report.class_counts == labels.iloc[::10].value_counts().sort_index().to_dict()
    assert report.pool_class_counts == labels.value_counts().sort_index().to_dict()
    assert "pool_rows" not in report.model_dump_json()


def test_unknown_uids_are_counted_and_the_first_ten_named(tiny_dataset: Dataset) -> None:
    pool = tiny_dataset.uids("train")
    strangers = [f"zz{i}" for i in range(12)]
    report = check(tiny_dataset, [*pool[:5], *strangers], fraction=0.25)
    assert codes(report) == ["unknown_uid"]
    problem = report.problems[0]
    assert problem.count == 12 and problem.sample == strangers[:10]
    assert "position 5" in problem.message and report.sha256 is None


def test_duplicates_are_reported_known_and_unknown(tiny_dataset: Dataset) -> None:
    pool = tiny_dataset.uids("train")
    report = check(tiny_dataset, [*pool[:10], pool[2], pool[2], pool[7], "zz", "zz"], 0.25)
    assert codes(report) == ["unknown_uid", "duplicate_uid"]
    dup = report.problems[1]
    assert dup.count == 4  # two extra pa00002, one pa00007, one zz
    assert set(dup.sample) == {pool[2], pool[7], "zz"}
    assert report.sha256 is None


@pytest.mark.parametrize(
    ("split", "code", "task"), [("val1", "query_leak", "test1"), ("test2", "test_leak", "test2")]
)
def test_leakage_from_any_query_or_test_split_names_the_split(
    tiny_dataset: Dataset, split: str, code: str, task: str
) -> None:
    leaked = tiny_dataset.uids(split)[:3]
    report = check(tiny_dataset, [*tiny_dataset.uids("train")[:5], *leaked], task="test1")
    assert codes(report) == [code]
    assert report.problems[0].count == 3 and report.problems[0].sample == leaked.tolist()
    assert repr(split) in report.problems[0].message and task in report.problems[0].message


def test_budget_is_floor_of_fraction_times_pool(tiny_dataset: Dataset) -> None:
    pool = tiny_dataset.uids("train")
    assert check(tiny_dataset, pool[:75], fraction=0.25).ok  # floor(0.25 x 300) = 75
    report = check(tiny_dataset, pool[:76], fraction=0.25)
    assert codes(report) == ["over_budget"] and report.problems[0].count == 1
    assert report.sha256 is not None  # the subset is well defined, only too big


def test_fraction_must_be_one_the_dataset_allows(tiny_dataset: Dataset) -> None:
    report = check(tiny_dataset, tiny_dataset.uids("train")[:5], fraction=0.2)
    assert codes(report) == ["fraction_not_allowed"] and report.budget is None
    assert "0.1, 0.25, 0.5" in report.problems[0].message


def test_task_must_be_one_of_the_datasets(tiny_dataset: Dataset) -> None:
    report = check(tiny_dataset, tiny_dataset.uids("train")[:5], task="tset1")
    assert codes(report) == ["unknown_task"]
    assert "'test1'" in report.problems[0].message


def test_all_problems_are_reported_at_once(tiny_dataset: Dataset) -> None:
    pool = tiny_dataset.uids("train")
    uids = [
        *pool[:40],
        pool[0],
        "nope",
        tiny_dataset.uids("val2")[0],
        tiny_dataset.uids("test1")[0],
    ]
    report = check(tiny_dataset, uids, fraction=0.1, task="test9")
    assert codes(report) == [
        "unknown_task",
        "unknown_uid",
        "duplicate_uid",
        "test_leak",
        "query_leak",
        "over_budget",
    ]
    assert not report.ok and report.size == 44


def test_file_errors_join_the_request_problems(tiny_dataset: Dataset, tmp_path: Path) -> None:
    path = tmp_path / "s.npy"
    path.write_bytes(b"not an npy file")
    report = validate_file(path, ds=tiny_dataset, fraction=0.3, task=None)
    assert codes(report) == ["not_npy", "fraction_not_allowed"] and report.size == 0


def test_load_and_validate_returns_the_report_of_a_valid_file(
    tiny_dataset: Dataset, tmp_path: Path
) -> None:
    path = write_subset_file(tmp_path / "s.npy", tiny_dataset.uids("train")[:30])
    report = load_and_validate(path, ds=tiny_dataset, fraction=0.1, task=None)
    assert report.ok and report.kind == "str" and report.nbytes == path.stat().st_size


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 299), min_size=1, max_size=75, unique=True), st.randoms())
def test_canonical_identity_ignores_order_and_form(tiny_dataset: Dataset, rows, rnd) -> None:  # type: ignore[no-untyped-def]
    pool = tiny_dataset.uids("train")
    shuffled = list(rows)
    rnd.shuffle(shuffled)
    a = check(tiny_dataset, pool[rows], fraction=0.25)
    b = check(tiny_dataset, pool[shuffled].astype("S"), fraction=0.25)  # bytes, other order
    assert a.ok and b.ok
    assert a.sha256 == b.sha256 == subset_sha256(np.array(rows))
    assert a.pool_rows.tolist() == sorted(rows)


def _hex_spec() -> DatasetSpec:
    return DatasetSpec(
        name="hex",
        task_type="classification",
        version="1",
        description="128-bit UIDs",
        path="hex",
        tasks=(TaskSpec(name="test1", query="val1", test="test1"),),
        fractions=(0.5,),
        default_recipe="linear_probe",
        primary_metric="accuracy",
    )


def test_datacomp_records_and_their_hex_text_name_the_same_rows() -> None:
    rng = np.random.default_rng(1)
    hi, lo = (rng.integers(0, 2**64, 60, dtype=np.uint64, endpoint=False) for _ in range(2))
    text = to_hex(hi, lo)
    index = UidIndex.build(
        {"train": text[:40], "val1": records(hi[40:50], lo[40:50]), "test1": text[50:]}
    )
    assert index.scheme == "hex128"
    spec = _hex_spec()
    as_records = SubsetFile(raw=records(hi[[3, 1, 7]], lo[[3, 1, 7]]), kind="uid128", nbytes=48)
    a = check_subset(as_records, spec=spec, index=index, fraction=0.5, task=None)
    b = check_subset(
        subset_from_uids(text[[7, 3, 1]]), spec=spec, index=index, fraction=0.5, task=None
    )
    assert a.ok and b.ok and a.sha256 == b.sha256 and a.pool_rows.tolist() == [1, 3, 7]
    leak = subset_from_uids(np.array([text[0], text[45], "0" * 32, text[0].upper()]))
    report = check_subset(leak, spec=spec, index=index, fraction=0.5, task=None)
    assert codes(report) == ["unknown_uid", "query_leak"]
    assert report.problems[0].sample == ["0" * 32, text[0].upper()]
