"""A writable copy of the tiny dataset with a chosen embedding set spec (old sets gone).

``tiny_copy(embedder, params, name="s")`` declares one set ``name`` (the default) made by
``embedder`` with ``params``; calling it again with other values redeclares it on the same
copy, as an organizer editing datasets.yaml would.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.datasets import Dataset, DatasetDir
from harness.specs import EmbeddingSpec, EmbeddingsSpec

Copier = Callable[..., Dataset]


@pytest.fixture
def tiny_copy(tiny_dataset: Dataset, tmp_path: Path) -> Copier:
    def make(embedder: str, params: dict[str, Any] | None = None, name: str = "s") -> Dataset:
        root = tmp_path / tiny_dataset.spec.path
        if not root.exists():
            shutil.copytree(tiny_dataset.dir.root, root)
            shutil.rmtree(root / "embeddings")
        es = EmbeddingSpec(embedder=embedder, params=params or {})
        spec = tiny_dataset.spec.model_copy(
            update={"embeddings": EmbeddingsSpec(default=name, sets={name: es})}
        )
        return Dataset(spec=spec, dir=DatasetDir(root))

    return make
