"""The research group's disk in one command per dataset: prepare, import embeddings, run.

The miniature (tests/harness/conftest.py) has their file names, float labels with NaN, a
separate image root, both embedding file kinds and research-written subset files.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from harness.cli.main import main
from harness.datasets import Dataset
from harness.settings import HarnessSettings
from harness.specs import load_benchmark
from tests.harness.conftest import CLASS_IDS, UNMAPPED, ResearchDisk, research_entry


def open_ds(name: str, data_root: Path, embeddings: str | None = None) -> Dataset:
    spec = load_benchmark(HarnessSettings().configs_dir).dataset(name)
    return Dataset.open(spec, data_root=data_root, embeddings=embeddings)


def prepare(disk: ResearchDisk, name: str, *extra: str) -> int:
    return main(["prepare", name, "--research-config", str(disk.config), *extra])


def test_iwildcam_imports_as_the_research_has_it(
    research_disk: ResearchDisk, data_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert prepare(research_disk, "iWildCam") == 0
    out = capsys.readouterr().out
    assert "test2 <- query val1_ood.csv, test test1_ood.csv" in out  # task k <- valk / testk
    assert "test4 <- query val3_ood.csv, test test3_ood.csv" in out
    assert f"train: dropped 2 rows without a label, e.g. {', '.join(UNMAPPED)}" in out
    ds = open_ds("iWildCam", data_root)
    pool = ds.split("train")
    assert ds.pool_size == 58 and not pool["uid"].isin(UNMAPPED).any()
    assert pool["label"].dtype == np.int64 and set(pool["label"]) <= set(CLASS_IDS)  # 2.0 -> 2
    row = pool.iloc[0]
    assert row["label_name"] == CLASS_IDS[row["label"]]
    date = row["date"]
    assert row["caption"] == f"camera trap image of {row['label_name']}, taken on the date {date}"
    assert row["caption_nolabel"] == f"camera trap image taken on the date {row['date']}"
    assert ds.manifest["class_names"] == {str(k): v for k, v in sorted(CLASS_IDS.items())}
    test3 = {"query": "val3_id.csv", "test": "test3_id.csv"}
    assert ds.manifest["research"]["tasks"]["test3"] == test3
    assert ds.image_root == research_disk.root / "iWildCam/iwildcam_v2.0/train"  # not copied
    assert not (ds.dir.root / "images").exists()
    assert (ds.image_root / row["filename"]).is_file()


def test_embeddings_import_then_baseline_and_evaluate(
    research_disk: ResearchDisk,
    data_root: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert prepare(research_disk, "iWildCam") == 0
    imp = ["embed", "iWildCam", "--import", str(research_disk.iwildcam_embeddings),
           "--set", "research", "--format", "research"]  # fmt: skip
    assert main(imp) == 2  # the .npy files are pickles: refused without --trust-pickle
    assert "--trust-pickle" in capsys.readouterr().err
    assert main([*imp, "--trust-pickle"]) == 0
    assert "kinds image, text, image_raw" in capsys.readouterr().out
    ds = open_ds("iWildCam", data_root, "research")
    manifest = json.loads(ds.dir.embedding_set("research").manifest_path.read_text())
    assert manifest["details"]["extra_uids"]["train"]["first_uids"] == list(UNMAPPED)
    raw = np.load(research_disk.iwildcam_embeddings / "train_image_label_embed.npz")
    keep = ~np.isin(raw["uids"], UNMAPPED)
    np.testing.assert_array_equal(ds.embeddings("train", "image_raw"), raw["features"][keep])

    sub = tmp_path / "ia.npy"
    base = ["baseline", "image_alignment", "-d", "iWildCam", "-f", "0.25", "-t", "test1"]
    assert main([*base, "--embeddings", "research", "-o", str(sub)]) == 0
    out = tmp_path / "result.json"
    ev = ["evaluate", str(sub), "-d", "iWildCam", "-f", "0.25", "-t", "test1",
          "--embeddings", "research", "-r", "linear_probe_research", "-o", str(out)]  # fmt: skip
    assert main(ev) == 0
    result = json.loads(out.read_text())
    assert result["manifest"]["embedding_set"] == "research"
    assert result["manifest"]["embedding_fingerprint"] == manifest["fingerprint"]
    assert main(["baseline", "image_alignment", "-d", "iWildCam", "-f", "0.25", "-t", "test1"]) == 2
    assert "set 'clip' of iWildCam is not on disk (sets here: research)" in capsys.readouterr().err


def test_research_probe_is_reproduced(research_disk: ResearchDisk, data_root: Path) -> None:
    """linear_probe_research on the imported npz features equals sklearn's LogisticRegression."""
    from sklearn.linear_model import LogisticRegression

    from harness.embed import import_research_set
    from harness.runner import evaluate_subset
    from harness.validation import subset_sha256

    assert prepare(research_disk, "iWildCam") == 0
    ds = open_ds("iWildCam", data_root, "research")
    import_research_set(ds=ds, source=research_disk.iwildcam_embeddings, set_name="research",
                        trust_pickle=True)  # fmt: skip
    rows = np.arange(0, ds.pool_size, 2)
    recipe = load_benchmark(HarnessSettings().configs_dir).recipe("linear_probe_research")
    sha = subset_sha256(rows)
    result = evaluate_subset(
        ds=ds, recipe=recipe, pool_rows=rows, subset_sha256=sha, fraction=0.25, task=None
    )
    x = np.asarray(ds.embeddings("train", "image_raw"), np.float32)
    y = ds.split("train")["label"].to_numpy()
    ref = LogisticRegression(C=0.75, max_iter=1000).fit(x[rows], y[rows])
    for task in result.tasks:
        split = ds.spec.task(task.task).test
        want = (ref.predict(ds.embeddings(split, "image_raw")) == ds.split(split)["label"]).mean()
        assert abs(task.mean["accuracy"] - want) <= 0.003


def test_research_subset_files_validate(
    research_disk: ResearchDisk, data_root: Path, tmp_path: Path
) -> None:
    """What their code writes (`np.save` of a `<U` array of train_N UIDs) is a valid entry."""
    assert prepare(research_disk, "iWildCam") == 0
    sub = tmp_path / "random_filter_0.25.npy"
    np.save(sub, np.array([f"train_{i}" for i in (0, 3, 5, 8, 13)]))
    assert np.load(sub).dtype.kind == "U"
    assert main(["validate", str(sub), "-d", "iWildCam", "-f", "0.25"]) == 0
    np.save(sub, np.array(["train_0", UNMAPPED[0]]))  # a row dropped for its missing label
    assert main(["validate", str(sub), "-d", "iWildCam", "-f", "0.25"]) == 2


def test_self_driving_car_regression(
    research_disk: ResearchDisk,
    data_root: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert prepare(research_disk, "SelfDrivingCar") == 0
    assert "test1 <- query val0.csv, test test0.csv" in capsys.readouterr().out
    ds = open_ds("SelfDrivingCar", data_root)
    pool = ds.split("train")
    source = pd.read_csv(research_disk.root / "SelfDrivingCar/splits/train.csv")
    assert pool["label"].dtype == np.float64
    np.testing.assert_array_equal(pool["label"], source["steering"])  # stays a float
    assert pool["filename"].tolist() == source["filepath"].tolist()
    assert pool["caption"][0] == (
        f"autonomous vehicle image of at speed {source['speed'][0]} with steering "
        f"{source['steering'][0]}, taken at location"
    )
    assert "steering" not in pool["caption_nolabel"][0]
    imp = ["embed", "SelfDrivingCar", "--import", str(research_disk.sdc_embeddings)]
    imp += ["--set", "research"]
    assert main(imp) == 0  # npz only: nothing to unpickle
    sub, out = tmp_path / "r.npy", tmp_path / "r.json"
    assert main(["baseline", "random_filter", "-d", "SelfDrivingCar", "-f", "0.5",
                 "--embeddings", "research", "-o", str(sub)]) == 0  # fmt: skip
    assert main(["evaluate", str(sub), "-d", "SelfDrivingCar", "-f", "0.5", "--embeddings",
                 "research", "-r", "linear_probe_regression", "-o", str(out)]) == 0  # fmt: skip
    tasks = json.loads(out.read_text())["tasks"]
    assert len(tasks) == 4 and all(0 <= t["mean"]["mse"] < 1 for t in tasks)


def test_bad_research_inputs_say_what_to_do(
    research_disk: ResearchDisk, data_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert prepare(research_disk, "FMoW") == 2
    assert "no csv_root_path" in (err := capsys.readouterr().err) and "--release DIR" in err
    assert prepare(research_disk, "iWildCam", "--on-missing-label", "error") == 2
    assert "2 rows have no label, e.g. train_7, train_19" in capsys.readouterr().err
    config = yaml.safe_load(research_disk.config.read_text())
    del config["SelfDrivingCar"]["FILEPATHS"]["test3"]
    research_disk.config.write_text(yaml.safe_dump(config))
    assert prepare(research_disk, "SelfDrivingCar") == 2  # never shifts task 4 onto task 3's files
    assert "FILEPATHS lacks test3 (for test3)" in capsys.readouterr().err
    assert prepare(research_disk, "AutoArborist") == 2
    assert "unknown dataset in" in capsys.readouterr().err
    assert not (data_root / "SelfDrivingCar").exists()


def test_failed_prepare_leaves_the_old_dataset(
    research_disk: ResearchDisk, data_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert prepare(research_disk, "iWildCam") == 0
    ds = open_ds("iWildCam", data_root)
    before = ds.manifest_hash()
    img = ds.image_root / ds.split("test4")["filename"][3]
    img.unlink()
    assert prepare(research_disk, "iWildCam", "--force") == 2
    assert f"1 of {ds.manifest['images']['files']} images" in capsys.readouterr().err
    assert open_ds("iWildCam", data_root).manifest_hash() == before
    assert not (data_root / "iWildCam.partial").exists()
    csv = research_disk.root / "iWildCam/new_splits/val1_id.csv"
    pd.read_csv(csv).rename(columns={"filename": "path"}).to_csv(csv, index=False)
    assert prepare(research_disk, "iWildCam", "--force") == 2
    assert "lacks columns ['filename']" in capsys.readouterr().err
    assert open_ds("iWildCam", data_root).manifest_hash() == before


def add_entry(disk: ResearchDisk, name: str, entry: dict[str, object]) -> None:
    config = yaml.safe_load(disk.config.read_text())
    disk.config.write_text(yaml.safe_dump({**config, name: entry}))


def write_fish(disk: ResearchDisk) -> None:
    """FishDetection: viame-*.csv (uid, image_path), YOLO label files beside the images."""
    from PIL import Image

    root = disk.root / "fish-yolo-640p"
    files = {"train": "viame-train.csv", "val": "viame-val.csv"}
    files |= {f"val{k}": f"viame-query-{k}.csv" for k in range(1, 5)}
    files |= {f"test{k}": f"viame-test-{k}.csv" for k in range(1, 5)}
    csvs = disk.root / "FishDetection/splits"
    csvs.mkdir(parents=True)
    for key, file in files.items():
        names = [f"images/{key}/{i}.jpg" for i in range(4)]
        for i, name in enumerate(names):
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (16, 16)).save(root / name)
            label = root / name.replace("images/", "labels/").replace(".jpg", ".txt")
            label.parent.mkdir(parents=True, exist_ok=True)
            if i:  # image 0 has no label file: no fish
                label.write_text(f"0 0.5 0.5 0.2 0.2\n{i % 2} 0.3 0.3 0.4 0.5\n")
        uids = [f"{key}_{i}" for i in range(4)]
        pd.DataFrame({"uid": uids, "image_path": names}).to_csv(csvs / file, index=False)
    add_entry(disk, "FishDetection", research_entry(csvs, root, "detection", files))


def test_fish_detection_boxes_from_yolo_files(
    research_disk: ResearchDisk, data_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_fish(research_disk)
    assert prepare(research_disk, "FishDetection") == 0
    assert "not used (no task): val" in capsys.readouterr().out  # viame-val.csv
    ds = open_ds("FishDetection", data_root)
    pool = ds.split("train")
    assert json.loads(pool["boxes"][0]) == [] and pool["label"][0] == -1
    boxes = json.loads(pool["boxes"][1])
    assert boxes == [[0, 0.5, 0.5, 0.2, 0.2], [1, 0.3, 0.3, 0.4, 0.5]]
    assert pool["label"][1] == 1  # the largest box's class
    assert ds.manifest["images_without_boxes"]["train"] == 1


def test_reid_identities_and_roles(
    research_disk: ResearchDisk, data_root: Path, tmp_path: Path
) -> None:
    from PIL import Image

    root, csvs = research_disk.root / "wildlife", research_disk.root / "ReID/splits"
    csvs.mkdir(parents=True)
    files = {"train": "train.csv"} | {f"{k}{i}": f"{k}{i}.csv" for i in range(1, 5)
                                      for k in ("val", "test")}  # fmt: skip
    for key, file in files.items():
        rows = [{"uid": f"{key}_{i}", "file_path": f"{key}/{i}.png", "identity": f"id{i % 3}",
                 "dataset": "SeaTurtle" if key != "test2" else "Zebra", "image_id": i,
                 "object": "turtle", "bbox": "[]"} for i in range(6)]  # fmt: skip
        df = pd.DataFrame(rows)
        if key == "train":
            df["orientation"] = ["left", "right"] * 3
        df.to_csv(csvs / file, index=False)
        for r in rows:
            (root / r["file_path"]).parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (8, 8)).save(root / r["file_path"])
    add_entry(research_disk, "ReID", research_entry(csvs, root, "reid", files))
    assert prepare(research_disk, "ReID") == 0
    ds = open_ds("ReID", data_root)
    pool, test = ds.split("train"), ds.split("test1")
    assert pool["identity_name"][0] == "SeaTurtle/id0/left"  # dataset + identity + orientation
    assert pool["label"].nunique() == 6 and pool["label"].dtype == np.int64
    assert test["role"].tolist() == ["query"] * 3 + ["gallery"] * 3
    assert "first image" in ds.manifest["reid_roles"]
