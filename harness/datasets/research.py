"""The ``research`` preparer: a dataset from the research group's own ``datasets.yaml``.

    tdc-harness prepare iWildCam --research-config ~/task_datacomp/configs/datasets.yaml

Reads the file's entry for the dataset (``csv_root_path``, ``img_root_path``, ``FILEPATHS``,
``training_task``). Task k of our spec takes the research ``valk`` (query) and ``testk``
(test) entries of ``FILEPATHS``, whatever the files are called (``val1_id.csv``,
``testCalgary.csv``, SelfDrivingCar's ``val0.csv`` for task 1); the pool is ``train``. A
missing entry fails naming it: a task is never shifted onto another's files. Entries no task
uses (FishDetection's ``val``) are reported. The tables are read with the dataset's ``table``
section (harness.datasets.tables); images stay under ``img_root_path``. The mapping is
logged and recorded in the manifest under ``research``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness.datasets.csv_release import read_csv
from harness.datasets.dataset import DatasetDir, sha256_file
from harness.datasets.preparers import PREPARERS, PrepareOptions
from harness.datasets.table_release import build_from_tables
from harness.registry import unknown
from harness.settings import HarnessSettings
from harness.specs import DatasetSpec, read_yaml
from submissions.errors import ConfigError, DataNotFound

log = logging.getLogger(__name__)


class ResearchEntry(BaseModel):
    """One dataset of the research ``datasets.yaml`` (keys we do not use are ignored)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    csv_root_path: str | None = None
    img_root_path: str | None = None
    training_task: str | None = None
    FILEPATHS: dict[str, str] = Field(default_factory=dict)


def read_entry(path: Path, name: str) -> ResearchEntry:
    raw = read_yaml(Path(path).expanduser())
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of dataset names to entries")
    if name not in raw:
        raise unknown(f"dataset in {path}", name, raw)
    try:
        entry = ResearchEntry.model_validate(raw[name] or {})
    except ValidationError as err:
        raise ConfigError(f"{path}: entry {name}: {err.errors()[0]['msg']}") from None
    missing = [k for k in ("csv_root_path", "img_root_path") if not getattr(entry, k)]
    if missing or not entry.FILEPATHS:
        raise ConfigError(
            f"{path}: entry {name} has no {', '.join(missing or ['FILEPATHS'])} (the research "
            f"code may hard-code them); add csv_root_path, img_root_path and FILEPATHS to the "
            f"entry, or build the dataset from its public release with --release DIR"
        )
    return entry


def task_files(spec: DatasetSpec, entry: ResearchEntry) -> dict[str, str]:
    """Our split name -> research file, by position: task k <- valk / testk, pool <- train."""
    keys = {spec.pool: "train"}
    for k, task in enumerate(spec.tasks, start=1):
        keys[task.query] = f"val{k}"
        keys[task.test] = f"test{k}"
    missing = [f"{key} (for {split})" for split, key in keys.items() if key not in entry.FILEPATHS]
    if missing:
        raise ConfigError(
            f"{spec.name}: FILEPATHS lacks {', '.join(missing)}; task k of "
            f"configs/datasets.yaml takes the research valk/testk files, so no task is moved "
            f"onto another's (FILEPATHS has {', '.join(entry.FILEPATHS)})"
        )
    return {split: entry.FILEPATHS[key] for split, key in keys.items()}


def mapping_record(
    spec: DatasetSpec, entry: ResearchEntry, files: dict[str, str]
) -> dict[str, Any]:
    used = set(files.values())
    return {
        "pool": files[spec.pool],
        "tasks": {t.name: {"query": files[t.query], "test": files[t.test]} for t in spec.tasks},
        "unused": sorted(k for k, v in entry.FILEPATHS.items() if v not in used),
    }


@PREPARERS.register("research")
def prepare_research(
    spec: DatasetSpec,
    *,
    out: DatasetDir,
    settings: HarnessSettings,
    source: Path | None,
    options: PrepareOptions,
) -> None:
    """Import ``spec`` from the research config file ``source`` into ``out``."""
    del settings
    if source is None:
        raise ConfigError("the research preparer needs --research-config FILE")
    entry = read_entry(source, spec.name)
    if entry.training_task and entry.training_task != spec.task_type:
        raise ConfigError(f"{source}: {spec.name} is a {entry.training_task!r} dataset there, "
                          f"{spec.task_type!r} in configs/datasets.yaml")  # fmt: skip
    files = task_files(spec, entry)
    csv_root = Path(entry.csv_root_path or "").expanduser()
    paths = {split: csv_root / name for split, name in files.items()}
    absent = [str(p) for p in paths.values() if not p.is_file()]
    if absent:
        raise DataNotFound(f"{spec.name}: split CSVs missing: {', '.join(absent)}")
    mapping = mapping_record(spec, entry, files)
    log.info("%s: pool <- %s; %s", spec.name, mapping["pool"], "; ".join(
        f"{t} <- {m['query']} / {m['test']}" for t, m in mapping["tasks"].items()))  # fmt: skip
    research = {
        "config": str(Path(source).expanduser().resolve()),
        "config_sha256": sha256_file(Path(source).expanduser()),
        "csv_root": str(csv_root.resolve()),
        "csv_sha256": {s: sha256_file(p) for s, p in paths.items()},
        **mapping,
    }
    build_from_tables(
        spec,
        out=out,
        raw={split: read_csv(p) for split, p in paths.items()},
        image_root=Path(entry.img_root_path or "").expanduser(),
        options=options,
        extra={"preparer": "research", "research": research},
    )
