"""Embedding sets: several side by side, never overwritten or deleted, refused when they differ."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import harness.embed.pixel_pca as pixel_pca
from harness.datasets import Dataset
from harness.datasets.preparers import prepare_dataset
from harness.embed import embed_dataset
from harness.embed.sets import check_set, list_sets, open_dataset
from harness.settings import HarnessSettings
from harness.specs import DatasetSpec, EmbeddingSpec, EmbeddingsSpec, TaskSpec
from submissions.errors import ConfigError, DataNotFound

Copier = Callable[..., Dataset]  # tests/harness/embed/conftest.py


def declare(ds: Dataset, default: str, **sets: dict[str, Any]) -> Dataset:
    """``ds`` with ``sets`` ({name: {"embedder": ..., "params": ...}}) declared in its spec."""
    specs = {name: EmbeddingSpec(**body) for name, body in sets.items()}
    spec = ds.spec.model_copy(update={"embeddings": EmbeddingsSpec(default=default, sets=specs)})
    return Dataset(spec=spec, dir=ds.dir)


def tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return h.hexdigest()


PCA8 = {"embedder": "pixel_pca", "params": {"dim": 8}}
PCA12 = {"embedder": "pixel_pca", "params": {"dim": 12}}


def test_two_sets_side_by_side(tiny_copy: Copier, tmp_path: Path) -> None:
    settings = HarnessSettings(data_root=tmp_path)
    ds = declare(tiny_copy("pixel_pca"), "a", a=PCA8, b=PCA12)
    a = embed_dataset(ds=ds, settings=settings)
    b = embed_dataset(ds=ds, settings=settings, set_name="b")
    assert a["fingerprint"] != b["fingerprint"]
    assert [(s.name, s.state) for s in list_sets(ds)] == [("a", "ok"), ("b", "ok")]
    for name, dim in (("a", 8), ("b", 12)):
        view = Dataset(spec=ds.spec, dir=ds.dir, embedding_set=name)
        assert check_set(view).fingerprint == (a if name == "a" else b)["fingerprint"]
        assert view.embeddings("train").shape[1] == dim


def test_changed_spec_writes_a_new_set_and_keeps_the_old(tiny_copy: Copier, tmp_path: Path) -> None:
    settings = HarnessSettings(data_root=tmp_path)
    old = declare(tiny_copy("pixel_pca"), "a", a=PCA8)
    first = embed_dataset(ds=old, settings=settings)
    before = tree_digest(old.dir.embedding_set("a").root)
    changed = declare(old, "a", a=PCA12)
    with pytest.raises(ConfigError, match=r"was made by pixel_pca .*'dim': 8.*declares pixel_pca"):
        check_set(changed)  # refused until it is re-made: never used without a word
    second = embed_dataset(ds=changed, settings=settings)
    kept = f"a@{first['fingerprint']}"
    assert second["kept_previous_as"] == kept
    assert tree_digest(old.dir.embeddings_root / kept) == before  # untouched, only renamed
    assert check_set(changed).fingerprint == second["fingerprint"]
    assert {s.name: s.state for s in list_sets(changed)} == {"a": "ok", kept: "superseded"}


class Interrupt(Exception):
    pass


def test_failures_delete_nothing(
    tiny_copy: Copier, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = HarnessSettings(data_root=tmp_path)
    missing = str(tmp_path / "no.pt")
    clip = {"embedder": "open_clip", "params": {"pretrained": missing}}
    dino = {"embedder": "dinov2", "params": {"checkpoint": missing}}
    ds = declare(tiny_copy("pixel_pca"), "a", a=PCA8, clip=clip, dino=dino)
    embed_dataset(ds=ds, settings=settings)
    root = ds.dir.embeddings_root
    before = tree_digest(root)
    for name in ("clip", "dino"):  # a missing checkpoint is found before any work
        with pytest.raises(DataNotFound, match="checkpoint not found"):
            embed_dataset(ds=ds, settings=settings, set_name=name)
    assert tree_digest(root) == before
    before_a = tree_digest(root / "a")

    def die(*args: Any, **kwargs: Any) -> None:
        raise Interrupt

    monkeypatch.setattr(pixel_pca, "load_pixels", die)
    with pytest.raises(Interrupt):  # the re-make of "a" under new params dies half way
        embed_dataset(ds=declare(ds, "a", a=PCA12), settings=settings)
    assert tree_digest(root / "a") == before_a  # the complete set is as it was
    assert check_set(ds).state == "ok" and ds.embeddings("train").shape[1] == 8


def test_rebuilt_dataset_keeps_its_sets_and_flags_stale_ones(
    tmp_path: Path, make_csv_release: Callable[..., Path]
) -> None:
    release = make_csv_release(tmp_path / "release", rows=12)
    settings = HarnessSettings(data_root=tmp_path / "data")
    spec = DatasetSpec(
        name="Mini", task_type="classification", version="1", description="", path="Mini",
        tasks=(TaskSpec(name="test1", query="val1", test="test1"),), fractions=(0.5,),
        default_recipe="linear_probe", primary_metric="accuracy",
        embeddings=EmbeddingsSpec(default="pca", sets={"pca": EmbeddingSpec(**PCA8)}),
    )  # fmt: skip
    ds = prepare_dataset(spec=spec, settings=settings, source=release)
    made = embed_dataset(ds=ds, settings=settings)
    ds = prepare_dataset(spec=spec, settings=settings, source=release, force=True)
    assert check_set(ds).fingerprint == made["fingerprint"]  # same content: still valid
    csv = release / "train.csv"
    csv.write_text(csv.read_text().replace("bicycle", "tree", 1))
    ds = prepare_dataset(spec=spec, settings=settings, source=release, force=True)
    assert (ds.dir.embedding_set("pca").manifest_path).is_file()  # kept, never deleted
    stale = open_dataset(spec, data_root=settings.data_root)
    with pytest.raises(ConfigError, match="earlier preparation"):
        stale.embeddings("train")
    remade = embed_dataset(ds=ds, settings=settings)
    assert remade["kept_previous_as"] == f"pca@{made['fingerprint']}"
    assert open_dataset(spec, data_root=settings.data_root).embeddings("train").shape == (12, 8)


def test_imports_never_replace_a_computed_declaration(tiny_copy: Copier, tmp_path: Path) -> None:
    from harness.embed import import_research_set

    ds = declare(tiny_copy("pixel_pca"), "a", a=PCA8)
    src = tmp_path / "research"
    src.mkdir()
    rng = np.random.default_rng(0)
    for split in ds.spec.split_names():
        uids = ds.uids(split)
        np.savez(src / f"{split}_image_label_embed.npz", uids=uids,
                 features=rng.normal(size=(len(uids), 4)).astype(np.float16))  # fmt: skip
    with pytest.raises(ConfigError, match="declared as computed by 'pixel_pca'"):
        import_research_set(ds=ds, source=src, set_name="a")
    first = import_research_set(ds=ds, source=src, set_name="r")
    stamp = ds.dir.embedding_set("r").manifest_path.stat().st_mtime_ns
    assert import_research_set(ds=ds, source=src, set_name="r") == first  # the same files: kept
    assert ds.dir.embedding_set("r").manifest_path.stat().st_mtime_ns == stamp
    view = Dataset(spec=ds.spec, dir=ds.dir, embedding_set="r")
    assert check_set(view).kinds == ["image", "image_raw"] and not check_set(view).declared
    with pytest.raises(DataNotFound, match="has only image, image_raw"):
        view.embeddings("train", "text_nolabel")
