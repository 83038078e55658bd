"""The open_clip embedder through its real code path, on a tiny architecture without weights."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import harness.embed.clip as clip
from harness.datasets import Dataset
from harness.datasets.dataset import UNIT_KINDS, sha256_file
from harness.embed import embed_dataset
from harness.embed.sets import set_ready
from harness.settings import HarnessSettings
from submissions.errors import DataNotFound, UnknownName

Copier = Callable[..., Dataset]  # the tiny_copy fixture (tests/harness/embed/conftest.py)

# A CLIP small enough for CPU tests: 1-layer towers, 16-d joint space, 32x32 images.
TINY: dict[str, Any] = {
    "arch": "ViT-B-32",
    "random_init": True,
    "batch_size": 32,
    "chunk_size": 64,
    "model_overrides": {
        "embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8,
                       "head_width": 16},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2,
                     "layers": 1},
    },
}  # fmt: skip


class Interrupt(Exception):
    pass


def test_tiny_clip_embeds_every_split_and_resumes(
    tiny_copy: Copier, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ds = tiny_copy("open_clip", TINY)
    settings = HarnessSettings(data_root=tmp_path)
    real_encode = clip.encode_rows
    calls: list[int] = []

    def encode(*args: Any, **kwargs: Any) -> dict[str, np.ndarray]:
        if len(calls) == 3:  # die after three chunks (train has 5 chunks of 64 rows)
            raise Interrupt
        calls.append(len(args[1]))
        return real_encode(*args, **kwargs)

    monkeypatch.setattr(clip, "encode_rows", encode)
    with pytest.raises(Interrupt):
        embed_dataset(ds=ds, settings=settings)
    assert not set_ready(ds)
    partial = ds.dir.root / "embeddings/.building/s/.partial/train"
    assert sorted(p.name for p in partial.glob("image-*")) == [
        "image-000000.npy", "image-000001.npy", "image-000002.npy"
    ]  # fmt: skip
    calls.clear()
    monkeypatch.setattr(
        clip, "encode_rows", lambda *a, **k: calls.append(len(a[1])) or real_encode(*a, **k)
    )
    manifest = embed_dataset(ds=ds, settings=settings)
    total = sum(ds.split_size(s) for s in ds.spec.split_names())
    assert sum(calls) == total - 3 * 64  # finished chunks were not recomputed
    assert manifest["details"]["random_init"] is True and manifest["status"] == "complete"
    assert manifest["identity"]["weights"] is None
    assert not (ds.dir.root / "embeddings/.building").exists()
    resumed = {k: ds.embeddings("train", k).copy() for k in UNIT_KINDS}

    sdir = ds.dir.embedding_set("s")
    for split in ds.spec.split_names():
        assert np.array_equal(np.load(sdir.uids_path(split)), ds.uids(split))
        for kind in UNIT_KINDS:
            x = ds.embeddings(split, kind)
            assert x.shape == (ds.split_size(split), 16)
            np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    assert np.load(sdir.array_path("train", "clip_score")).shape == (ds.pool_size,)

    calls.clear()
    embed_dataset(ds=ds, settings=settings, force=True)  # a clean run gives the same vectors
    assert sum(calls) == total
    for kind in UNIT_KINDS:
        np.testing.assert_allclose(ds.embeddings("train", kind), resumed[kind], atol=1e-5)


def test_missing_checkpoint_fails_fast_and_offline(
    tiny_copy: Copier, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    params = {"arch": "ViT-B-32", "pretrained": str(tmp_path / "missing" / "vit.pt")}
    ds = tiny_copy("open_clip", params)
    start = time.perf_counter()
    with pytest.raises(DataNotFound, match=r"checkpoint not found: .*missing/vit\.pt"):
        embed_dataset(ds=ds, settings=HarnessSettings(data_root=tmp_path))
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert time.perf_counter() - start < 30  # generous: only guards against network retries


def test_no_weights_configured_and_unknown_names(tiny_copy: Copier, tmp_path: Path) -> None:
    settings = HarnessSettings(data_root=tmp_path, clip_checkpoint=None)
    with pytest.raises(DataNotFound, match="TDC_CLIP_CHECKPOINT"):
        embed_dataset(ds=tiny_copy("open_clip", {"arch": "ViT-B-32"}), settings=settings)
    with pytest.raises(UnknownName, match="Did you mean 'ViT-B-32'"):
        embed_dataset(ds=tiny_copy("open_clip", {"arch": "ViT-B-23"}), settings=settings)
    with pytest.raises(UnknownName, match="pretrained tag"):
        embed_dataset(
            ds=tiny_copy("open_clip", {"arch": "ViT-B-32", "pretrained": "laion9b"}),
            settings=settings,
        )


def test_checkpoint_path_is_loaded_and_recorded(tiny_copy: Copier, tmp_path: Path) -> None:
    """A real local checkpoint file goes through open_clip's loader; its sha256 is recorded."""
    import open_clip
    import torch

    torch.manual_seed(1)
    model = open_clip.create_model("ViT-B-32", pretrained=None, **TINY["model_overrides"])
    ckpt = tmp_path / "tiny.pt"
    torch.save({"state_dict": model.state_dict()}, ckpt)
    params = {k: v for k, v in TINY.items() if k != "random_init"} | {"pretrained": str(ckpt)}
    ds = tiny_copy("open_clip", params)
    manifest = embed_dataset(ds=ds, settings=HarnessSettings(data_root=tmp_path))
    assert manifest["details"]["pretrained"] == "tiny.pt"
    assert manifest["identity"]["weights"] == sha256_file(ckpt)
    with torch.no_grad():
        expect = model.encode_text(
            open_clip.get_tokenizer("ViT-B-32", context_length=16)([ds.split("val1")["caption"][0]])
        )
    got = ds.embeddings("val1", "text")[0]
    np.testing.assert_allclose(got, (expect / expect.norm()).numpy()[0], atol=1e-5)
