"""Dataset preparers: turn a source (a package, a public release) into the benchmark format.

    ds = prepare_dataset(spec=specs.dataset("demo"), settings=settings)            # skips if done
    ds = prepare_dataset(spec=geode, settings=settings, source=Path("~/dl/GeoDE"), force=True)
    ds = prepare_dataset(spec=iwildcam, settings=settings,
                         research_config=Path("task_datacomp/configs/datasets.yaml"))
    ds = prepare_dataset(spec=fmow, settings=settings, release=Path("~/wilds/fmow_v1.1"))

A preparer is registered under a name with one signature::

    @PREPARERS.register("demo")
    def prepare_demo(spec: DatasetSpec, *, out: DatasetDir, settings: HarnessSettings,
                     source: Path | None, options: PrepareOptions) -> None: ...

It writes splits, images and the manifest into ``out`` (a scratch directory);
:func:`prepare_dataset` moves the finished directory into place, so a crashed preparation
never looks prepared and an error leaves the previous preparation untouched. Which preparer
runs: ``--research-config`` -> ``research`` (harness.datasets.research); ``--release`` -> the
spec's ``release.builder``; otherwise ``spec.preparer``, else ``csv_release``. A rebuild
keeps the dataset's embedding sets (``embeddings/``): they are never deleted by ``prepare``;
a set made for an earlier preparation is refused at use until it is re-made.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from harness.datasets.dataset import Dataset, DatasetDir, sha256_file
from harness.registry import Registry
from harness.settings import HarnessSettings
from harness.specs import DatasetSpec
from submissions.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

DEFAULT_PREPARER = "csv_release"
# Modules whose import registers preparers; imported lazily so the registry stays light.
PREPARER_MODULES = (
    "harness.datasets.demo",
    "harness.datasets.csv_release",
    "harness.datasets.research",
    "harness.datasets.demo_detection",
    "harness.datasets.demo_reid",
    "harness.datasets.releases",
)
RESEARCH_PREPARER = "research"


@dataclass(frozen=True)
class PrepareOptions:
    """Choices of the organizer that change what a preparation keeps."""

    on_missing_label: Literal["drop", "error"] = "drop"


class Preparer(Protocol):
    def __call__(
        self,
        spec: DatasetSpec,
        *,
        out: DatasetDir,
        settings: HarnessSettings,
        source: Path | None,
        options: PrepareOptions,
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
    research_config: Path | None = None,
    release: Path | None = None,
    options: PrepareOptions | None = None,
) -> Dataset:
    """Prepare ``spec`` under the data root unless it already is (or ``force``)."""
    target = dataset_dir(spec, settings)
    if target.is_prepared() and not force:
        log.info("%s already prepared at %s (--force rebuilds it)", spec.name, target.root)
        return Dataset.open(spec, data_root=settings.data_root)
    name, where = choose_preparer(spec, source=source, research_config=research_config,
                                  release=release)  # fmt: skip
    preparer = get_preparer(name)
    scratch = DatasetDir(target.root.with_name(target.root.name + ".partial"))
    if scratch.root.exists():
        shutil.rmtree(scratch.root)  # an earlier preparation's unfinished scratch: ours
    scratch.root.mkdir(parents=True)
    try:
        preparer(spec, out=scratch, settings=settings, source=where,
                 options=options or PrepareOptions())  # fmt: skip
        if not scratch.is_prepared():
            raise RuntimeError(f"preparer of {spec.name} finished without writing a manifest")
    except BaseException:
        shutil.rmtree(scratch.root, ignore_errors=True)
        raise
    swap_into_place(scratch.root, target.root)
    log.info("prepared %s at %s", spec.name, target.root)
    return Dataset.open(spec, data_root=settings.data_root)


def choose_preparer(
    spec: DatasetSpec,
    *,
    source: Path | None,
    research_config: Path | None,
    release: Path | None,
) -> tuple[str, Path | None]:
    """(preparer name, what it reads) for the one source given."""
    given = [n for n, v in (("--source", source), ("--research-config", research_config),
                            ("--release", release)) if v is not None]  # fmt: skip
    if len(given) > 1:
        raise ConfigError(f"give one source, not {' and '.join(given)}")
    if research_config is not None:
        return RESEARCH_PREPARER, research_config
    if release is not None:
        if spec.release is None:
            raise ConfigError(
                f"{spec.name} declares no `release` builder in configs/datasets.yaml; "
                f"prepare it with --research-config FILE or --source DIR"
            )
        return spec.release.builder, release
    return spec.preparer or DEFAULT_PREPARER, source


def swap_into_place(scratch: Path, target: Path) -> None:
    """Rename the finished ``scratch`` to ``target``, keeping the old one's embedding sets.

    The old preparation (splits, manifest, UID index) is this command's own work and goes;
    ``embeddings/`` moves into the new directory untouched.
    """
    if not target.exists():
        scratch.rename(target)
        return
    old_sets = target / "embeddings"
    if old_sets.exists():
        os.replace(old_sets, scratch / "embeddings")
    retired = target.with_name(f"{target.name}.replaced-{time.time_ns()}")
    target.rename(retired)
    scratch.rename(target)
    shutil.rmtree(retired)


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
