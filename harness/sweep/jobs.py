"""What a sweep's array tasks run: selections, then trainings, each leaving one record.

    run_selections([selection_job, ...])   # subset into the store, a SelectionRecord each
    run_trainings([training_job, ...])     # scores into the store, a TrainingRecord each

Functions of picklable jobs (harness.sweep.plan), so submitit ships them to SLURM, a local
process or runs them in-process. A job's failure is recorded (message, traceback, log path)
and does not stop the other jobs of its array task; a job already done is skipped.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from harness.store import ResultsStore
from harness.sweep.plan import SelectionJob, TrainingJob
from harness.sweep.records import Records, SelectionRecord, TrainingRecord

log = logging.getLogger(__name__)


def _log_path() -> str | None:
    """The submitit log of the running job (stderr), if in one that has a log folder."""
    try:
        import submitit

        return str(submitit.JobEnvironment().paths.stderr)
    except (RuntimeError, KeyError):  # not in a job, or the in-process debug executor
        return None


def run_selections(jobs: list[SelectionJob]) -> list[str]:
    """Select and store every job's subset; returns the statuses."""
    statuses: list[str] = []
    for job in jobs:
        records = Records(job.paths.runs_dir)
        done = records.selection(job.key)
        if done is not None and done.status == "ok":
            statuses.append("ok")
            continue
        record = _select(job)
        records.put(record)
        statuses.append(record.status)
    return statuses


def _select(job: SelectionJob) -> SelectionRecord:
    from harness.embed.sets import open_dataset
    from harness.selection import select
    from harness.selection.config import load_baselines
    from harness.specs import load_benchmark
    from harness.validation import subset_sha256

    base = {
        "key": job.key,
        "dataset": job.dataset,
        "method": job.method,
        "params": job.params,
        "fraction": job.fraction,
        "task": job.task,
        "seed": job.seed,
    }
    try:
        specs = load_benchmark(job.paths.configs_dir)
        ds = open_dataset(
            specs.dataset(job.dataset), data_root=job.paths.data_root, embeddings=job.embeddings
        )
        out = select(
            ds=ds,
            method=job.method,
            fraction=job.fraction,
            task=job.task,
            seed=job.seed,
            params=job.params,
            baselines=load_baselines(job.paths.configs_dir),
            weights_dir=job.paths.weights_dir,
        )
        sha = subset_sha256(out.rows)
        ResultsStore(job.paths.runs_dir).save_subset(sha, ds.uids(ds.spec.pool)[out.rows])
    except Exception as err:
        log.exception("selection %s failed", job.key)
        return SelectionRecord(
            **base,
            status="failed",
            message=f"{type(err).__name__}: {err}",
            traceback=traceback.format_exc()[-20_000:],
            log=_log_path(),
        )
    meta = {k: v for k, v in out.metadata.items() if k not in base and _plain(v)}
    return SelectionRecord(
        **base,
        status="ok",
        sha256=sha,
        size=out.size,
        budget=out.metadata.get("budget"),
        metadata=meta,
        log=_log_path(),
    )


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool | dict | list)


def run_trainings(jobs: list[TrainingJob]) -> list[str]:
    """Evaluate every job's subset with its recipe (scores into the store); the statuses."""
    statuses: list[str] = []
    for job in jobs:
        record = _train(job)
        Records(job.paths.runs_dir).put(record)
        statuses.append(record.status)
    return statuses


def _train(job: TrainingJob) -> TrainingRecord:
    from harness.runner import EvalJob, run_eval_job

    base = {
        "key": job.key,
        "selection": job.selection,
        "recipe": job.recipe.name,
        "base_recipe": job.base_recipe,
        "recipe_hash": job.recipe.config_hash(),
        "variant": job.variant,
    }
    records, store = Records(job.paths.runs_dir), ResultsStore(job.paths.runs_dir)
    selection = records.selection(job.selection)
    try:
        if selection is None or selection.status != "ok" or selection.sha256 is None:
            raise RuntimeError(f"selection {job.selection} has no subset (run it first)")
        result = run_eval_job(
            EvalJob(
                dataset=job.dataset,
                fraction=job.fraction,
                task=job.task,
                recipe=job.recipe.name,
                recipe_spec=job.recipe,
                subset_path=store.subset_path(selection.sha256),
                data_root=job.paths.data_root,
                configs_dir=job.paths.configs_dir,
                weights_dir=job.paths.weights_dir,
                embeddings=job.embeddings,
                store_dir=job.paths.runs_dir,
            )
        )
    except Exception as err:
        log.exception("training %s failed", job.key)
        return TrainingRecord(
            **base,
            status="failed",
            message=f"{type(err).__name__}: {err}",
            traceback=traceback.format_exc()[-20_000:],
            log=_log_path(),
        )
    if job.wandb_project:
        log_to_wandb(job, selection, result)
    return TrainingRecord(
        **base,
        status="ok",
        scores=score_digests(job, result),
        reused_seeds=result.manifest.reused_seeds,
        log=_log_path(),
    )


def score_digests(job: TrainingJob, result: Any) -> dict[str, dict[str, str]]:
    """task -> seed -> the store digest of that score (what the report joins on)."""
    from harness.embed.sets import open_dataset
    from harness.specs import load_benchmark
    from harness.store import ScoreKeys

    spec = load_benchmark(job.paths.configs_dir).dataset(job.dataset)
    ds = open_dataset(spec, data_root=job.paths.data_root, embeddings=job.embeddings)
    keys = ScoreKeys.of(ds, job.recipe, result.manifest.subset_sha256)
    return {
        t.task: {str(s.seed): keys.key(t.task, s.seed).digest for s in t.seeds}
        for t in result.tasks
    }


def log_to_wandb(job: TrainingJob, selection: Any, result: Any) -> None:
    """One wandb run per training: the job's configuration and its scores."""
    from harness.tracking import track_result

    config = {
        "dataset": job.dataset,
        "method": selection.method,
        "params": selection.params,
        "fraction": job.fraction,
        "task": job.task,
        "selection_seed": selection.seed,
        "recipe": job.recipe.name,
        "variant": job.variant,
    }
    name = f"{selection.method}/{job.recipe.name}/{job.fraction:g}/{job.task or 'all'}"
    assert job.wandb_project is not None
    track_result(
        project=job.wandb_project,
        name=name,
        config=config,
        result=result,
        run_dir=job.paths.runs_dir / "wandb",
    )
