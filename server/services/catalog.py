"""The datasets this server offers: specs from ``configs/`` plus the prepared data on disk.

    catalog = Catalog.load(settings)
    catalog.spec("demo"); catalog.dataset("demo")          # DatasetSpec; harness Dataset (prepared)
    catalog.sync(db)                                        # upsert the Dataset table
    path, etag = catalog.pool_uids_file("demo", storage)    # the pool UIDs as .npy

A server *hosts* the datasets prepared under its data root (``catalog.hosted()``): only those
are listed by ``/api/datasets`` and shown as boards on the home page; configured but
unprepared ones accept no uploads and appear at most as "not hosted here".
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlmodel import Session

from harness.specs import BenchmarkSpecs, DatasetSpec, load_benchmark
from leaderboard.phases import PickWindow, pick_window, visible_tasks
from server.models import Dataset as DatasetRow
from server.models import utcnow
from submissions.errors import DataNotFound, TdcError
from submissions.outcomes import PER_CLASS
from submissions.schemas import DatasetPublic, FractionPublic, TaskPublic
from submissions.significance import TaskStat

if TYPE_CHECKING:
    from harness.datasets import Dataset
    from server.settings import Settings
    from server.storage import Storage

log = logging.getLogger(__name__)


@dataclass
class Catalog:
    specs: BenchmarkSpecs
    data_root: Path
    reveal_at: dict[str, datetime] = field(default_factory=dict)
    _open: dict[str, Dataset] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def load(cls, settings: Settings) -> Catalog:
        return cls(
            specs=load_benchmark(settings.configs_dir),
            data_root=settings.data_root,
            reveal_at=dict(settings.reveal_at),
        )

    def names(self) -> list[str]:
        """Every configured dataset, hosted here or not."""
        return list(self.specs.datasets)

    def hosted(self) -> list[str]:
        """The configured datasets prepared here (with a pool), in config order."""
        return [n for n in self.names() if self.pool_size(n) is not None]

    def spec(self, name: str) -> DatasetSpec:
        return self.specs.dataset(name)

    def task_stats(self, name: str, tasks: Sequence[str]) -> tuple[TaskStat, ...]:
        """How the boards' intervals score each task: the mean of its outcomes, or for a
        per-class metric (balanced accuracy) per class, from the test split's labels (no
        labels when the dataset is not prepared here: those boards show no intervals)."""
        spec = self.spec(name)
        if spec.primary_metric not in PER_CLASS:
            return tuple(TaskStat(t) for t in tasks)
        try:
            ds = self.dataset(name)
        except TdcError:
            return ()
        return tuple(
            TaskStat(t, classes=ds.split(spec.task(t).test)["label"].to_numpy()) for t in tasks
        )

    def dataset(self, name: str) -> Dataset:
        """The prepared dataset (opened once); DataNotFound if it is not prepared here."""
        from harness.datasets import Dataset

        spec = self.spec(name)
        with self._lock:
            if name not in self._open:
                self._open[name] = Dataset.open(spec, data_root=self.data_root)
            return self._open[name]

    def warm(self) -> None:
        """Open every prepared dataset and build its UID index now, not in the first upload
        (where concurrent uploads would all try to build it)."""
        for name in self.names():
            try:
                self.dataset(name).uid_index()
            except DataNotFound:
                continue

    def pool_size(self, name: str) -> int | None:
        try:
            return self.dataset(name).pool_size
        except DataNotFound:
            return None

    def reveal_overrides(self, name: str) -> dict[str, datetime]:
        """``TDC_REVEAL_AT`` entries of dataset ``name``, by task (they override the spec)."""
        prefix = f"{name}/"
        return {k[len(prefix) :]: v for k, v in self.reveal_at.items() if k.startswith(prefix)}

    def visible(self, name: str, *, organizer: bool, now: datetime) -> tuple[str, ...]:
        """The tasks whose test scores this viewer may see (``leaderboard.phases``' rule)."""
        over = self.reveal_overrides(name)
        return visible_tasks(self.spec(name).tasks, now=now, organizer=organizer,
                             reveal_overrides=over)  # fmt: skip

    def hidden_tasks(self, name: str, *, now: datetime | None = None) -> set[str]:
        """Tasks whose test scores participants may not see yet (hidden, not revealed)."""
        visible = self.visible(name, organizer=False, now=now or utcnow())
        return {t.name for t in self.spec(name).tasks if t.name not in visible}

    def pick_window(self, name: str, *, now: datetime | None = None) -> PickWindow:
        """When final picks on dataset ``name`` may change (``leaderboard.phases``' rule)."""
        over = self.reveal_overrides(name)
        return pick_window(self.spec(name).tasks, now=now or utcnow(), reveal_overrides=over)

    def public(self, name: str, *, now: datetime | None = None) -> DatasetPublic:
        spec, pool = self.spec(name), self.pool_size(name)
        hidden = self.hidden_tasks(name, now=now)
        return DatasetPublic(
            name=spec.name,
            task_type=spec.task_type,
            version=spec.version,
            description=spec.description,
            prepared=pool is not None,
            pool_size=pool,
            tasks=[
                TaskPublic(
                    name=t.name,
                    description=t.description,
                    hidden=t.hidden,
                    revealed=t.name not in hidden,
                )
                for t in spec.tasks
            ],
            fractions=[
                FractionPublic(
                    fraction=f, budget=None if pool is None else spec.budget(f, pool_size=pool)
                )
                for f in spec.fractions
            ],
            default_recipe=spec.default_recipe,
            primary_metric=spec.primary_metric,
            secondary_metric=spec.secondary_metric,
            higher_is_better=spec.higher_is_better,
        )

    def sync(self, db: Session) -> None:
        """Upsert one Dataset row per configured dataset (rows of removed ones stay)."""
        for name in self.names():
            spec = self.spec(name)
            row = db.get(DatasetRow, name) or DatasetRow(
                name=name,
                task_type=spec.task_type,
                version=spec.version,
                default_recipe=spec.default_recipe,
                primary_metric=spec.primary_metric,
            )
            row.task_type, row.version = spec.task_type, spec.version
            row.description = spec.description
            row.tasks = [t.model_dump(mode="json") for t in spec.tasks]
            row.fractions = list(spec.fractions)
            row.default_recipe, row.primary_metric = spec.default_recipe, spec.primary_metric
            row.secondary_metric, row.higher_is_better = (
                spec.secondary_metric,
                spec.higher_is_better,
            )
            row.pool_size, row.synced_at = self.pool_size(name), utcnow()
            row.board_version += 1  # what boards show of the dataset may have changed
            db.add(row)
        db.commit()

    def pool_uids_file(self, name: str, storage: Storage) -> tuple[Path, str]:
        """The pool's UIDs as a ``.npy`` (unicode) file, written once per dataset version."""
        import numpy as np

        ds = self.dataset(name)
        tag = ds.manifest_hash()
        path = storage.cache_dir / f"pool-uids-{name}-{tag}.npy"
        with self._lock:
            if not path.exists():
                tmp = path.with_suffix(f".{os.getpid()}.tmp")
                with tmp.open("wb") as f:
                    np.save(f, np.asarray(ds.uids(ds.spec.pool), dtype=np.str_), allow_pickle=False)
                os.replace(tmp, path)
        return path, f'"{tag}"'
