"""A miniature of the research group's disk, in their layout (../shared/RESEARCH-LAYOUT.md).

``research_disk(root)`` writes, under ``root``:

- ``task_datacomp/configs/datasets.yaml``: their file, with absolute paths to the rest;
  entries iWildCam, SelfDrivingCar and FMoW (FMoW without paths, as at their HEAD);
- ``iWildCam/new_splits/{train,val1_id,test1_id,val1_ood,test1_ood,val3_id,...}.csv``:
  ``uid,label,category_id,category_name,filename,date`` with ``label`` a float and NaN for
  two unmapped pool rows; class ids 0, 2, 5 (never 0..k);
- ``iWildCam/iwildcam_v2.0/train/<location>/<n>.jpg``: the images, apart from the CSVs;
- ``iWildCam/embeddings/{split}_image_label_embed.npz`` (fp16 unnormalised ``features``,
  ``labels``, ``<U`` ``uids``) and ``{split}_embeddings.npy`` (a pickled list of dicts), for
  every row of the CSVs (the NaN rows too);
- ``SelfDrivingCar/splits/{train,val0..val3,test0..test3}.csv``:
  ``uid,filepath,steering,speed,location``, images under ``SelfDrivingCar/images/``, and
  npz embeddings only.

Features carry the signal: a class (or steering) direction plus noise, with row norms that
vary, so normalisation changes the linear probe, as on the real research files.

Also the session's real single-node SLURM (``slurm``)::

    @pytest.mark.slurm
    def test_x(slurm): ...        # SLURM_CONF points at the session's own cluster

In CI (CI=true) a SLURM that cannot start fails the run; elsewhere those tests skip with the
reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.infra.ci import unavailable
from tests.infra.slurm_cluster import SlurmCluster, SlurmUnavailable

DIM = 12
CLASS_IDS = {0: "zebra", 2: "elephant", 5: "impala"}
IWILDCAM_FILES = {
    "train": "train.csv",
    "val1": "val1_id.csv", "test1": "test1_id.csv",
    "val2": "val1_ood.csv", "test2": "test1_ood.csv",
    "val3": "val3_id.csv", "test3": "test3_id.csv",
    "val4": "val3_ood.csv", "test4": "test3_ood.csv",
}  # fmt: skip
SDC_FILES = {"train": "train.csv"} | {
    f"{kind}{k + 1}": f"{kind}{k}.csv" for k in range(4) for kind in ("val", "test")
}
UNMAPPED = ("train_7", "train_19")  # pool rows whose label is NaN


@dataclass(frozen=True)
class ResearchDisk:
    root: Path
    config: Path
    iwildcam_embeddings: Path
    sdc_embeddings: Path


def write_images(root: Path, names: list[str], rng: np.random.Generator) -> None:
    from PIL import Image

    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(root / name)


def _features(rng: np.random.Generator, direction: np.ndarray) -> np.ndarray:
    x = direction + 0.5 * rng.normal(size=direction.shape)
    return x * rng.uniform(0.5, 3.0, size=(len(x), 1))  # norms vary, as in fp16 CLIP features


def _write_embeddings(out: Path, split: str, df: pd.DataFrame, x: np.ndarray, *, npy: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    uids = df["uid"].to_numpy(dtype=str)
    np.savez(out / f"{split}_image_label_embed.npz", features=x.astype(np.float16),
             labels=np.nan_to_num(df["label"].to_numpy(float), nan=-1), uids=uids)  # fmt: skip
    if not npy:
        return
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    records = [
        {"image_embedding": unit[i].astype(np.float32), "text_embedding": unit[i][::-1].copy(),
         "similarity_score": np.float32(0.3), "text": "camera trap image", "uid": uids[i]}
        for i in range(len(df))
    ]  # fmt: skip
    np.save(out / f"{split}_embeddings.npy", np.array(records, dtype=object), allow_pickle=True)


def research_entry(
    csv_root: Path, img_root: Path, task_type: str, files: dict[str, str]
) -> dict[str, object]:
    """A dataset's entry in the research datasets.yaml (their paths end in '/')."""
    return {
        "csv_root_path": f"{csv_root}/",
        "img_root_path": f"{img_root}/",
        "task_list": ["test1", "test2", "test3", "test4"],
        "training_task": task_type,
        "FILEPATHS": files,
    }


def _iwildcam(root: Path, rng: np.random.Generator) -> tuple[Path, Path, dict[str, object]]:
    csv_root, img_root = root / "iWildCam/new_splits", root / "iWildCam/iwildcam_v2.0/train"
    emb = root / "iWildCam/embeddings"
    csv_root.mkdir(parents=True)
    centers = {c: rng.normal(size=DIM) * 2 for c in CLASS_IDS}
    for split, file in IWILDCAM_FILES.items():
        n = 60 if split == "train" else 12
        prefix = "train" if split == "train" else file.removesuffix(".csv")
        ids = rng.choice(list(CLASS_IDS), size=n)
        df = pd.DataFrame({
            "uid": [f"{prefix}_{i}" for i in range(n)],
            "label": ids.astype(float),
            "category_id": ids * 3 + 1,
            "category_name": [CLASS_IDS[c] for c in ids],
            "filename": [f"loc{i % 3}/{prefix}_{i}.jpg" for i in range(n)],
            "date": [f"2013-0{1 + i % 9}-1{i % 10}" for i in range(n)],
        })  # fmt: skip
        if split == "train":
            df.loc[df["uid"].isin(UNMAPPED), "label"] = np.nan
        df.to_csv(csv_root / file, index=False)
        write_images(img_root, df["filename"].tolist(), rng)
        x = _features(rng, np.stack([centers[c] for c in ids]))
        _write_embeddings(emb, split, df, x, npy=True)
    return emb, img_root, research_entry(csv_root, img_root, "classification", IWILDCAM_FILES)


def _self_driving(root: Path, rng: np.random.Generator) -> tuple[Path, dict[str, object]]:
    csv_root, img_root = root / "SelfDrivingCar/splits", root / "SelfDrivingCar/images"
    emb = root / "SelfDrivingCar/embeddings"
    csv_root.mkdir(parents=True)
    direction = rng.normal(size=DIM)
    for split, file in SDC_FILES.items():
        n = 40 if split == "train" else 10
        prefix = file.removesuffix(".csv")
        steering = rng.uniform(-1, 1, size=n)
        df = pd.DataFrame({
            "uid": [f"{prefix}_{i}" for i in range(n)],
            "filepath": [f"center/{prefix}_{i}.jpg" for i in range(n)],
            "steering": steering,
            "speed": rng.uniform(10, 30, size=n).round(1),
            "location": "sf",
        })  # fmt: skip
        df.to_csv(csv_root / file, index=False)
        write_images(img_root, df["filepath"].tolist(), rng)
        _write_embeddings(emb, split, df.assign(label=steering),
                          _features(rng, steering[:, None] * direction), npy=False)  # fmt: skip
    return emb, research_entry(csv_root, img_root, "regression", SDC_FILES)


def build_research_disk(root: Path) -> ResearchDisk:
    rng = np.random.default_rng(7)
    iwc_emb, _, iwc = _iwildcam(root, rng)
    sdc_emb, sdc = _self_driving(root, rng)
    config = root / "task_datacomp/configs/datasets.yaml"
    config.parent.mkdir(parents=True)
    fmow = {"task_list": ["test1", "test2", "test3", "test4"], "training_task": "classification"}
    config.write_text(yaml.safe_dump({"iWildCam": iwc, "SelfDrivingCar": sdc, "FMoW": fmow}))
    return ResearchDisk(root, config, iwc_emb, sdc_emb)


@pytest.fixture
def research_disk(tmp_path: Path) -> ResearchDisk:
    """A fresh miniature research disk under ``tmp_path/research`` (see the module doc)."""
    return build_research_disk(tmp_path / "research")


@pytest.fixture
def data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """TDC_DATA_ROOT (and TDC_RUNS_DIR) pointed into ``tmp_path``; returns the data root."""
    monkeypatch.setenv("TDC_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.setenv("TDC_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path / "data"


@pytest.fixture(scope="session")
def _slurm_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster | str]:
    try:
        cluster = SlurmCluster.start(tmp_path_factory.mktemp("slurm"))
    except SlurmUnavailable as err:
        yield str(err)
        return
    try:
        with cluster.activated():
            yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def slurm(_slurm_session: SlurmCluster | str) -> SlurmCluster:
    """The session's SLURM cluster (started once, stopped by PID file at the end)."""
    if isinstance(_slurm_session, str):
        unavailable(f"SLURM unavailable: {_slurm_session}")
    return _slurm_session
