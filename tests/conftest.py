"""Shared fixtures: a tiny benchmark written in the real on-disk format.

``tiny_dataset`` is a 3-class classification dataset with two sources ("a" dominant in the
pool, "b" rare) and two tasks: ``test1`` draws from source b (covariate shift), ``test2``
from classes {0, 1} of source a (label shift). Images are 16x16 PNGs whose pixels encode the
class, embeddings are class+source clusters, so every stage has real signal to find.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.datasets import Dataset, DatasetDir
from harness.datasets.writer import write_splits
from harness.embed.research_import import ImportedParams
from harness.embed.sets import identity, write_set
from harness.specs import DatasetSpec, EmbeddingSpec, EmbeddingsSpec, TaskSpec

N_CLASSES = 3
DIM = 16
TINY_SET = "precomputed"  # the tiny dataset's one embedding set (imported arrays)


def _make_rows(
    rng: np.random.Generator, n: int, source: str, classes: list[int], prefix: str
) -> pd.DataFrame:
    labels = rng.choice(classes, size=n)
    uids = [f"{prefix}{i:05d}" for i in range(n)]
    return pd.DataFrame(
        {
            "uid": uids,
            "label": labels.astype(np.int64),
            "filename": [f"{u}.png" for u in uids],
            "source": source,
            "caption": [f"a {source} image of class {c}" for c in labels],
            "caption_nolabel": [f"a {source} image" for _ in labels],
        }
    )


def _embed(rng: np.random.Generator, df: pd.DataFrame) -> np.ndarray:
    centers = np.random.default_rng(123).normal(size=(N_CLASSES, 2, DIM))
    src = (df["source"] == "b").to_numpy().astype(int)
    x = centers[df["label"].to_numpy(), src] + 0.6 * rng.normal(size=(len(df), DIM))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32)


def _write_images(root: Path, df: pd.DataFrame) -> None:
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    for uid, label, source in zip(df["uid"], df["label"], df["source"], strict=True):
        img = np.zeros((16, 16), np.uint8)
        img[:, 5 * label : 5 * label + 5] = 255 if source == "a" else 160
        Image.fromarray(img).convert("RGB").save(root / f"{uid}.png")


def build_tiny_dataset(root: Path, *, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    splits = {
        "train": pd.concat(
            [_make_rows(rng, 270, "a", [0, 1, 2], "pa"), _make_rows(rng, 30, "b", [0, 1, 2], "pb")],
            ignore_index=True,
        ),
        "val1": _make_rows(rng, 20, "b", [0, 1, 2], "q1-"),
        "test1": _make_rows(rng, 60, "b", [0, 1, 2], "t1-"),
        "val2": _make_rows(rng, 20, "a", [0, 1], "q2-"),
        "test2": _make_rows(rng, 60, "a", [0, 1], "t2-"),
    }
    spec = DatasetSpec(
        name="tiny",
        task_type="classification",
        version="0.1",
        description="tiny test dataset",
        path="tiny",
        tasks=(
            TaskSpec(name="test1", query="val1", test="test1"),
            TaskSpec(name="test2", query="val2", test="test2", hidden=True),
        ),
        fractions=(0.1, 0.25, 0.5),
        default_recipe="linear_probe",
        primary_metric="accuracy",
        secondary_metric="balanced_accuracy",
        embeddings=EmbeddingsSpec(
            default=TINY_SET, sets={TINY_SET: EmbeddingSpec(embedder="imported")}
        ),
    )
    ddir = DatasetDir(root / spec.path)
    for df in splits.values():
        _write_images(ddir.root / spec.image_root, df)
    write_splits(ddir, splits, dataset_version=spec.version)
    ds = Dataset.open(spec, data_root=root)
    arrays = {}
    for name, df in splits.items():
        img = _embed(rng, df)
        arrays[name] = {"image": img, "text": img, "text_nolabel": img}
    write_set(ds, TINY_SET, arrays, ident=identity("imported", ImportedParams(), "tiny"))
    # A clip score that varies (image = text here would make it constant).
    pool_img = arrays["train"]["image"]
    score = ((pool_img[:, 0] + 1) / 2).astype(np.float32)
    np.save(ddir.embedding_set(TINY_SET).array_path("train", "clip_score"), score)
    return ds


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    """A prepared tiny dataset (read-only: tests must not modify it)."""
    return build_tiny_dataset(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def demo_dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    """The real demo benchmark, prepared and embedded once per session (read-only).

    Its data root is ``demo_dataset.dir.root.parent``:
    ``HarnessSettings(data_root=demo_dataset.dir.root.parent)``.
    """
    from harness.datasets.preparers import prepare_dataset
    from harness.embed import embed_dataset
    from harness.settings import HarnessSettings
    from harness.specs import load_benchmark

    settings = HarnessSettings(data_root=tmp_path_factory.mktemp("demo-data"))
    spec = load_benchmark(settings.configs_dir).dataset("demo")
    ds = prepare_dataset(spec=spec, settings=settings)
    embed_dataset(ds=ds, settings=settings)
    return ds


def _write_csv_release(
    root: Path, *, splits: tuple[str, ...] = ("train", "val1", "test1"), rows: int = 6
) -> Path:
    from PIL import Image

    classes = ["bicycle", "chair", "tree"]
    rng = np.random.default_rng(0)
    (root / "images" / "sub").mkdir(parents=True)
    for split in splits:
        uids = [f"{split}-{i}" for i in range(rows)]
        names = [f"sub/{u}.png" if i % 2 else f"{u}.png" for i, u in enumerate(uids)]
        for name in names:
            pixels = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / "images" / name, format="PNG")
        labels = [classes[i % 3] for i in range(rows)]
        frame = {"uid": uids, "label": labels, "filename": names, "region": "Africa"}
        pd.DataFrame(frame).to_csv(root / f"{split}.csv", index=False)
    return root


@pytest.fixture
def make_csv_release() -> object:
    """``make_csv_release(root, splits=(...), rows=6)`` writes a research-style release.

    One CSV per split (uid, label as a class name among bicycle/chair/tree, filename, region)
    and real PNGs under ``images/`` (odd rows in ``images/sub/``); returns ``root``.
    """
    return _write_csv_release


def _prepare_shipped(name: str, tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    from harness.datasets.preparers import prepare_dataset
    from harness.settings import HarnessSettings
    from harness.specs import load_benchmark

    settings = HarnessSettings(data_root=tmp_path_factory.mktemp(f"{name}-data"))
    spec = load_benchmark(settings.configs_dir).dataset(name)
    return prepare_dataset(spec=spec, settings=settings)


@pytest.fixture(scope="session")
def demo_detection_dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    """The shipped ``demo_detection`` benchmark, prepared once per session (read-only)."""
    return _prepare_shipped("demo_detection", tmp_path_factory)


@pytest.fixture(scope="session")
def demo_reid_dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    """The shipped ``demo_reid`` benchmark, prepared once per session (read-only)."""
    return _prepare_shipped("demo_reid", tmp_path_factory)
