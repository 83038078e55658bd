"""Running a sweep: the selection array, then the training array, with a live progress table.

    summary = run_sweep(sweep, executor=spec, max_jobs=None)     # blocks until both finish
    summary.launched, summary.failed

Only jobs that are not done run (failed ones are retried). Local and debug executors run the
selection array to the end, then launch the trainings whose subsets exist. On SLURM both
arrays are submitted at once: the training array waits for the selection array
(``--dependency=afterok:<array>``; SLURM cancels it if a selection fails, and the next run
retries what is left). Progress (done / running / failed, ETA) is read from the job records,
so it shows the same whoever launched the jobs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.dispatch.executors import ExecutorSpec, launch
from harness.sweep.jobs import run_selections, run_trainings
from harness.sweep.plan import SweepPlan, TrainingJob
from submissions.errors import DataNotFound

log = logging.getLogger(__name__)


@dataclass
class SweepSummary:
    selections: int = 0
    trainings: int = 0
    array_jobs: list[str] = field(default_factory=list)
    failed: int = 0
    seconds: float = 0.0

    @property
    def launched(self) -> int:
        return self.selections + self.trainings


def todo_selections(sweep: SweepPlan, trainings: Sequence[TrainingJob]) -> list[str]:
    """Selections some pending training needs that are not done (failed ones retried)."""
    need = {t.selection for t in trainings}
    return sorted(k for k in need if sweep.selection_status(k) != "done")


def run_sweep(
    sweep: SweepPlan,
    *,
    executor: ExecutorSpec,
    filter_only: bool = False,
    train_only: bool = False,
    max_jobs: int | None = None,
    poll_s: float = 1.0,
    progress: bool = True,
) -> SweepSummary:
    """Launch what is not done and wait for it; returns what was launched and what failed."""
    if sweep.unprepared():
        names = ", ".join(sweep.unprepared())
        raise DataNotFound(
            f"not prepared under the data root: {names}; run `tdc-harness "
            "prepare NAME` first (--dry-run shows the plan without them)"
        )
    start = time.perf_counter()
    summary = SweepSummary()
    pending = [t for t in sweep.trainings.values() if sweep.status(t) in ("todo", "failed")]
    blocked = [t for t in sweep.trainings.values() if sweep.status(t) == "blocked"]
    sel_keys = [] if train_only else todo_selections(sweep, [*pending, *blocked])
    sel_keys = sel_keys[:max_jobs] if max_jobs is not None else sel_keys
    budget = None if max_jobs is None else max_jobs - len(sel_keys)
    jobs = _launch_selections(sweep, sel_keys, executor, summary)
    if filter_only:
        _wait(sweep, jobs, sel_keys, [], poll_s, progress)
    elif executor.cluster == "slurm":
        trainings = _cap([*pending, *blocked] if jobs else pending, budget)
        dependency = _array_id(jobs)
        jobs += _launch_trainings(trainings, executor, summary, dependency)
        _wait(sweep, jobs, sel_keys, trainings, poll_s, progress)
    else:
        _wait(sweep, jobs, sel_keys, [], poll_s, progress)
        ready = [t for t in [*pending, *blocked] if sweep.status(t) in ("todo", "failed")]
        trainings = _cap(ready, budget)
        jobs = _launch_trainings(trainings, executor, summary, None)
        _wait(sweep, jobs, [], trainings, poll_s, progress)
    summary.failed = _count_failed(sweep)
    summary.seconds = time.perf_counter() - start
    return summary


def _cap(items: list[TrainingJob], budget: int | None) -> list[TrainingJob]:
    return items if budget is None else items[: max(0, budget)]


def _launch_selections(
    sweep: SweepPlan, keys: list[str], spec: ExecutorSpec, summary: SweepSummary
) -> list[Any]:
    items = [sweep.selections[k] for k in keys]
    chunks = [[items[i] for i in c] for c in spec.chunks(len(items))]
    jobs = launch(chunks, spec, fn=run_selections, name="tdc-select") if chunks else []
    summary.selections = len(items)
    summary.array_jobs += sorted({str(j.job_id).split("_")[0] for j in jobs})
    return jobs


def _launch_trainings(
    items: list[TrainingJob], spec: ExecutorSpec, summary: SweepSummary, after: str | None
) -> list[Any]:
    if after is not None:  # SLURM: start only when the whole selection array succeeded
        extra = {
            **spec.extra_sbatch,
            "dependency": f"afterok:{after}",
            "kill-on-invalid-dep": "yes",
        }
        spec = spec.model_copy(update={"extra_sbatch": extra})
    chunks = [[items[i] for i in c] for c in spec.chunks(len(items))]
    jobs = launch(chunks, spec, fn=run_trainings, name="tdc-train") if chunks else []
    summary.trainings = len(items)
    summary.array_jobs += sorted({str(j.job_id).split("_")[0] for j in jobs})
    return jobs


def _array_id(jobs: list[Any]) -> str | None:
    ids = {str(j.job_id).split("_")[0] for j in jobs}
    return next(iter(ids)) if len(ids) == 1 else (":".join(sorted(ids)) or None)


def _count_failed(sweep: SweepPlan) -> int:
    sel = sum(1 for k in sweep.selections if sweep.selection_status(k) == "failed")
    return sel + sum(1 for t in sweep.trainings.values() if sweep.status(t) == "failed")


def _wait(
    sweep: SweepPlan,
    jobs: list[Any],
    selections: list[str],
    trainings: list[TrainingJob],
    poll_s: float,
    show: bool,
) -> None:
    """Until every submitted array task has ended, with a rich table of the job records."""
    if not jobs:
        return
    from rich.console import Console
    from rich.live import Live

    started = time.monotonic()

    def table() -> Any:
        running = sum(not j.done() for j in jobs)
        return _table(sweep, selections, trainings, started, running)

    console = Console(stderr=True, quiet=not show)
    with Live(table(), refresh_per_second=2, console=console) as live:
        while not all(j.done() for j in jobs):
            time.sleep(poll_s)
            live.update(table())
        live.update(table())
    for job in jobs:
        if job.state in ("FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL"):
            log.warning("array task %s ended %s: %s", job.job_id, job.state, job.paths.stderr)


def _table(
    sweep: SweepPlan,
    selections: list[str],
    trainings: list[TrainingJob],
    started: float,
    running: int,
) -> Any:
    from rich.table import Table

    sweep.forget()  # selections finish while we watch
    elapsed = time.monotonic() - started
    table = Table(
        "jobs", "total", "done", "failed", "waiting", "elapsed", "ETA",
        caption=f"{running} array task(s) queued or running",
    )  # fmt: skip
    rows = [
        ("selections", [sweep.selection_status(k) for k in selections]),
        ("trainings", [sweep.status(t) for t in trainings]),
    ]
    for name, states in rows:
        if not states:
            continue
        done, failed = states.count("done"), states.count("failed")
        waiting = len(states) - done - failed
        eta = f"{elapsed / done * waiting:.0f} s" if done and waiting else "-"
        table.add_row(
            name, str(len(states)), str(done), str(failed), str(waiting), f"{elapsed:.0f} s", eta
        )
    return table
