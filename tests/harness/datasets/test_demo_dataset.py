"""The demo benchmark: sizes, disjoint splits, real shifts, captions, determinism, signal."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
from PIL import Image

from harness.datasets import Dataset
from harness.datasets.demo import HIGH, LOW, demo_uid, resample
from harness.datasets.preparers import prepare_dataset
from harness.settings import HarnessSettings

SIZES = {
    "train": 4300,
    "val1": 100,
    "test1": 700,
    "val2": 100,
    "test2": 400,
    "val3": 100,
    "test3": 246,
    "val4": 100,
    "test4": 400,
}


def test_split_sizes_and_pool_mix(demo_dataset: Dataset) -> None:
    assert {s: demo_dataset.split_size(s) for s in demo_dataset.spec.split_names()} == SIZES
    pool = demo_dataset.split("train")
    assert pool["source"].value_counts().to_dict() == {"mnist": 4000, "uci": 300}
    assert sorted(pool["label"].unique()) == list(range(10))


def test_no_image_or_uid_in_two_splits(demo_dataset: Dataset) -> None:
    frames = [demo_dataset.split(s) for s in demo_dataset.spec.split_names()]
    every = pd.concat(frames, ignore_index=True)
    assert not every["uid"].duplicated().any()
    assert not every[["source", "source_index"]].duplicated().any()
    assert every["uid"].str.fullmatch(r"[0-9a-f]{16}").all()
    expected = [
        demo_uid(s, int(i)) for s, i in zip(every["source"], every["source_index"], strict=True)
    ]
    assert every["uid"].tolist() == expected


def test_tasks_shift_source_classes_or_stroke(demo_dataset: Dataset) -> None:
    split = demo_dataset.split
    for name in ("val1", "test1", "val3", "test3"):
        assert set(split(name)["source"]) == {"uci"}, name
    for name in ("val2", "test2", "val4", "test4"):
        assert set(split(name)["source"]) == {"mnist"}, name
    assert set(split("test1")["label"]) == set(range(10))
    assert set(split("test2")["label"]) == set(LOW) == set(split("val2")["label"])
    assert set(split("test3")["label"]) == set(HIGH) == set(split("val3")["label"])
    # test4 is the heavy-stroke MNIST: more ink than the pool's MNIST digits of every class.
    pool = split("train")
    pool_mnist = pool[pool["source"] == "mnist"]
    ink_pool, ink_t4 = _ink(demo_dataset, pool_mnist), _ink(demo_dataset, split("test4"))
    for c in range(10):
        assert ink_t4[split("test4")["label"].to_numpy() == c].mean() > 1.1 * (
            ink_pool[pool_mnist["label"].to_numpy() == c].mean()
        )


def _ink(ds: Dataset, df: pd.DataFrame) -> npt.NDArray[np.float64]:
    return np.array(
        [np.asarray(Image.open(ds.image_root / f)).sum() for f in df["filename"]], float
    )


def test_images_and_captions(demo_dataset: Dataset) -> None:
    df = demo_dataset.split("test3")
    with Image.open(demo_dataset.image_root / df["filename"].iloc[0]) as img:
        assert (img.format, img.mode, img.size) == ("PNG", "L", (16, 16))
        pixels = np.asarray(img)
    from sklearn.datasets import load_digits  # test3 is UCI: the file is its 16x16 rendering

    raw = load_digits().data[df["source_index"].iloc[0]].reshape(1, 8, 8) * (255 / 16)
    assert np.array_equal(pixels, resample(raw, 16)[0])
    for caption, plain, label in zip(
        df["caption"], df["caption_nolabel"], df["label"], strict=True
    ):
        assert str(label) in caption
        assert not any(ch.isdigit() for ch in plain)
    pool = demo_dataset.split("train")
    uci = pool.loc[pool["source"] == "uci", "caption_nolabel"]
    assert uci.str.contains("scan").all()  # captions carry the source, not the label


def test_png_writer_round_trips_exactly() -> None:
    import io

    from harness.datasets.demo import png_bytes

    for shape in ((16, 16), (5, 7)):
        pixels = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
        with Image.open(io.BytesIO(png_bytes(pixels))) as img:
            assert img.mode == "L" and np.array_equal(np.asarray(img), pixels)


def test_prepare_is_deterministic_and_skips_when_done(
    tmp_path: Path, demo_dataset: Dataset
) -> None:
    settings = HarnessSettings(data_root=tmp_path)
    again = prepare_dataset(spec=demo_dataset.spec, settings=settings)
    first, second = demo_dataset.manifest, again.manifest
    assert first == second  # per-split parquet sha256, content sha256, combined image sha256
    assert first["images"]["files"] == sum(SIZES.values())
    for split in ("train", "test4"):
        assert (
            again.dir.split_path(split).read_bytes()
            == demo_dataset.dir.split_path(split).read_bytes()
        )
    name = demo_dataset.split("val1")["filename"].iloc[3]
    assert (again.image_root / name).read_bytes() == (demo_dataset.image_root / name).read_bytes()
    stamp = again.dir.manifest_path.stat().st_mtime_ns
    prepare_dataset(spec=demo_dataset.spec, settings=settings)  # prepared: nothing rewritten
    assert again.dir.manifest_path.stat().st_mtime_ns == stamp
    assert json.loads(again.dir.manifest_path.read_text())["preparer"] == "demo"


def _accuracy(ds: Dataset, rows: npt.NDArray[np.int64], test: str) -> float:
    from sklearn.linear_model import LogisticRegression

    x, y = ds.embeddings("train"), ds.split("train")["label"].to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = LogisticRegression(C=0.75, max_iter=1000).fit(x[rows], y[rows])
    return float((model.predict(ds.embeddings(test)) == ds.split(test)["label"].to_numpy()).mean())


def _query_knn(ds: Dataset, query: str, budget: int) -> npt.NDArray[np.int64]:
    """Round-robin over query images, each adding its nearest pool sample not yet taken."""
    order = np.argsort(-(ds.embeddings("train") @ ds.embeddings(query).T), axis=0, kind="stable")
    flat = order.reshape(-1)
    _, first = np.unique(flat, return_index=True)
    return flat[np.sort(first)[:budget]]


@pytest.mark.parametrize(
    ("task", "margin"), [("test1", 0.2), ("test2", 0.05), ("test3", 0.2), ("test4", 0.02)]
)
def test_task_aware_selection_beats_random(demo_dataset: Dataset, task: str, margin: float) -> None:
    """The design check of docs/benchmark-format.md at a 10% budget, as a regression test."""
    spec = demo_dataset.spec
    budget = spec.budget(0.1, pool_size=demo_dataset.pool_size)
    t = spec.task(task)
    rng = [np.random.default_rng(s) for s in range(3)]
    random = np.mean(
        [
            _accuracy(demo_dataset, r.choice(demo_dataset.pool_size, budget, replace=False), t.test)
            for r in rng
        ]
    )
    aware = _accuracy(demo_dataset, _query_knn(demo_dataset, t.query, budget), t.test)
    assert aware > random + margin, (task, aware, random)
