"""Embedding sets of a dataset: image (and caption) features aligned to every split's rows.

    from harness.embed import embed_dataset, import_research_set
    info = embed_dataset(ds=ds, settings=settings)                     # the spec's default set
    info = embed_dataset(ds=ds, settings=settings, set_name="dinov2")  # another declared set
    info = import_research_set(ds=ds, source=Path("embeddings/"), set_name="research",
                               trust_pickle=True)
    ds.embeddings("train", "image")                       # (n, d) float32, unit rows

The spec's ``embeddings`` section declares named sets (``sets: {clip: {embedder: open_clip,
params: {arch: ViT-B-32}}}``) and the ``default``. Embedders live in a registry
(``EMBEDDERS``): ``pixel_pca`` (the demo's), ``open_clip`` and ``dinov2`` (local
checkpoints), and ``imported`` (sets brought in with ``--import``). A set is built in a
scratch directory (resumable: finished splits and chunks are kept) and published only when
complete (harness.embed.sets): a failure leaves every existing set as it was, and a changed
spec writes a new set while the old one is kept beside it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from harness.embed.base import (
    EMBEDDER_MODULES,
    EMBEDDERS,
    EmbedderEntry,
    EmbeddingStore,
    get_embedder,
    l2_normalise,
    register,
)
from harness.embed.research_import import import_research_set
from harness.embed.sets import (
    finish_set,
    head_of,
    identity,
    same_set,
    start_building,
    validated_params,
)
from harness.settings import HarnessSettings
from harness.specs import EmbeddingSpec
from submissions.errors import ConfigError, UnknownName

if TYPE_CHECKING:
    from harness.datasets.dataset import Dataset

__all__ = [
    "EMBEDDERS",
    "EMBEDDER_MODULES",
    "EmbedderEntry",
    "EmbeddingStore",
    "embed_dataset",
    "get_embedder",
    "import_research_set",
    "l2_normalise",
    "register",
]

log = logging.getLogger(__name__)


def declared_set(ds: Dataset, set_name: str | None) -> tuple[str, EmbeddingSpec]:
    """``set_name`` (or the default) and its declaration; UnknownName if undeclared."""
    spec = ds.spec
    if spec.embeddings is None:
        raise ConfigError(
            f"dataset {spec.name!r} declares no embedding sets; add an `embeddings:` section "
            "to configs/datasets.yaml, e.g. {default: clip, sets: {clip: {embedder: open_clip, "
            "params: {arch: ViT-B-32}}}}, or import one with --import DIR --set NAME"
        )
    name = set_name or spec.embeddings.default
    if name not in spec.embeddings.sets:
        raise UnknownName(f"embedding set of {spec.name} (declared in datasets.yaml)", name, [],
                          sorted(spec.embeddings.sets))  # fmt: skip
    return name, spec.embeddings.sets[name]


def embed_dataset(
    *,
    ds: Dataset,
    settings: HarnessSettings,
    set_name: str | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Compute (or finish, or skip when up to date) one declared set; returns its manifest."""
    name, es = declared_set(ds, set_name)
    entry = get_embedder(es.embedder)
    params = validated_params(ds.spec.name, name, es)
    # Checkpoints are resolved (and hashed) before any work: a missing one changes nothing.
    ident = identity(es.embedder, params, entry.weights(params, settings))
    head = head_of(ds, name, ident)
    current = ds.dir.embedding_set(name).read_manifest()
    if not force and same_set(current, head) and current.get("status") == "complete":
        log.info("embedding set %s of %s is up to date", name, ds.spec.name)
        return current
    sdir = start_building(ds.dir, name, head)
    details = entry.fn(ds, params=params, store=EmbeddingStore(sdir), settings=settings)
    return finish_set(ds, sdir, {**head, "details": details})
