"""The on-disk benchmark format (docs/benchmark-format.md) and a dataset handle over it.

<data_root>/<spec.path>/
    manifest.json                         format + dataset version, row counts, checksums
    splits/<split>.parquet                uid (str), label, filename, metadata columns
    images/...                            files named by ``filename`` (or the manifest's
                                          external ``image_root``: images referenced in place)
    embeddings/<set>/manifest.json        one named embedding set: fingerprint, status, kinds
    embeddings/<set>/<split>/<kind>.npy   float32 (n, d), row i = split row i
    embeddings/<set>/<split>/uids.npy     the split's UIDs in that order (checked on use)
    index/                                the UID index (harness.datasets.uid_index)

ds = Dataset.open(spec, data_root=Path("data"))                     # the spec's default set
ds = Dataset.open(spec, data_root=Path("data"), embeddings="dinov2")
ds.embeddings("train", "image")
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
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
# Kinds an embedder may write: image (required, unit rows), captions with and without the
# label (unit rows), image_raw (imported research features as they were, not normalised).
UNIT_KINDS = ("image", "text", "text_nolabel")
RAW_KINDS = ("image_raw",)


@dataclass(frozen=True)
class SetDir:
    """Paths of one embedding set, ``embeddings/<name>/``; no I/O on construction."""

    root: Path

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    def array_path(self, split: str, kind: str) -> Path:
        return self.root / split / f"{kind}.npy"

    def uids_path(self, split: str) -> Path:
        return self.root / split / "uids.npy"

    def read_manifest(self) -> dict[str, Any] | None:
        """The set's ``manifest.json``; None when there is none."""
        if not self.manifest_path.is_file():
            return None
        data: dict[str, Any] = json.loads(self.manifest_path.read_text())
        return data


@dataclass(frozen=True)
class DatasetDir:
    """Paths of one prepared dataset; no I/O on construction."""

    root: Path

    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    def split_path(self, split: str) -> Path:
        return self.root / "splits" / f"{split}.parquet"

    @property
    def embeddings_root(self) -> Path:
        return self.root / "embeddings"

    def embedding_set(self, name: str) -> SetDir:
        return SetDir(self.embeddings_root / name)

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
    embedding_set: str | None = None  # None: the spec's default set
    # Called once before the first embedding read (harness.embed.sets.open_dataset sets it to
    # the set check), so only code that reads embeddings needs a usable set.
    verify_set: Callable[[Dataset], object] | None = field(default=None, repr=False)
    set_used: bool = field(default=False, repr=False)
    # The decoded-image cache a recipe read through this handle (harness.datasets.image_cache)
    image_cache_used: str | None = field(default=None, repr=False)
    _splits: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)

    @classmethod
    def open(cls, spec: DatasetSpec, *, data_root: Path, embeddings: str | None = None) -> Dataset:
        ds = cls(spec=spec, dir=DatasetDir(Path(data_root) / spec.path), embedding_set=embeddings)
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
        """Where ``filename`` is relative to: the recorded external root, else ``images/``."""
        external = self.manifest.get("image_root")
        return Path(external) if external else self.dir.root / self.spec.image_root

    @property
    def set_name(self) -> str:
        """The embedding set this handle reads: the one asked for, else the spec's default."""
        if self.embedding_set is not None:
            return self.embedding_set
        if self.spec.embeddings is None:
            raise DataNotFound(
                f"dataset {self.spec.name!r} declares no embedding sets (`embeddings:` in "
                "configs/datasets.yaml); name an imported one with --embeddings SET"
            )
        return self.spec.embeddings.default

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

    def with_spec(self, spec: DatasetSpec) -> Dataset:
        """The same files and embedding set seen through another spec (e.g. another pool)."""
        return Dataset(spec=spec, dir=self.dir, embedding_set=self.embedding_set,
                       verify_set=self.verify_set)  # fmt: skip

    def embeddings(self, split: str, kind: str = "image") -> npt.NDArray[np.float32]:
        """Embeddings of ``split`` from this handle's set, aligned to its rows, memory-mapped."""
        if not self.set_used and self.verify_set is not None:
            self.verify_set(self)
        self.set_used = True
        path = self.dir.embedding_set(self.set_name).array_path(split, kind)
        if not path.is_file():
            raise DataNotFound(
                f"{kind} embeddings of {self.spec.name}/{split} missing in set "
                f"{self.set_name!r} ({path}); {self._set_hint(kind)}"
            )
        arr: npt.NDArray[np.float32] = np.load(path, mmap_mode="r", allow_pickle=False)
        return arr

    def _set_hint(self, kind: str) -> str:
        kinds = (self.dir.embedding_set(self.set_name).read_manifest() or {}).get("kinds")
        if kinds and kind not in kinds:
            return f"the set has only {', '.join(kinds)}; choose another --embeddings set"
        return f"run `tdc-harness embed {self.spec.name} --set {self.set_name}`"

    def uid_index(self) -> UidIndex:
        """The dataset's UID -> (split, row) index, built on first use and memory-mapped."""
        from harness.datasets.uid_index import UidIndex

        return UidIndex.open_or_build(self)

    def manifest_hash(self) -> str:
        return self._manifest_hash

    @cached_property
    def _manifest_hash(self) -> str:  # read once per handle, as ``manifest`` is
        return hashlib.sha256(self.dir.manifest_path.read_bytes()).hexdigest()[:16]

    def set_fingerprint(self) -> str | None:
        """The fingerprint of this handle's embedding set (:attr:`set_name`); None while the
        set has no manifest."""
        return self._set_fingerprint

    @cached_property
    def _set_fingerprint(self) -> str | None:  # read once per handle, as ``manifest`` is
        manifest = self.dir.embedding_set(self.set_name).read_manifest() or {}
        return None if manifest.get("fingerprint") is None else str(manifest["fingerprint"])

    def set_record(self) -> tuple[str, str] | None:
        """(set name, fingerprint) of the embedding set this handle has read, else None."""
        if not self.set_used:
            return None
        return self.set_name, self.set_fingerprint() or "unknown"
