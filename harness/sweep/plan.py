"""From experiments to jobs: selection jobs and training jobs, each with its key and status.

    sweep = plan_sweep(experiments, settings=settings, specs=specs, baselines=baselines)
    sweep.selections["3f..."]            # SelectionJob (picklable: what a submitit job gets)
    sweep.status(training)               # "done" | "failed" | "todo" | "blocked"
    sweep.counts()                       # per experiment: jobs by kind and status

A selection is (dataset, method, parameter set, fraction, task or none, selection seed) on a
given preparation and embedding set; a training is (selection, recipe or named variant,
training seeds). Method scope "all" makes one subset scored on every task, "tasks" one subset
per task. A recipe variant (``lr``, ``batch_size``, ``epochs`` of a sweep) is a RecipeSpec
named ``<recipe>@lr=...``: its own name and config hash, so its scores are never taken for
the official recipe's. A training is done when every (task, seed) score is in the results
store, whoever computed it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from harness.datasets import Dataset, DatasetDir
from harness.recipes.registry import get_kind
from harness.selection import BaselinesConfig
from harness.settings import HarnessSettings
from harness.specs import BenchmarkSpecs, DatasetSpec, RecipeSpec
from harness.store import NO_EMBEDDING, ResultsStore, ScoreKey, ScoreKeys
from harness.sweep.config import Experiment, Only, param_grid
from harness.sweep.records import Records, SelectionRecord, job_key

Status = Literal["done", "failed", "todo", "blocked"]


class Paths(BaseModel):
    """Where a job finds the benchmark (absolute: jobs may start anywhere)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data_root: Path
    configs_dir: Path
    runs_dir: Path
    weights_dir: Path


class SelectionJob(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str
    dataset: str
    method: str
    params: dict[str, Any]
    fraction: float
    task: str | None
    seed: int
    embeddings: str | None
    paths: Paths


class TrainingJob(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str
    selection: str
    dataset: str
    fraction: float
    task: str | None
    recipe: RecipeSpec
    recipe_hash: str
    base_recipe: str
    variant: dict[str, Any]
    embeddings: str | None
    paths: Paths
    wandb_project: str | None = None


UNPREPARED = "unprepared"


@dataclass(frozen=True)
class DatasetContext:
    """What keys of one dataset depend on: its preparation and its embedding set.

    A dataset not prepared here still plans (``--dry-run`` shows its jobs as to do) with
    the placeholder manifest ``unprepared``; running refuses it before anything starts.
    """

    ds: Dataset
    embedding: str

    @property
    def prepared(self) -> bool:
        return self.ds.dir.is_prepared()

    @classmethod
    def of(cls, spec: DatasetSpec, *, data_root: Path, embeddings: str | None) -> DatasetContext:
        ds = Dataset(
            spec=spec, dir=DatasetDir(Path(data_root) / spec.path), embedding_set=embeddings
        )
        if not ds.dir.is_prepared():
            return cls(ds, NO_EMBEDDING)
        fingerprint = None
        if spec.embeddings is not None or embeddings is not None:
            fingerprint = ds.set_fingerprint()
        return cls(ds, fingerprint or NO_EMBEDDING)

    def manifest_hash(self) -> str:
        return self.ds.manifest_hash() if self.prepared else UNPREPARED


def variant_of(recipe: RecipeSpec, values: dict[str, Any]) -> RecipeSpec:
    """The recipe with ``values`` for the params its kind has (others ignored, as the research
    ignores a learning rate for the linear probe); the recipe itself when nothing changes."""
    fields = get_kind(recipe.kind).params.model_fields
    changed = {k: v for k, v in values.items() if k in fields and recipe.params.get(k) != v}
    if not changed:
        return recipe
    label = ",".join(
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(changed.items())
    )
    return recipe.model_copy(
        update={"name": f"{recipe.name}@{label}", "params": {**recipe.params, **changed}}
    )


@dataclass
class SweepPlan:
    """Every job of a set of experiments, deduplicated by key."""

    store: ResultsStore
    records: Records
    selections: dict[str, SelectionJob] = field(default_factory=dict)
    trainings: dict[str, TrainingJob] = field(default_factory=dict)
    experiments: dict[str, list[str]] = field(default_factory=dict)  # name -> training keys
    # Keyed by (dataset, --embeddings choice): two experiments may read different sets.
    contexts: dict[tuple[str, str | None], DatasetContext] = field(default_factory=dict)
    _selected: dict[str, SelectionRecord | None] = field(default_factory=dict, repr=False)

    def forget(self) -> None:
        """Read selection records afresh (jobs finish while a run watches)."""
        self._selected.clear()

    def _record(self, key: str) -> SelectionRecord | None:
        if key not in self._selected:
            self._selected[key] = self.records.selection(key)
        return self._selected[key]

    def selection_status(self, key: str) -> Status:
        record = self._record(key)
        if record is None:
            return "todo"
        return "done" if record.status == "ok" else "failed"

    def sha_of(self, selection: str) -> str | None:
        record = self._record(selection)
        return record.sha256 if record is not None and record.status == "ok" else None

    def unprepared(self) -> list[str]:
        """Datasets of the plan not prepared under the data root."""
        return sorted({name for (name, _), ctx in self.contexts.items() if not ctx.prepared})

    def score_keys(self, job: TrainingJob, sha: str) -> list[ScoreKey]:
        ctx = self.contexts[job.dataset, job.embeddings]
        keys = ScoreKeys.of(
            ctx.ds, job.recipe, sha, fingerprint=ctx.embedding, recipe_hash=job.recipe_hash
        )
        tasks = [job.task] if job.task else ctx.ds.spec.task_names()
        return [keys.key(t, s) for t in tasks for s in job.recipe.seeds]

    def status(self, job: TrainingJob) -> Status:
        sha = self.sha_of(job.selection)
        if sha is None:
            return "blocked"
        if all(self.store.has(k) for k in self.score_keys(job, sha)):
            return "done"
        record = self.records.training(job.key)
        return "failed" if record is not None and record.status == "failed" else "todo"

    def counts(self) -> dict[str, dict[str, int]]:
        """Per experiment: ``selection <status>`` and ``training <status>`` counts."""
        out: dict[str, dict[str, int]] = {}
        for name, keys in self.experiments.items():
            c: dict[str, int] = defaultdict(int)
            for sel in {self.trainings[k].selection for k in keys}:
                c[f"selection {self.selection_status(sel)}"] += 1
            for k in keys:
                c[f"training {self.status(self.trainings[k])}"] += 1
            out[name] = dict(c)
        return out


def plan_sweep(
    experiments: Iterable[Experiment],
    *,
    settings: HarnessSettings,
    specs: BenchmarkSpecs,
    baselines: BaselinesConfig,
    only: Only | None = None,
    embeddings: str | None = None,
    wandb_project: str | None = None,
) -> SweepPlan:
    """Expand experiments into jobs (nothing runs; nothing is read but manifests and records)."""
    paths = Paths(
        data_root=Path(settings.data_root).absolute(),
        configs_dir=Path(settings.configs_dir).absolute(),
        runs_dir=Path(settings.runs_dir).absolute(),
        weights_dir=Path(settings.weights_dir).absolute(),
    )
    sweep = SweepPlan(store=ResultsStore(paths.runs_dir), records=Records(paths.runs_dir))
    for exp in experiments:
        keys: list[str] = []
        variants = _variants(exp, specs, only or Only())
        for dataset in exp.datasets:
            emb = embeddings or exp.embeddings
            if (dataset, emb) not in sweep.contexts:
                sweep.contexts[dataset, emb] = DatasetContext.of(
                    specs.dataset(dataset), data_root=paths.data_root, embeddings=emb
                )
            ctx = sweep.contexts[dataset, emb]
            for sel in _selections(exp, ctx, baselines, paths, emb, only or Only()):
                sweep.selections.setdefault(sel.key, sel)
                for job in _trainings(sel, variants, paths, emb, wandb_project):
                    sweep.trainings.setdefault(job.key, job)
                    keys.append(job.key)
        sweep.experiments[exp.name] = keys
    return sweep


def _selections(
    exp: Experiment,
    ctx: DatasetContext,
    baselines: BaselinesConfig,
    paths: Paths,
    embeddings: str | None,
    only: Only,
) -> Iterable[SelectionJob]:
    spec = ctx.ds.spec
    for method, grid in exp.methods.items():
        bl = baselines.method(method)
        fractions = exp.fractions or bl.fractions or spec.fractions
        tasks = [None] if bl.sweep_scope == "all" else list(exp.tasks or spec.task_names())
        for params in param_grid(grid):
            resolved = bl.resolved_params(params)
            for fraction, task, seed in (
                (f, t, s) for f in fractions for t in tasks for s in exp.seeds
            ):
                if not only.keeps(
                    experiment=exp.name,
                    dataset=spec.name,
                    method=method,
                    fraction=fraction,
                    task=task or "all",
                ):
                    continue
                key = job_key(
                    {
                        "dataset": spec.name,
                        "manifest": ctx.manifest_hash(),
                        "embedding": ctx.embedding,
                        "method": method,
                        "params": resolved,
                        "fraction": fraction,
                        "task": task,
                        "seed": seed,
                    }
                )
                yield SelectionJob(
                    key=key,
                    dataset=spec.name,
                    method=method,
                    params=resolved,
                    fraction=fraction,
                    task=task,
                    seed=seed,
                    embeddings=embeddings,
                    paths=paths,
                )


@dataclass(frozen=True)
class Variant:
    """One recipe of an experiment as it trains: official or a named variant."""

    base: str
    recipe: RecipeSpec
    hash: str
    changed: dict[str, Any]


def _variants(exp: Experiment, specs: BenchmarkSpecs, only: Only) -> list[Variant]:
    out = []
    for name in exp.recipes:
        if not only.keeps(recipe=name):
            continue
        base = specs.recipe(name)
        for values in exp.variants():
            recipe = variant_of(base, values)
            changed = {k: v for k, v in recipe.params.items() if base.params.get(k) != v}
            out.append(Variant(name, recipe, recipe.config_hash(), changed))
    return out


def _trainings(
    sel: SelectionJob,
    variants: list[Variant],
    paths: Paths,
    embeddings: str | None,
    wandb_project: str | None,
) -> Iterable[TrainingJob]:
    for v in variants:
        yield TrainingJob(
            key=job_key({"selection": sel.key, "recipe": v.hash}),
            selection=sel.key,
            dataset=sel.dataset,
            fraction=sel.fraction,
            task=sel.task,
            recipe=v.recipe,
            recipe_hash=v.hash,
            base_recipe=v.base,
            variant=v.changed,
            embeddings=embeddings,
            paths=paths,
            wandb_project=wandb_project,
        )
