"""Image and caption embeddings of every split, aligned to each split's UID order.

    from harness.embed import embed_dataset, embeddings_ready
    info = embed_dataset(ds=ds, settings=settings)            # skips when already done
    info = embed_dataset(ds=ds, settings=settings, force=True)
    ds.embeddings("train", "image")                           # (n, d) float32, unit rows

The dataset spec's ``embedding`` section names the embedder and its params; embedders live
in a registry (``EMBEDDERS``): ``pixel_pca`` (the demo's: PCA of pixels + a ridge-regressed
bag of words in the same space, harness.embed.pixel_pca) and ``open_clip`` (real CLIP models
from a local checkpoint, harness.embed.clip). Each writes through
:class:`~harness.embed.base.EmbeddingStore`; this module decides what is already done, so a
rerun skips finished work, and writes ``embeddings/manifest.json``.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from harness.embed.base import EMBEDDERS, EmbedderEntry, EmbeddingStore, l2_normalise, register
from harness.settings import HarnessSettings
from harness.specs import format_validation
from submissions.errors import ConfigError

if TYPE_CHECKING:
    from harness.datasets.dataset import Dataset, DatasetDir

__all__ = [
    "EMBEDDERS",
    "EmbeddingStore",
    "embed_dataset",
    "embeddings_ready",
    "get_embedder",
    "l2_normalise",
    "register",
]

log = logging.getLogger(__name__)

EMBEDDINGS_FORMAT = 1
# Importing these registers the embedders; heavy libraries are imported inside them.
EMBEDDER_MODULES = ("harness.embed.pixel_pca", "harness.embed.clip")


def get_embedder(name: str) -> EmbedderEntry:
    for module in EMBEDDER_MODULES:
        importlib.import_module(module)
    return EMBEDDERS.get(name)


def embeddings_ready(ddir: DatasetDir) -> bool:
    """True when the dataset's embeddings were completely written."""
    manifest = EmbeddingStore(ddir).manifest()
    return manifest is not None and manifest.get("status", "complete") == "complete"


def resolve_params(
    ds: Dataset, *, settings: HarnessSettings
) -> tuple[str, EmbedderEntry, BaseModel]:
    """The spec's embedder and its validated params (ConfigError with the valid keys)."""
    spec = ds.spec.embedding
    if spec is None:
        raise ConfigError(
            f"dataset {ds.spec.name!r} has no `embedding` section in datasets.yaml; "
            "add e.g. `embedding: {embedder: open_clip, params: {arch: ViT-B-32}}`"
        )
    entry = get_embedder(spec.embedder)
    try:
        params = entry.params.model_validate(spec.params)
    except ValidationError as err:
        where = f"datasets.{ds.spec.name}.embedding.params"
        path = settings.configs_dir / "datasets.yaml"
        raise ConfigError(format_validation(path, where, err, entry.params)) from None
    return spec.embedder, entry, params


def check_alignment(ds: Dataset) -> None:
    """Every split's stored UIDs equal the split's UID column, row for row."""
    import numpy as np

    for split in ds.spec.split_names():
        stored = np.load(ds.dir.embedding_uids_path(split), allow_pickle=False)
        if not np.array_equal(stored, ds.uids(split)):
            raise RuntimeError(f"embeddings of {ds.spec.name}/{split} are not in UID order")


def embed_dataset(*, ds: Dataset, settings: HarnessSettings, force: bool = False) -> dict[str, Any]:
    """Compute (or finish, or skip) the embeddings of every split; returns the manifest."""
    name, entry, params = resolve_params(ds, settings=settings)
    store = EmbeddingStore(ds.dir)
    key = {
        "format": EMBEDDINGS_FORMAT,
        "embedder": name,
        "params": params.model_dump(mode="json"),
        "dataset_manifest": ds.manifest_hash(),
        "inputs": entry.fingerprint(params, settings) if entry.fingerprint else {},
    }
    old = store.manifest()
    same = old is not None and all(old.get(k) == v for k, v in key.items())
    if same and not force and old is not None and old.get("status") == "complete":
        log.info("embeddings of %s are up to date", ds.spec.name)
        return old
    if force or not same:
        store.clear()  # other embedder, params or data: nothing can be reused
    store.write_manifest({**key, "status": "running"})
    identity = entry.fn(ds, params=params, store=store, settings=settings)
    check_alignment(ds)
    manifest = {
        **key,
        "status": "complete",
        "identity": identity,
        "pool": ds.spec.pool,
        "clip_score_mean": store.write_pool_scores(ds.spec.pool),
        "splits": {s: store.split_summary(s) for s in ds.spec.split_names()},
    }
    store.write_manifest(manifest)
    log.info("embedded %s with %s", ds.spec.name, name)
    return manifest
