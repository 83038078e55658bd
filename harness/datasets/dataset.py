"""The on-disk benchmark format (docs/benchmark-format.md) and a dataset handle over it.

<data_root>/<spec.path>/
    manifest.json                    format + dataset version, row counts, checksums
    splits/<split>.parquet           uid (str), label, filename, metadata columns
    images/...                       files named by the split's ``filename`` column
    embeddings/<split>/<kind>.npy    float32 (n, d), row i = split row i
    embeddings/<split>/uids.npy      the split's UIDs in that order (checked on load)
    embeddings/manifest.json         embedder identity and parameters
    index/                           the UID index (harness.datasets.uid_index)

ds = Dataset.open(spec, data_root=Path("data"))
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from harness.specs import DatasetSpec
from submissions.errors import DataNotFound

if TYPE_CHECKING:
    import pandas as pd

    from harness.datasets.uid_index import UidIndex

FORMAT_VERSION = 1
EMBEDDING_KINDS = ("image", "text", "text_nolabel")


@dataclass(frozen=True)
class DatasetDir:
    """Paths of one prepared dataset; no I/O on construction."""

    root: Path

    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    def split_path(self, split: str) -> Path:
        return self.root / "splits" / f"{split}.parquet"

    def embedding_path(self, split: str, kind: str) -> Path:
        return self.root / "embeddings" / split / f"{kind}.npy"

    def embedding_uids_path(self, split: str) -> Path:
        return self.root / "embeddings" / split / "uids.npy"

    @property
    def embeddings_manifest_path(self) -> Path:
        return self.root / "embeddings" / "manifest.json"

    @property
    def index_dir(self) -> Path:
        return self.root / "index"

    def is_prepared(self) -> bool:
        return self.manifest_path.is_file()


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass
class Dataset:
    """A prepared dataset: its spec plus lazy, cached access to its files."""

    spec: DatasetSpec
    dir: DatasetDir
    _splits: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)

    @classmethod
    def open(cls, spec: DatasetSpec, *, data_root: Path) -> Dataset:
        ds = cls(spec=spec, dir=DatasetDir(Path(data_root) / spec.path))
        if not ds.dir.is_prepared():
            raise DataNotFound(
                f"dataset {spec.name!r} is not prepared under {ds.dir.root}; "
                f"run `tdc-harness prepare {spec.name}` (or set TDC_DATA_ROOT)"
            )
        return ds

    @cached_property
    def manifest(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.dir.manifest_path.read_text())
        return data

    @property
    def image_root(self) -> Path:
        return self.dir.root / self.spec.image_root

    def split(self, name: str) -> pd.DataFrame:
        """The split table (cached). Row order is the split's canonical UID order."""
        import pandas as pd

        if name not in self._splits:
            path = self.dir.split_path(name)
            if not path.is_file():
                raise DataNotFound(f"split {name!r} of {self.spec.name} missing: {path}")
            self._splits[name] = pd.read_parquet(path)
        return self._splits[name]

    def split_size(self, name: str) -> int:
        return int(self.manifest["splits"][name]["rows"])

    @property
    def pool_size(self) -> int:
        return self.split_size(self.spec.pool)

    def uids(self, split: str) -> npt.NDArray[np.str_]:
        return self.split(split)["uid"].to_numpy(dtype=str)

    def embeddings(self, split: str, kind: str = "image") -> npt.NDArray[np.float32]:
        """Embeddings of ``split`` aligned to its rows, memory-mapped."""
        path = self.dir.embedding_path(split, kind)
        if not path.is_file():
            raise DataNotFound(
                f"{kind} embeddings of {self.spec.name}/{split} missing: {path}; "
                f"run `tdc-harness embed {self.spec.name}`"
            )
        arr: npt.NDArray[np.float32] = np.load(path, mmap_mode="r", allow_pickle=False)
        return arr

    def uid_index(self) -> UidIndex:
        """The dataset's UID -> (split, row) index, built on first use and memory-mapped."""
        from harness.datasets.uid_index import UidIndex

        return UidIndex.open_or_build(self)

    def manifest_hash(self) -> str:
        return hashlib.sha256(self.dir.manifest_path.read_bytes()).hexdigest()[:16]
