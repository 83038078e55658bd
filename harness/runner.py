"""The one runner: (dataset, subset rows, recipe, seeds, tasks) -> per-task metrics + manifest.

    result = evaluate_subset(ds=ds, recipe=specs.recipe("linear_probe"),
                             pool_rows=report.pool_rows, subset_sha256=report.sha256,
                             fraction=0.1, task=None)            # every task of the dataset
    job = EvalJob(dataset="demo", fraction=0.1, task=None, recipe=None,
                  subset_path=Path("sub.npy"), data_root=Path("data"), configs_dir=Path("configs"))
    result = run_eval_job(job)      # validates the file first; what submitit jobs run

Per seed the recipe trains once on exactly ``pool_rows`` and the model is scored on the
whole test split of every evaluated task (``test_size`` is the split size: nothing is ever
dropped), and on the task's query split (public: what variants are chosen by, never the
test). Results are per seed plus mean and sample std over seeds; each seed's result carries
every test example's outcome (``ExampleOutcomes``, in the test split's UID order). With a
results store (``store=``, harness.store), a seed whose scores are all stored is read, not
retrained, and new scores are stored. No per-dataset code and no dispatch on recipe names:
the recipe's ``kind`` selects a registered trainer and the dataset's task type a registered
scorer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict

from harness.manifest import build_manifest
from harness.metrics import Scores, seed_summary
from harness.recipes.base import LabelSpace, TrainContext
from harness.recipes.registry import RecipeKind, check_recipe_params, get_kind
from harness.recipes.scoring import get_scorer
from harness.settings import DEFAULT_WEIGHTS_DIR
from harness.specs import RecipeSpec, TaskSpec
from harness.store import NO_EMBEDDING, ResultsStore, ScoreKeys, StoredScore
from submissions.errors import ConfigError, ValidationFailed
from submissions.schemas import (
    EvalIdentity,
    EvalResult,
    ExampleOutcomes,
    Problem,
    SeedResult,
    TaskResult,
)

if TYPE_CHECKING:
    from harness.datasets import Dataset

log = logging.getLogger(__name__)

# Task types whose query splits are scored like their test splits (a reid query split has
# no query/gallery roles).
QUERY_SCORED = ("classification", "regression", "detection")


class EvalJob(BaseModel):
    """One evaluation as plain, picklable data (what a submitit job receives)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str
    fraction: float
    task: str | None = None
    recipe: str | None = None  # None: the dataset's default recipe
    subset_path: Path
    data_root: Path
    configs_dir: Path
    weights_dir: Path | None = None  # None: DEFAULT_WEIGHTS_DIR (./weights)
    seeds: tuple[int, ...] | None = None  # None: the recipe's seeds
    embeddings: str | None = None  # embedding set; None: the dataset's default set
    recipe_spec: RecipeSpec | None = None  # a named variant not in recipes.yaml (sweeps)
    store_dir: Path | None = None  # the results store (harness.store); None: no store
    submission_id: int | None = None

    @classmethod
    def of(
        cls,
        identity: EvalIdentity,
        *,
        subset_path: Path,
        data_root: Path,
        configs_dir: Path,
        weights_dir: Path | None = None,
        store_dir: Path | None = None,
    ) -> EvalJob:
        """The job evaluating ``identity``, its subset read from ``subset_path``."""
        i = identity
        return cls(dataset=i.dataset, fraction=i.fraction, task=i.task, recipe=i.recipe,
                   subset_path=subset_path, data_root=data_root, configs_dir=configs_dir,
                   weights_dir=weights_dir, store_dir=store_dir)  # fmt: skip


def run_eval_job(job: EvalJob) -> EvalResult:
    """Load specs, open the dataset, validate the file, evaluate; a TdcError for user errors."""
    from harness.embed.sets import open_dataset
    from harness.specs import load_benchmark
    from harness.validation import load_and_validate

    specs = load_benchmark(job.configs_dir)
    spec = specs.dataset(job.dataset)
    recipe = job.recipe_spec or specs.recipe(job.recipe or spec.default_recipe)
    check_recipe_params(recipe)  # a bad recipe fails before any data is read
    # The embedding set is checked when a recipe first reads it (finetunes never do).
    ds = open_dataset(spec, data_root=job.data_root, embeddings=job.embeddings)
    report = load_and_validate(job.subset_path, ds=ds, fraction=job.fraction, task=job.task)
    result = evaluate_subset(
        ds=ds,
        recipe=recipe,
        pool_rows=report.pool_rows,
        subset_sha256=str(report.sha256),
        fraction=job.fraction,
        task=job.task,
        seeds=job.seeds,
        weights_dir=job.weights_dir,
        store=ResultsStore(job.store_dir) if job.store_dir else None,
    )
    executor, job_id = _job_identity()
    manifest = result.manifest.model_copy(update={"executor": executor, "job_id": job_id})
    return result.model_copy(update={"manifest": manifest})


def evaluate_subset(
    *,
    ds: Dataset,
    recipe: RecipeSpec,
    pool_rows: npt.NDArray[np.int64],
    subset_sha256: str,
    fraction: float,
    task: str | None,
    seeds: Sequence[int] | None = None,
    weights_dir: Path | None = None,
    store: ResultsStore | None = None,
) -> EvalResult:
    """Train ``recipe`` per seed on exactly ``pool_rows`` and score every task (or ``task``)."""
    start = time.perf_counter()
    kind = get_kind(recipe.kind)
    params = check_recipe_params(recipe)
    _check_task_type(ds, recipe, kind)
    rows = canonical_rows(pool_rows, pool_size=ds.pool_size)
    _check_sha(rows, subset_sha256)
    tasks = (ds.spec.task(task),) if task is not None else ds.spec.tasks
    run_seeds = tuple(seeds) if seeds else recipe.seeds
    if not run_seeds:
        raise ConfigError(f"recipe {recipe.name!r} has no seeds")
    ctx = TrainContext(
        ds=ds,
        recipe=recipe,
        params=params,
        rows=rows,
        labels=LabelSpace.of(ds) if ds.spec.task_type == "classification" else None,
        tasks=tasks,
        device=_select_device(),
        weights_dir=weights_dir or DEFAULT_WEIGHTS_DIR,
    )
    keys = ScoreKeys.of(ds, recipe, subset_sha256)
    use_store = store is not None and kind.name != "oracle"  # an oracle ignores the subset
    per_seed, reused = _train_and_score(
        ctx, kind, tasks, run_seeds, store=store if use_store else None, keys=keys
    )
    manifest = build_manifest(
        ds=ds,
        recipe=recipe,
        subset_sha256=subset_sha256,
        seeds=run_seeds,
        libraries=kind.libraries,
        device=_describe_device(ctx.device),
        wall_time_s=time.perf_counter() - start,
        embedding=_embedding(ds, keys),
    ).model_copy(update={"reused_seeds": reused})
    return EvalResult(
        dataset=ds.spec.name,
        fraction=fraction,
        task=task,
        recipe=recipe.name,
        subset_size=len(rows),
        classes_seen=_classes_seen(ctx),
        tasks=[_task_result(ds, t, per_seed[t.name]) for t in tasks],
        manifest=manifest,
    )


def canonical_rows(pool_rows: npt.NDArray[np.integer], *, pool_size: int) -> npt.NDArray[np.int64]:
    """Sorted int64 rows; order never matters. Empty, repeated or out-of-range rows fail."""
    rows = np.sort(np.asarray(pool_rows).astype(np.int64, copy=False).reshape(-1))
    problems = []
    if len(rows) == 0:
        problems.append(Problem(code="empty", message="the subset is empty: nothing to train on"))
    elif rows[0] < 0 or rows[-1] >= pool_size:
        problems.append(Problem(code="row_range", message=f"pool rows outside [0, {pool_size})"))
    elif bool(np.any(rows[1:] == rows[:-1])):
        problems.append(Problem(code="duplicate", message="a pool row appears twice"))
    if problems:
        raise ValidationFailed(problems)
    return rows


def _check_sha(rows: npt.NDArray[np.int64], subset_sha256: str) -> None:
    from harness.validation import subset_sha256 as sha_of

    if sha_of(rows) != subset_sha256:
        raise ValueError("subset_sha256 does not describe pool_rows; refusing to mislabel a score")


def _check_task_type(ds: Dataset, recipe: RecipeSpec, kind: RecipeKind) -> None:
    task_type = ds.spec.task_type
    if task_type not in recipe.task_types or task_type not in kind.task_types:
        raise ConfigError(
            f"recipe {recipe.name!r} trains {list(recipe.task_types)}; dataset "
            f"{ds.spec.name!r} is {task_type!r}"
        )


def _train_and_score(
    ctx: TrainContext,
    kind: RecipeKind,
    tasks: Sequence[TaskSpec],
    seeds: Sequence[int],
    *,
    store: ResultsStore | None,
    keys: ScoreKeys | None,
) -> tuple[dict[str, list[SeedResult]], list[int]]:
    """Per task, one SeedResult per seed; and the seeds read from the store."""
    out: dict[str, list[SeedResult]] = {t.name: [] for t in tasks}
    reused = []
    for seed in seeds:
        stored = _stored(store, keys, tasks, seed)
        if stored is None:
            stored = _train_seed(ctx, kind, tasks, seed)
            if store is not None and keys is not None:
                _store(store, keys, ctx, tasks, seed, stored)
        else:
            reused.append(seed)
        for t in tasks:
            out[t.name].append(stored[t.name])
    return out, reused


def _train_seed(
    ctx: TrainContext, kind: RecipeKind, tasks: Sequence[TaskSpec], seed: int
) -> dict[str, SeedResult]:
    scorer = get_scorer(ctx.ds.spec.task_type)
    t0 = time.perf_counter()
    predictor = kind.train(ctx=ctx, seed=seed)
    log.info("%s seed %d trained in %.2fs", ctx.recipe.name, seed, time.perf_counter() - t0)
    names = ctx.labels.name if ctx.labels is not None else str
    out = {}
    for t in tasks:
        scores = scorer(ctx=ctx, split=t.test, predictor=predictor)
        query = None
        if ctx.ds.spec.task_type in QUERY_SCORED:
            query = scorer(ctx=ctx, split=t.query, predictor=predictor).metrics
        per_class = {names(c): v for c, v in scores.per_class.items()}
        out[t.name] = SeedResult(
            seed=seed,
            metrics=scores.metrics,
            per_class=per_class,
            query_metrics=query,
            outcomes=_outcomes(ctx.ds, t.test, scores),
        )
    return out


def _outcomes(ds: Dataset, split: str, scores: Scores) -> ExampleOutcomes | None:
    """The scorer's per-example outcomes, in the split's UID order, ready to post."""
    if scores.outcome_kind is None:
        return None
    return ExampleOutcomes.of(scores.outcome_kind, scores.outcomes, uids=ds.uids(split))


def _stored(
    store: ResultsStore | None, keys: ScoreKeys | None, tasks: Sequence[TaskSpec], seed: int
) -> dict[str, SeedResult] | None:
    """Every task's stored result of ``seed``, or None when any is missing."""
    if store is None or keys is None:
        return None
    found = {t.name: store.get(keys.key(t.name, seed)) for t in tasks}
    if any(s is None for s in found.values()):
        return None
    return {
        name: SeedResult(
            seed=seed,
            metrics=s.metrics,
            per_class=s.per_class,
            query_metrics=s.query_metrics,
            outcomes=s.outcomes,
        )
        for name, s in found.items()
        if s is not None
    }


def _store(
    store: ResultsStore,
    keys: ScoreKeys,
    ctx: TrainContext,
    tasks: Sequence[TaskSpec],
    seed: int,
    results: dict[str, SeedResult],
) -> None:
    manifest = build_manifest(
        ds=ctx.ds,
        recipe=ctx.recipe,
        subset_sha256=keys.subset,
        seeds=[seed],
        libraries=get_kind(ctx.recipe.kind).libraries,
        device=_describe_device(ctx.device),
        wall_time_s=0.0,
        embedding=_embedding(ctx.ds, keys),
    )
    for t in tasks:
        r = results[t.name]
        score = StoredScore(
            key=keys.key(t.name, seed),
            dataset=ctx.ds.spec.name,
            recipe=ctx.recipe.name,
            test_size=ctx.ds.split_size(t.test),
            metrics=r.metrics,
            per_class=r.per_class,
            query_size=ctx.ds.split_size(t.query) if r.query_metrics else None,
            query_metrics=r.query_metrics,
            outcomes=r.outcomes,
            manifest=manifest,
        )
        store.put(score)


def _embedding(ds: Dataset, keys: ScoreKeys) -> tuple[str, str] | None:
    """The set a score depends on, also when every seed was read from the store."""
    return (ds.set_name, keys.embedding) if keys.embedding != NO_EMBEDDING else None


def _task_result(ds: Dataset, t: TaskSpec, seeds: list[SeedResult]) -> TaskResult:
    mean, std, query_mean = seed_summary(seeds)
    return TaskResult(
        task=t.name,
        test_size=ds.split_size(t.test),
        seeds=seeds,
        mean=mean,
        std=std,
        query_size=ds.split_size(t.query) if query_mean else None,
        query_mean=query_mean,
    )


def _classes_seen(ctx: TrainContext) -> int | None:
    if ctx.labels is None:
        return None
    return len(np.unique(ctx.targets(ctx.pool, ctx.rows)))


def _select_device() -> str:
    from harness.recipes.torch_env import select_device

    return select_device()


def _describe_device(device: str) -> str:
    from harness.recipes.torch_env import device_description

    return device_description(device)


def _job_identity() -> tuple[str, str | None]:
    """(executor, job id) of the running submitit job; ("inline", None) outside one."""
    try:
        import submitit

        env = submitit.JobEnvironment()
    except RuntimeError:
        return "inline", None
    return env.cluster, str(env.job_id)
