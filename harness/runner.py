"""The one runner: (dataset, subset rows, recipe, seeds, tasks) -> per-task metrics + manifest.

    result = evaluate_subset(ds=ds, recipe=specs.recipe("linear_probe"),
                             pool_rows=report.pool_rows, subset_sha256=report.sha256,
                             fraction=0.1, task=None)            # every task of the dataset
    job = EvalJob(dataset="demo", fraction=0.1, task=None, recipe=None,
                  subset_path=Path("sub.npy"), data_root=Path("data"), configs_dir=Path("configs"))
    result = run_eval_job(job)      # validates the file first; what submitit jobs run

Per seed the recipe trains once on exactly ``pool_rows`` and the model is scored on the
whole test split of every evaluated task (``test_size`` is the split size: nothing is ever
dropped). Results are per seed plus mean and sample std over seeds. No per-dataset code and
no dispatch on recipe names: the recipe's ``kind`` selects a registered trainer and the
dataset's task type a registered scorer.
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
from harness.metrics import mean_std
from harness.recipes.base import LabelSpace, TrainContext
from harness.recipes.registry import RecipeKind, check_recipe_params, get_kind
from harness.recipes.scoring import get_scorer
from harness.settings import HarnessSettings
from harness.specs import RecipeSpec, TaskSpec
from submissions.errors import ConfigError, ValidationFailed
from submissions.schemas import EvalResult, Problem, SeedResult, TaskResult

if TYPE_CHECKING:
    from harness.datasets import Dataset

log = logging.getLogger(__name__)


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
    weights_dir: Path | None = None  # None: HarnessSettings().weights_dir
    seeds: tuple[int, ...] | None = None  # None: the recipe's seeds
    embeddings: str | None = None  # embedding set; None: the dataset's default set
    submission_id: int | None = None


def run_eval_job(job: EvalJob) -> EvalResult:
    """Load specs, open the dataset, validate the file, evaluate; a TdcError for user errors."""
    from harness.embed.sets import open_dataset
    from harness.specs import load_benchmark
    from harness.validation import load_and_validate

    specs = load_benchmark(job.configs_dir)
    spec = specs.dataset(job.dataset)
    recipe = specs.recipe(job.recipe or spec.default_recipe)
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
        weights_dir=weights_dir or HarnessSettings().weights_dir,
    )
    per_seed = _train_and_score(ctx, kind, tasks, run_seeds)
    manifest = build_manifest(
        ds=ds,
        recipe=recipe,
        subset_sha256=subset_sha256,
        seeds=run_seeds,
        libraries=kind.libraries,
        device=_describe_device(ctx.device),
        wall_time_s=time.perf_counter() - start,
    )
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
    ctx: TrainContext, kind: RecipeKind, tasks: Sequence[TaskSpec], seeds: Sequence[int]
) -> dict[str, list[SeedResult]]:
    scorer = get_scorer(ctx.ds.spec.task_type)
    out: dict[str, list[SeedResult]] = {t.name: [] for t in tasks}
    for seed in seeds:
        t0 = time.perf_counter()
        predictor = kind.train(ctx=ctx, seed=seed)
        log.info("%s seed %d trained in %.2fs", ctx.recipe.name, seed, time.perf_counter() - t0)
        for t in tasks:
            scores = scorer(ctx=ctx, split=t.test, predictor=predictor)
            names = ctx.labels.name if ctx.labels is not None else str
            per_class = {names(c): v for c, v in scores.per_class.items()}
            out[t.name].append(SeedResult(seed=seed, metrics=scores.metrics, per_class=per_class))
    return out


def _task_result(ds: Dataset, t: TaskSpec, seeds: list[SeedResult]) -> TaskResult:
    mean, std = mean_std([s.metrics for s in seeds])
    return TaskResult(task=t.name, test_size=ds.split_size(t.test), seeds=seeds, mean=mean, std=std)


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
