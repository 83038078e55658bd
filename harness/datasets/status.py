"""What is prepared on this machine: a dataset's status and summary, from manifests only.

    status = dataset_status(spec=specs.dataset("demo"), settings=settings)
    status.prepared, status.pool_size, status.embedded      # embedded: the default set is usable
    [(s.name, s.fingerprint, s.state) for s in status.embedding_sets]
    [(f.fraction, f.budget) for f in status.fractions]      # budgets in samples
    status.model_dump_json()                                 # `tdc-harness datasets show --json`

Reads ``manifest.json`` and each set's ``embeddings/<set>/manifest.json`` only (no split
tables, no arrays), so listing every dataset stays instant however large they are.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from harness.datasets.dataset import Dataset
from harness.datasets.preparers import dataset_dir
from harness.settings import HarnessSettings
from harness.specs import DatasetSpec


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TaskStatus(_Model):
    name: str
    description: str
    query: str
    test: str
    hidden: bool
    query_size: int | None
    test_size: int | None


class SetStatus(_Model):
    """One embedding set on disk (harness.embed.sets)."""

    name: str
    embedder: str
    fingerprint: str
    kinds: tuple[str, ...]
    state: str  # ok | stale | differs from spec | incomplete | superseded
    default: bool
    declared: bool


class FractionBudget(_Model):
    fraction: float
    budget: int | None  # None while the pool size is unknown (not prepared)


class DatasetStatus(_Model):
    name: str
    task_type: str
    description: str
    path: str
    prepared: bool
    pool: str
    pool_size: int | None
    embedded: bool
    embedder: str | None
    default_set: str | None
    embedding_sets: tuple[SetStatus, ...]
    image_root: str | None
    default_recipe: str
    primary_metric: str
    tasks: tuple[TaskStatus, ...]
    fractions: tuple[FractionBudget, ...]


def dataset_status(*, spec: DatasetSpec, settings: HarnessSettings) -> DatasetStatus:
    """The spec plus what is on disk under the data root."""
    ddir = dataset_dir(spec, settings)
    ds = Dataset(spec=spec, dir=ddir) if ddir.is_prepared() else None
    manifest = ds.manifest if ds else {}
    rows = {k: int(v["rows"]) for k, v in manifest.get("splits", {}).items()}
    sets = _sets(ds) if ds else ()
    default = next((s for s in sets if s.default and s.state == "ok"), None)
    pool_size = rows.get(spec.pool)
    return DatasetStatus(
        name=spec.name,
        task_type=spec.task_type,
        description=spec.description,
        path=spec.path,
        prepared=ds is not None,
        pool=spec.pool,
        pool_size=pool_size,
        embedded=default is not None,
        embedder=default.embedder if default else None,
        default_set=spec.embeddings.default if spec.embeddings else None,
        embedding_sets=sets,
        image_root=manifest.get("image_root"),
        default_recipe=spec.default_recipe,
        primary_metric=spec.primary_metric,
        tasks=tuple(
            TaskStatus(
                name=t.name,
                description=t.description,
                query=t.query,
                test=t.test,
                hidden=t.hidden,
                query_size=rows.get(t.query),
                test_size=rows.get(t.test),
            )
            for t in spec.tasks
        ),
        fractions=tuple(
            FractionBudget(
                fraction=f,
                budget=None if pool_size is None else spec.budget(f, pool_size=pool_size),
            )
            for f in spec.fractions
        ),
    )


def _sets(ds: Dataset) -> tuple[SetStatus, ...]:
    from harness.embed.sets import list_sets

    default = ds.spec.embeddings.default if ds.spec.embeddings else None
    return tuple(
        SetStatus(
            name=s.name,
            embedder=str(s.manifest.get("embedder", "?")),
            fingerprint=s.fingerprint,
            kinds=tuple(s.kinds),
            state=s.state,
            default=s.name == default,
            declared=s.declared,
        )
        for s in list_sets(ds)
    )
