"""The embedder registry and the store every embedder writes through.

    @register("pixel_pca", params=PixelPcaParams, description="...")
    def embed_pixel_pca(ds: Dataset, *, params: PixelPcaParams, store: EmbeddingStore,
                        settings: HarnessSettings) -> dict[str, Any]:
        ...
        store.write_split(split, {"image": img, "text": txt, "text_nolabel": txt0}, uids=uids)
        return {"explained_variance": 0.71}          # identity details for the manifest

Files (docs/benchmark-format.md): ``embeddings/<split>/{image,text,text_nolabel}.npy``
(float32, L2-normalised, row i = split row i), ``embeddings/<split>/uids.npy`` (written last:
its presence marks the split done), ``embeddings/<pool>/clip_score{,_nolabel}.npy`` and
``embeddings/manifest.json``. Long embedders write row chunks under
``embeddings/.partial/<split>/`` as they finish, so a rerun resumes where it stopped.
"""

from __future__ import annotations

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

from harness.datasets.dataset import EMBEDDING_KINDS, DatasetDir
from harness.registry import Registry

Array = npt.NDArray[np.float32]
EmbedFn = Callable[..., dict[str, Any]]
SCORE_KINDS = {"clip_score": "text", "clip_score_nolabel": "text_nolabel"}


@dataclass(frozen=True)
class EmbedderEntry:
    """A registered embedder: the function, its params model and a one-line description."""

    fn: EmbedFn
    params: type[BaseModel]
    description: str
    # Inputs besides params that change the vectors (e.g. which checkpoint a setting names).
    fingerprint: Callable[..., dict[str, Any]] | None = None


EMBEDDERS: Registry[EmbedderEntry] = Registry("embedder")


def register(
    name: str,
    *,
    params: type[BaseModel],
    description: str,
    fingerprint: Callable[..., dict[str, Any]] | None = None,
) -> Callable[[EmbedFn], EmbedFn]:
    def deco(fn: EmbedFn) -> EmbedFn:
        EMBEDDERS.register(name)(EmbedderEntry(fn, params, description, fingerprint))
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
    """Reads and writes one dataset's ``embeddings/`` directory."""

    ddir: DatasetDir

    @property
    def root(self) -> Path:
        return self.ddir.root / "embeddings"

    def manifest(self) -> dict[str, Any] | None:
        path = self.ddir.embeddings_manifest_path
        if not path.is_file():
            return None
        data: dict[str, Any] = json.loads(path.read_text())
        return data

    def write_manifest(self, manifest: Mapping[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.ddir.embeddings_manifest_path
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)

    def clear(self) -> None:
        if self.root.exists():
            shutil.rmtree(self.root)

    def done(self, split: str) -> bool:
        return self.ddir.embedding_uids_path(split).is_file()

    def write_split(
        self, split: str, arrays: Mapping[str, npt.NDArray[Any]], *, uids: npt.NDArray[Any]
    ) -> None:
        """Write every kind of ``split`` (L2-normalised float32), then its UIDs."""
        missing = sorted(set(EMBEDDING_KINDS) - set(arrays))
        if missing:
            raise ValueError(f"embeddings of {split} lack kinds {missing}")
        self.ddir.embedding_path(split, "image").parent.mkdir(parents=True, exist_ok=True)
        for kind, arr in arrays.items():
            if len(arr) != len(uids):
                raise ValueError(f"{split}/{kind}: {len(arr)} rows for {len(uids)} UIDs")
            _save_atomic(self.ddir.embedding_path(split, kind), l2_normalise(arr))
        _save_atomic(self.ddir.embedding_uids_path(split), np.asarray(uids, dtype=np.str_))

    # Chunks: partial results of long embedders, one .npy per kind and chunk.
    def chunk_path(self, split: str, kind: str, chunk: int) -> Path:
        return self.root / ".partial" / split / f"{kind}-{chunk:06d}.npy"

    def has_chunk(self, split: str, chunk: int) -> bool:
        return all(self.chunk_path(split, k, chunk).is_file() for k in EMBEDDING_KINDS)

    def write_chunk(self, split: str, chunk: int, arrays: Mapping[str, npt.NDArray[Any]]) -> None:
        self.chunk_path(split, "image", chunk).parent.mkdir(parents=True, exist_ok=True)
        for kind in EMBEDDING_KINDS:
            _save_atomic(self.chunk_path(split, kind, chunk), l2_normalise(arrays[kind]))

    def assemble(self, split: str, n_chunks: int, *, uids: npt.NDArray[Any]) -> None:
        """Concatenate a split's chunks into its final files and drop the chunks."""
        arrays = {
            kind: np.concatenate(
                [np.load(self.chunk_path(split, kind, c)) for c in range(n_chunks)]
            )
            for kind in EMBEDDING_KINDS
        }
        self.write_split(split, arrays, uids=uids)
        shutil.rmtree(self.root / ".partial" / split)
        if not any((self.root / ".partial").iterdir()):
            (self.root / ".partial").rmdir()

    def write_pool_scores(self, pool: str) -> dict[str, float]:
        """Each pool sample's image-caption cosine similarity; returns their means."""
        image = np.load(self.ddir.embedding_path(pool, "image"), mmap_mode="r")
        means = {}
        for name, kind in SCORE_KINDS.items():
            text = np.load(self.ddir.embedding_path(pool, kind), mmap_mode="r")
            score = np.einsum("ij,ij->i", image, text).astype(np.float32)
            _save_atomic(self.ddir.embedding_path(pool, name), score)
            means[name] = float(score.mean()) if len(score) else 0.0
        return means

    def split_summary(self, split: str) -> dict[str, Any]:
        dims = {
            k: int(np.load(self.ddir.embedding_path(split, k), mmap_mode="r").shape[1])
            for k in EMBEDDING_KINDS
        }
        rows = len(np.load(self.ddir.embedding_uids_path(split), mmap_mode="r"))
        return {"rows": rows, "dims": dims}
