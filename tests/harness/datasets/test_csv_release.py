"""csv_release converts a research-style release; prepare_dataset is atomic and skips done work."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.datasets.preparers import PREPARERS, get_preparer, prepare_dataset
from harness.settings import HarnessSettings
from harness.specs import DatasetSpec, TaskSpec
from submissions.errors import ConfigError, DataNotFound, UnknownName

CLASSES = ["bicycle", "chair", "tree"]  # what make_csv_release (tests/conftest.py) writes
Release = Callable[..., Path]


def _spec(task_type: str = "classification", preparer: str | None = None) -> DatasetSpec:
    return DatasetSpec(
        name="Mini",
        task_type=task_type,  # type: ignore[arg-type]
        version="2.0",
        description="a tiny release",
        path="Mini",
        tasks=(TaskSpec(name="test1", query="val1", test="test1"),),
        fractions=(0.5,),
        default_recipe="linear_probe",
        primary_metric="accuracy",
        preparer=preparer,
    )


@pytest.fixture
def write_release(make_csv_release: Callable[..., Path]) -> Callable[..., Path]:
    return make_csv_release


def test_release_becomes_the_benchmark_format(tmp_path: Path, write_release: Release) -> None:
    release = write_release(tmp_path / "release")
    settings = HarnessSettings(data_root=tmp_path / "data")
    ds = prepare_dataset(spec=_spec(), settings=settings, source=release)
    pool = ds.split("train")
    assert ds.pool_size == 6 and ds.split_size("test1") == 6
    assert pool["label"].tolist() == [0, 1, 2, 0, 1, 2]  # sorted class names -> ints
    assert pool["label_name"].tolist()[:3] == CLASSES
    assert pool["caption"].iloc[1] == "a photo of a chair"
    assert set(pool["caption_nolabel"]) == {"a photo"}
    assert pool["region"].eq("Africa").all()
    for name in pool["filename"]:
        assert (ds.image_root / name).read_bytes() == (release / "images" / name).read_bytes()
    assert ds.manifest["classes"] == CLASSES
    assert ds.manifest["images"]["files"] == 18
    assert set(ds.manifest["release_csv_sha256"]) == {"train", "val1", "test1"}
    codes, rows = ds.uid_index().lookup(np.array(["val1-4", "nope"]))
    assert rows.tolist() == [4, -1] and codes[1] == -1


def test_default_source_is_under_the_data_root(tmp_path: Path, write_release: Release) -> None:
    write_release(tmp_path / "data" / "raw" / "Mini")
    ds = prepare_dataset(spec=_spec(), settings=HarnessSettings(data_root=tmp_path / "data"))
    assert ds.pool_size == 6


def test_missing_release_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(DataNotFound) as err:
        prepare_dataset(spec=_spec(), settings=HarnessSettings(data_root=tmp_path))
    text = str(err.value)
    assert "train.csv" in text and "--source DIR" in text and "raw/Mini" in text
    assert not (tmp_path / "Mini").exists()  # nothing half-prepared is left to look prepared


def test_missing_images_and_duplicate_uids_are_reported(
    tmp_path: Path, write_release: Release
) -> None:
    release = write_release(tmp_path / "release")
    (release / "images" / "test1-0.png").unlink()
    settings = HarnessSettings(data_root=tmp_path / "data")
    with pytest.raises(DataNotFound, match=r"1 of 18 images .* missing.*test1-0\.png"):
        prepare_dataset(spec=_spec(), settings=settings, source=release)
    release2 = write_release(tmp_path / "release2")
    val = pd.read_csv(release2 / "val1.csv")
    val.loc[0, "uid"] = "train-3"
    val.to_csv(release2 / "val1.csv", index=False)
    with pytest.raises(ConfigError, match="train-3"):
        prepare_dataset(spec=_spec(), settings=settings, source=release2)


def test_regression_labels_and_detection_refusal(tmp_path: Path, write_release: Release) -> None:
    release = write_release(tmp_path / "release")
    for split in ("train", "val1", "test1"):
        df = pd.read_csv(release / f"{split}.csv")
        df["label"] = np.linspace(-1, 1, len(df))
        df.to_csv(release / f"{split}.csv", index=False)
    settings = HarnessSettings(data_root=tmp_path / "data")
    ds = prepare_dataset(spec=_spec("regression"), settings=settings, source=release)
    assert ds.split("train")["label"].dtype == np.float64
    with pytest.raises(ConfigError, match="detection"):
        prepare_dataset(spec=_spec("detection"), settings=settings, source=release, force=True)
    assert ds.dir.is_prepared()  # a failed forced rebuild leaves the old dataset in place
    assert not (tmp_path / "data" / "Mini.partial").exists()


def test_force_rebuilds_and_unknown_preparer_suggests(
    tmp_path: Path, write_release: Release
) -> None:
    release = write_release(tmp_path / "release")
    settings = HarnessSettings(data_root=tmp_path / "data")
    ds = prepare_dataset(spec=_spec(), settings=settings, source=release)
    (ds.dir.root / "stale.txt").write_text("old")
    prepare_dataset(spec=_spec(), settings=settings, source=release, force=True)
    assert not (ds.dir.root / "stale.txt").exists()
    with pytest.raises(UnknownName, match="Did you mean 'csv_release'"):
        prepare_dataset(spec=_spec(preparer="csv_relase"), settings=settings, force=True)


def test_builtin_preparers_are_registered() -> None:
    get_preparer("demo")
    assert {"demo", "csv_release"} <= set(PREPARERS.names())
