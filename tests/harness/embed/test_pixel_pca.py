"""pixel_pca: aligned, normalised, meaningful embeddings; reruns skip; changes recompute."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from harness.datasets import Dataset
from harness.datasets.dataset import UNIT_KINDS
from harness.embed import embed_dataset
from harness.embed.pixel_pca import fit_pca, fit_text_map, tokens
from harness.embed.sets import set_ready
from harness.settings import HarnessSettings
from submissions.errors import ConfigError

Copier = Callable[..., Dataset]  # the tiny_copy fixture (tests/harness/embed/conftest.py)


def test_demo_embeddings_aligned_and_normalised(demo_dataset: Dataset) -> None:
    ds = demo_dataset
    sdir = ds.dir.embedding_set(ds.set_name)
    for split in ds.spec.split_names():
        uids = np.load(sdir.uids_path(split), allow_pickle=False)
        assert np.array_equal(uids, ds.uids(split))
        for kind in UNIT_KINDS:
            x = ds.embeddings(split, kind)
            assert x.dtype == np.float32 and x.shape == (ds.split_size(split), 64)
            np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    image, text = ds.embeddings("train", "image"), ds.embeddings("train", "text")
    score = np.load(sdir.array_path("train", "clip_score"))
    assert score.shape == (ds.pool_size,) and score.dtype == np.float32
    np.testing.assert_allclose(score, np.einsum("ij,ij->i", image, text), atol=1e-5)
    nolabel = np.load(sdir.array_path("train", "clip_score_nolabel"))
    assert nolabel.shape == score.shape and not np.allclose(nolabel, score)
    manifest = sdir.manifest_path.read_text()
    assert '"status": "complete"' in manifest and '"embedder": "pixel_pca"' in manifest


def test_caption_vectors_live_in_the_image_space(demo_dataset: Dataset) -> None:
    """Class prototypes built from captions classify MNIST test images zero-shot."""
    ds = demo_dataset
    labels = ds.split("train")["label"].to_numpy()
    text = ds.embeddings("train", "text")
    protos = np.stack([text[labels == c].mean(axis=0) for c in range(10)])
    for test in ("test2", "test4"):
        pred = (ds.embeddings(test) @ protos.T).argmax(axis=1)
        assert (pred == ds.split(test)["label"].to_numpy()).mean() > 0.6  # chance: 0.1-0.2


def test_pca_and_ridge_are_the_documented_closed_forms() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 6)).astype(np.float32)
    mean, comps, ratio = fit_pca(x, 3)
    np.testing.assert_allclose(mean, x.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(comps @ comps.T, np.eye(3), atol=1e-8)
    assert np.all(comps[np.arange(3), np.abs(comps).argmax(axis=1)] > 0)  # fixed signs
    assert 0 < ratio < 1
    with pytest.raises(ConfigError, match="dim=7"):
        fit_pca(x, 7)
    assert tokens("A low-resolution Scan of 7") == ["a", "low", "resolution", "scan", "of", "7"]
    targets = np.array([[1, 0], [0, 1]], dtype=np.float32)
    vocab, w = fit_text_map(["red", "blue"], targets, ridge=1e-6)
    assert vocab == {"blue": 0, "red": 1}
    np.testing.assert_allclose(np.array([[0, 1, 1], [1, 0, 1]]) @ w, targets, atol=1e-4)


def test_rerun_skips_and_changes_recompute(tiny_copy: Copier, tmp_path: Path) -> None:
    settings = HarnessSettings(data_root=tmp_path)
    ds = tiny_copy("pixel_pca", {"dim": 8})
    assert not set_ready(ds)
    first = embed_dataset(ds=ds, settings=settings)
    assert set_ready(ds) and first["splits"]["train"]["dims"]["image"] == 8
    path = ds.dir.embedding_set("s").array_path("test1", "image")
    stamp = path.stat().st_mtime_ns
    assert embed_dataset(ds=ds, settings=settings) == first
    assert path.stat().st_mtime_ns == stamp  # skipped: nothing rewritten
    again = embed_dataset(ds=ds, settings=settings, force=True)
    assert path.stat().st_mtime_ns != stamp
    np.testing.assert_array_equal(np.load(path), ds.embeddings("test1"))  # deterministic
    assert again["fingerprint"] == first["fingerprint"]
    wider = embed_dataset(ds=tiny_copy("pixel_pca", {"dim": 12}), settings=settings)
    assert wider["splits"]["val2"]["dims"]["text_nolabel"] == 12  # new params: recomputed
