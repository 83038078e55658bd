"""Miniature WILDS iWildCam, WILDS FMoW and GeoDE releases build with ``prepare --release``.

Each miniature has the release's own files and columns (the ``wilds`` package's dataset
classes and GeoDE's index.csv); the specs are the shipped ones with smaller sizes.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from harness.cli.main import main
from harness.datasets import Dataset
from harness.datasets.preparers import prepare_dataset
from harness.settings import HarnessSettings
from harness.specs import DatasetSpec, ReleaseSpec, load_benchmark
from submissions.errors import ConfigError
from tests.harness.conftest import write_images


def shipped(name: str, **params: Any) -> DatasetSpec:
    """The shipped spec of ``name`` with release params overridden (smaller sizes)."""
    spec = load_benchmark(HarnessSettings().configs_dir).dataset(name)
    assert spec.release is not None
    release = ReleaseSpec(builder=spec.release.builder, params={**spec.release.params, **params})
    return spec.model_copy(update={"release": release})


def write_iwildcam(root: Path) -> Path:
    """iwildcam_v2.0: metadata.csv (index column, as WILDS writes it), categories.csv, train/."""
    rows = []
    plan = {0: ("train", 8), 1: ("train", 6), 2: ("train", 5), 3: ("test", 7), 4: ("test", 5)}
    plan |= {5: ("val", 4)}
    for loc, (split, n) in plan.items():
        for i in range(n):
            rows.append({"split": split, "location_remapped": loc, "location": 100 + loc,
                         "sequence_remapped": i, "seq_id": f"s{loc}-{i}", "y": i % 3,
                         "category_id": [0, 24, 37][i % 3],
                         "datetime": f"2013-0{1 + (7 - i) % 9}-01 10:00:0{i % 10}.000",
                         "filename": f"{loc}{i:03d}.jpg",
                         "image_id": f"img-{loc}-{i}"})  # fmt: skip
    for i in range(3):  # id_test: later days at seen locations 0 and 1
        for loc in (0, 1):
            rows.append({**rows[0], "split": "id_test", "location_remapped": loc,
                         "filename": f"id{loc}{i}.jpg", "image_id": f"id-{loc}-{i}",
                         "datetime": f"2014-01-0{i + 1} 09:00:00.000"})  # fmt: skip
    rows.append({**rows[0], "split": "id_test", "location_remapped": 0, "filename": "id0x.jpg",
                 "image_id": "id-0-x", "datetime": "2014-02-01 09:00:00.000"})  # fmt: skip
    meta = pd.DataFrame(rows)
    root.mkdir(parents=True)
    meta.to_csv(root / "metadata.csv")  # the index column has an empty header
    pd.DataFrame({"y": [0, 1, 2, 99999], "category_id": [0, 24, 37, 99],
                  "name": ["empty", "zebra", "impala", "unused"]}).to_csv(
        root / "categories.csv", index=False)  # fmt: skip
    write_images(root / "train", meta["filename"].tolist(), np.random.default_rng(0))
    return root


def test_wilds_iwildcam(tmp_path: Path) -> None:
    release = write_iwildcam(tmp_path / "iwildcam_v2.0")
    spec = shipped("iWildCam", query_size=2)
    settings = HarnessSettings(data_root=tmp_path / "data")
    ds = prepare_dataset(spec=spec, settings=settings, release=release)
    meta = pd.read_csv(release / "metadata.csv", index_col=0)
    # test1 = the busiest location of id_test (0: 4 images there), test3 = the second (1).
    for task, loc in (("test1", 0), ("test2", 3), ("test3", 1), ("test4", 4)):
        t = ds.spec.task(task)
        q, test = ds.split(t.query), ds.split(t.test)
        here = meta[meta["location_remapped"] == loc].sort_values("datetime")
        assert len(q) == 2 and len(q) + len(test) == len(here)
        assert q["datetime"].max() <= test["datetime"].min()  # query = the earliest
    pool = ds.split("train")
    assert set(pool["location_remapped"]) == {2}  # WILDS train images of other cameras only
    row = pool.iloc[1]
    assert row["caption"] == f"camera trap image of {row['category_name']}, taken on the date " \
                             f"{row['datetime'][:10]}"  # fmt: skip
    assert row["label_name"] == {0: "empty", 1: "zebra", 2: "impala"}[row["label"]]
    assert len(row["uid"]) == 16 and row["uid"] not in set(meta["image_id"])  # opaque
    assert "test1: [0]" in ds.manifest["release"]["rule"] and ds.image_root == release / "train"
    again = prepare_dataset(spec=spec, settings=settings, release=release, force=True)
    assert again.manifest_hash() == ds.manifest_hash()  # deterministic


def write_fmow(root: Path) -> Path:
    """fmow_v1.1: rgb_metadata.csv (with seq rows), country_code_mapping.csv, images/."""
    countries = {"NGA": "Africa", "USA": "Americas", "CHN": "Asia", "FRA": "Europe"}
    rows = []
    for code in countries:
        for year in (2010, 2011, 2016, 2017):
            for i in range(3):
                rows.append({"split": "train" if year < 2013 else "test", "img_filename": f"x{i}",
                             "img_path": f"train/airport/airport_{i}/x.jpg",
                             "category": ["airport", "dam", "zoo"][i], "country_code": code,
                             "timestamp": f"{year}-0{i + 1}-02T10:00:00Z"})  # fmt: skip
        rows.append({**rows[-1], "split": "seq"})
    rows.append({**rows[0], "country_code": "ATA", "split": "train"})  # no region: "Other"
    meta = pd.DataFrame(rows)
    root.mkdir(parents=True)
    meta.to_csv(root / "rgb_metadata.csv", index=False)
    pd.DataFrame({"name": list(countries), "alpha-3": list(countries),
                  "region": list(countries.values())}).to_csv(
        root / "country_code_mapping.csv", index=False)  # fmt: skip
    names = [f"images/rgb_img_{i}.png" for i in range(len(meta))]
    write_images(root, names, np.random.default_rng(0))
    return root


def test_wilds_fmow(tmp_path: Path) -> None:
    release = write_fmow(tmp_path / "fmow_v1.1")
    settings = HarnessSettings(data_root=tmp_path / "data")
    ds = prepare_dataset(spec=shipped("FMoW", query_size=2), settings=settings, release=release)
    meta = pd.read_csv(release / "rgb_metadata.csv")
    q, t = ds.split("val2"), ds.split("test2")  # Americas 2016-2017
    assert len(q) == 2 and len(t) == 4 and set(q["region"]) == {"Americas"}
    assert set(t["year"]) <= {2016, 2017} and q["timestamp"].max() <= t["timestamp"].min()
    pool = ds.split("train")
    assert set(pool["year"]) <= {2010, 2011} and len(pool) == 4 * 6 + 1
    assert "Other" in set(pool["region"])
    for _, r in pool.iterrows():  # image names keep the full CSV's row numbers (seq included)
        i = int(r["filename"].removeprefix("images/rgb_img_").removesuffix(".png"))
        assert meta.loc[i, "timestamp"] == r["timestamp"] and meta.loc[i, "split"] != "seq"
    assert ds.manifest["classes"] == ["airport", "dam", "zoo"]
    assert pool["caption"].iloc[0].startswith("satellite image of ")
    assert pool["caption_nolabel"].iloc[0].endswith(pool["timestamp"].iloc[0][:10])


def write_geode(root: Path) -> Path:
    regions = ["Africa", "Americas", "EastAsia", "Europe", "SouthEastAsia", "WestAsia"]
    rows = [{"file_path": f"{obj}/{reg}_{i}.jpg", "object": obj, "region": reg,
             "ip_country": f"{reg}land"}
            for reg in regions for obj in ("bag", "hand_soap") for i in range(5)]  # fmt: skip
    root.mkdir(parents=True)
    pd.DataFrame(rows).to_csv(root / "index.csv", index=False)
    write_images(root / "images", [r["file_path"] for r in rows], np.random.default_rng(0))
    return root


def test_geode_index_through_the_cli(
    tmp_path: Path,
    data_root: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    release = write_geode(tmp_path / "geode")
    configs = tmp_path / "configs"
    shutil.copytree(HarnessSettings().configs_dir, configs)
    raw = yaml.safe_load((configs / "datasets.yaml").read_text())
    raw["datasets"]["GeoDE"]["release"]["params"] |= {"query_size": 2, "test_size": 3}
    (configs / "datasets.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("TDC_CONFIGS_DIR", str(configs))
    assert main(["prepare", "GeoDE", "--release", str(release)]) == 0
    assert "release rule: deployment = region (test1: Africa" in capsys.readouterr().out
    spec = load_benchmark(configs).dataset("GeoDE")
    ds = Dataset.open(spec, data_root=data_root)
    assert set(ds.split("val3")["region"]) == {"EastAsia"} and len(ds.split("test3")) == 3
    pool = ds.split("train")
    assert len(pool) == 60 - 4 * 5 and set(pool["region"]) >= {"Europe", "Africa"}
    assert pool["caption_nolabel"].str.startswith("image taken in the country").all()
    assert ds.manifest["classes"] == ["bag", "hand_soap"]


def test_release_needs_its_files_and_rules(tmp_path: Path) -> None:
    settings = HarnessSettings(data_root=tmp_path / "data")
    with pytest.raises(Exception, match=r"metadata\.csv, categories\.csv missing"):
        prepare_dataset(spec=shipped("iWildCam"), settings=settings, release=tmp_path)
    bad = shipped("GeoDE", tasks={"test1": {"region": "Africa"}})
    with pytest.raises(ConfigError, match=r"tasks lacks rules for \['test2', 'test3', 'test4'\]"):
        prepare_dataset(spec=bad, settings=settings, release=write_geode(tmp_path / "g"))
    spec = load_benchmark(HarnessSettings().configs_dir).dataset("AutoArborist")
    with pytest.raises(ConfigError, match="declares no `release` builder"):
        prepare_dataset(spec=spec, settings=settings, release=tmp_path)
