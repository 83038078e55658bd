"""A writable copy of the tiny dataset with a chosen embedding spec (its old embeddings gone)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.datasets import Dataset, DatasetDir
from harness.specs import EmbeddingSpec

Copier = Callable[..., Dataset]


@pytest.fixture
def tiny_copy(tiny_dataset: Dataset, tmp_path: Path) -> Copier:
    def make(embedder: str, params: dict[str, Any] | None = None) -> Dataset:
        root = tmp_path / tiny_dataset.spec.path
        if not root.exists():
            shutil.copytree(tiny_dataset.dir.root, root)
            shutil.rmtree(root / "embeddings")
        spec = tiny_dataset.spec.model_copy(
            update={"embedding": EmbeddingSpec(embedder=embedder, params=params or {})}
        )
        return Dataset(spec=spec, dir=DatasetDir(root))

    return make
