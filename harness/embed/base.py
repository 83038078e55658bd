"""The embedder registry and the store every embedder writes through.

    @register("pixel_pca", params=PixelPcaParams, description="...")
    def embed_pixel_pca(ds: Dataset, *, params: PixelPcaParams, store: EmbeddingStore,
                        settings: HarnessSettings) -> dict[str, Any]:
        ...
        store.write_split(split, {"image": img, "text": txt, "text_nolabel": txt0}, uids=uids)
        return {"explained_variance": 0.71}          # identity details for the manifest

Files (docs/benchmark-format.md), inside one set's directory (a scratch copy while it is
built, see harness.embed): ``<split>/<kind>.npy`` (float32, row i = split row i; the caption
kinds and ``image`` L2-normalised, ``image_raw`` as imported), ``<split>/uids.npy`` (written
last: its presence marks the split done), ``<pool>/clip_score{,_nolabel}.npy`` and
``manifest.json``. Long embedders write row chunks under ``.partial/<split>/`` as they
finish, so a rerun resumes where it stopped. An embedder writes ``image`` and any of
``text``, ``text_nolabel`` (CLIP) or none of them (DINOv2): kinds are per set.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel

from harness.datasets.dataset import RAW_KINDS, UNIT_KINDS, SetDir
from harness.registry import Registry

Array = npt.NDArray[np.float32]
EmbedFn = Callable[..., dict[str, Any]]
SCORE_KINDS = {"clip_score": "text", "clip_score_nolabel": "text_nolabel"}
# Params that change how fast, not what: left out of a set's fingerprint.
RUNTIME_PARAMS = ("batch_size", "chunk_size", "device", "num_workers")


@dataclass(frozen=True)
class EmbedderEntry:
    """A registered embedder: the function, its params model and a one-line description."""

    fn: EmbedFn
    params: type[BaseModel]
    description: str
    # (params, settings) -> what besides params decides the vectors: the weights' sha256 (a
    # checkpoint a setting names), None without weights. Runs before any work, so a missing
    # checkpoint fails at once.
    weights: Callable[..., Any]


EMBEDDERS: Registry[EmbedderEntry] = Registry("embedder")
# Importing these registers the embedders; heavy libraries are imported inside them.
EMBEDDER_MODULES = (
    "harness.embed.pixel_pca",
    "harness.embed.clip",
    "harness.embed.dinov2",
    "harness.embed.research_import",
)


def get_embedder(name: str) -> EmbedderEntry:
    for module in EMBEDDER_MODULES:
        importlib.import_module(module)
    return EMBEDDERS.get(name)


def no_weights(params: BaseModel, settings: Any) -> None:
    """The ``weights`` of an embedder that loads none (its params say everything)."""
    del params, settings


def register(
    name: str,
    *,
    params: type[BaseModel],
    description: str,
    weights: Callable[..., Any] = no_weights,
) -> Callable[[EmbedFn], EmbedFn]:
    def deco(fn: EmbedFn) -> EmbedFn:
        EMBEDDERS.register(name)(EmbedderEntry(fn, params, description, weights))
        return fn

    return deco


def l2_normalise(x: npt.NDArray[np.floating]) -> Array:
    """Rows scaled to unit length in float32 (an all-zero row stays zero)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, np.float32(1e-12))).astype(np.float32)


def _save_atomic(path: Path, arr: npt.NDArray[Any]) -> None:
    tmp = path.with_name(path.name + ".tmp.npy")
    np.save(tmp, arr, allow_pickle=False)
    os.replace(tmp, path)


@dataclass(frozen=True)
class EmbeddingStore:
    """Reads and writes one embedding set's directory."""

    sdir: SetDir

    @property
    def root(self) -> Path:
        return self.sdir.root

    def write_manifest(self, manifest: Mapping[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.sdir.manifest_path
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)

    def done(self, split: str) -> bool:
        return self.sdir.uids_path(split).is_file()

    def write_split(
        self, split: str, arrays: Mapping[str, npt.NDArray[Any]], *, uids: npt.NDArray[Any]
    ) -> None:
        """Write every kind of ``split`` (unit kinds L2-normalised), then its UIDs."""
        unknown = sorted(set(arrays) - set(UNIT_KINDS) - set(RAW_KINDS))
        if "image" not in arrays or unknown:
            raise ValueError(f"embeddings of {split}: need 'image', unknown kinds {unknown}")
        self.sdir.array_path(split, "image").parent.mkdir(parents=True, exist_ok=True)
        for kind, arr in arrays.items():
            if len(arr) != len(uids):
                raise ValueError(f"{split}/{kind}: {len(arr)} rows for {len(uids)} UIDs")
            rows = l2_normalise(arr) if kind in UNIT_KINDS else np.asarray(arr, np.float32)
            _save_atomic(self.sdir.array_path(split, kind), rows)
        _save_atomic(self.sdir.uids_path(split), np.asarray(uids, dtype=np.str_))

    def kinds(self, split: str) -> list[str]:
        """The array kinds written for ``split`` (scores excluded)."""
        return [k for k in (*UNIT_KINDS, *RAW_KINDS) if self.sdir.array_path(split, k).is_file()]

    # Chunks: partial results of long embedders, one .npy per kind and chunk.
    def chunk_path(self, split: str, kind: str, chunk: int) -> Path:
        return self.root / ".partial" / split / f"{kind}-{chunk:06d}.npy"

    def has_chunk(self, split: str, chunk: int, kinds: tuple[str, ...]) -> bool:
        return all(self.chunk_path(split, k, chunk).is_file() for k in kinds)

    def write_chunk(self, split: str, chunk: int, arrays: Mapping[str, npt.NDArray[Any]]) -> None:
        self.chunk_path(split, "image", chunk).parent.mkdir(parents=True, exist_ok=True)
        for kind, arr in arrays.items():
            _save_atomic(self.chunk_path(split, kind, chunk), np.asarray(arr, np.float32))

    def assemble(
        self, split: str, n_chunks: int, *, kinds: tuple[str, ...], uids: npt.NDArray[Any]
    ) -> None:
        """Concatenate a split's chunks into its final files and drop the chunks."""
        arrays = {
            kind: np.concatenate(
                [np.load(self.chunk_path(split, kind, c)) for c in range(n_chunks)]
            )
            for kind in kinds
        }
        self.write_split(split, arrays, uids=uids)
        shutil.rmtree(self.root / ".partial" / split)
        if not any((self.root / ".partial").iterdir()):
            (self.root / ".partial").rmdir()

    def write_pool_scores(self, pool: str) -> dict[str, float]:
        """Each pool sample's image-caption cosine similarity (where captions exist)."""
        image = np.load(self.sdir.array_path(pool, "image"), mmap_mode="r")
        means = {}
        for name, kind in SCORE_KINDS.items():
            if not self.sdir.array_path(pool, kind).is_file():
                continue
            text = np.load(self.sdir.array_path(pool, kind), mmap_mode="r")
            score = np.einsum("ij,ij->i", image, text).astype(np.float32)
            _save_atomic(self.sdir.array_path(pool, name), score)
            means[name] = float(score.mean()) if len(score) else 0.0
        return means

    def split_summary(self, split: str) -> dict[str, Any]:
        dims = {
            k: int(np.load(self.sdir.array_path(split, k), mmap_mode="r").shape[1])
            for k in self.kinds(split)
        }
        rows = len(np.load(self.sdir.uids_path(split), mmap_mode="r"))
        return {"rows": rows, "dims": dims}
