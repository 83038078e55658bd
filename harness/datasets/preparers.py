"""Dataset preparers: turn a source (a package, a public release) into the benchmark format.

    ds = prepare_dataset(spec=specs.dataset("demo"), settings=settings)            # skips if done
    ds = prepare_dataset(spec=geode, settings=settings, source=Path("~/dl/GeoDE"), force=True)

A preparer is registered under a name with one signature::

    @PREPARERS.register("demo")
    def prepare_demo(spec: DatasetSpec, *, out: DatasetDir, settings: HarnessSettings,
                     source: Path | None) -> None: ...

It writes splits, images and the manifest into ``out`` (a scratch directory);
:func:`prepare_dataset` moves the finished directory into place, so a crashed preparation
never looks prepared. ``spec.preparer`` names the preparer; datasets without one use
``csv_release`` (harness.datasets.csv_release), the research-style release of split CSVs.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from harness.datasets.dataset import Dataset, DatasetDir, sha256_file
from harness.registry import Registry
from harness.settings import HarnessSettings
from harness.specs import DatasetSpec

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

DEFAULT_PREPARER = "csv_release"
# Modules whose import registers preparers; imported lazily so the registry stays light.
PREPARER_MODULES = (
    "harness.datasets.demo",
    "harness.datasets.csv_release",
    "harness.datasets.demo_detection",
    "harness.datasets.demo_reid",
)


class Preparer(Protocol):
    def __call__(
        self,
        spec: DatasetSpec,
        *,
        out: DatasetDir,
        settings: HarnessSettings,
        source: Path | None,
    ) -> None: ...


PREPARERS: Registry[Preparer] = Registry("dataset preparer")


def get_preparer(name: str) -> Preparer:
    """The registered preparer ``name`` (UnknownName with suggestions otherwise).

    Preparer ``x`` is looked up in the built-in modules and, by convention, in
    ``harness/datasets/x.py``, so a new dataset needs no edit here.
    """
    import importlib
    import importlib.util

    for module in PREPARER_MODULES:
        if importlib.util.find_spec(module) is not None:  # listed before it is written is fine
            importlib.import_module(module)
    conventional = f"harness.datasets.{name}"
    if name not in PREPARERS and name.isidentifier() and importlib.util.find_spec(conventional):
        importlib.import_module(conventional)
    return PREPARERS.get(name)


def dataset_dir(spec: DatasetSpec, settings: HarnessSettings) -> DatasetDir:
    return DatasetDir(Path(settings.data_root) / spec.path)


def prepare_dataset(
    *,
    spec: DatasetSpec,
    settings: HarnessSettings,
    force: bool = False,
    source: Path | None = None,
) -> Dataset:
    """Prepare ``spec`` under the data root unless it already is (or ``force``)."""
    target = dataset_dir(spec, settings)
    if target.is_prepared() and not force:
        log.info("%s already prepared at %s", spec.name, target.root)
        return Dataset.open(spec, data_root=settings.data_root)
    preparer = get_preparer(spec.preparer or DEFAULT_PREPARER)
    scratch = DatasetDir(target.root.with_name(target.root.name + ".partial"))
    if scratch.root.exists():
        shutil.rmtree(scratch.root)
    scratch.root.mkdir(parents=True)
    try:
        preparer(spec, out=scratch, settings=settings, source=source)
        if not scratch.is_prepared():
            raise RuntimeError(f"preparer of {spec.name} finished without writing a manifest")
    except BaseException:
        shutil.rmtree(scratch.root, ignore_errors=True)
        raise
    if target.root.exists():
        shutil.rmtree(target.root)
    scratch.root.rename(target.root)
    log.info("prepared %s at %s", spec.name, target.root)
    return Dataset.open(spec, data_root=settings.data_root)


def images_checksum(image_root: Path, filenames: Iterable[str]) -> dict[str, object]:
    """One checksum over every image file (see :func:`combined_checksum`)."""
    return combined_checksum({n: sha256_file(image_root / n) for n in set(filenames)})


def combined_checksum(digests: Mapping[str, str]) -> dict[str, object]:
    """sha256 of ``name<TAB>sha256(file)`` lines, names sorted; and the number of files."""
    h = hashlib.sha256()
    for name in sorted(digests):
        h.update(f"{name}\t{digests[name]}\n".encode())
    return {"files": len(digests), "sha256": h.hexdigest()}


def content_checksums(splits: Mapping[str, pd.DataFrame]) -> dict[str, str]:
    """Checksums of each split's *content* (canonical CSV), independent of parquet versions."""
    out = {}
    for name, df in splits.items():
        text = df.reset_index(drop=True).to_csv(index=False, lineterminator="\n")
        out[name] = hashlib.sha256(text.encode()).hexdigest()
    return out


def write_built_splits(
    spec: DatasetSpec,
    *,
    out: DatasetDir,
    built: Mapping[str, pd.DataFrame],
    preparer: str,
    seed: int,
    **extra: object,
) -> None:
    """Write the spec's splits of a generated dataset with the standard manifest entries.

    The images must already be under the spec's image root; the manifest records the
    preparer, its seed, the image and split-content checksums, plus ``extra``.
    """
    from harness.datasets.writer import write_splits

    splits = {name: built[name] for name in spec.split_names()}
    filenames = [f for df in splits.values() for f in df["filename"]]
    manifest_extra = {
        "name": spec.name,
        "preparer": preparer,
        "seed": seed,
        **extra,
        "images": images_checksum(out.root / spec.image_root, filenames),
        "content_sha256": content_checksums(splits),
    }
    write_splits(out, splits, dataset_version=spec.version, extra=manifest_extra)
    log.info("%s: %s", preparer, {k: len(v) for k, v in splits.items()})
