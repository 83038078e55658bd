"""``tdc-harness sweep FILE`` and ``tdc-harness sweep status FILE``: research sweeps.

    tdc-harness sweep configs/experiments.yaml --dry-run          # what would run, what is done
    tdc-harness sweep configs/experiments.yaml --executor slurm   # selection + training arrays
    tdc-harness sweep configs/experiments.yaml --only dataset=demo,method=tsds --max-jobs 50
    tdc-harness sweep status configs/experiments.yaml             # counts, and why jobs failed

Thin: load the experiments (every name checked before anything runs), plan
(harness.sweep.plan), run (harness.sweep.run), print tables.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from harness.cli import common
from harness.cli.main import app
from submissions.errors import ConfigError

if TYPE_CHECKING:
    from harness.sweep.plan import SweepPlan


@app.command("sweep")
def sweep_command(
    first: str = typer.Argument(..., metavar="[status] FILE", help="experiments YAML"),
    second: str | None = typer.Argument(None, hidden=True),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the plan; run nothing"),
    filter_only: bool = typer.Option(False, "--filter-only", help="only the selections"),
    train_only: bool = typer.Option(False, "--train-only", help="only trainings of made subsets"),
    max_jobs: int | None = typer.Option(None, "--max-jobs", min=1, help="launch at most N jobs"),
    executor: str = typer.Option("local", "--executor", help="local | slurm | debug (presets)"),
    only: str | None = typer.Option(None, "--only", help="e.g. dataset=demo,method=tsds"),
    embeddings: str | None = typer.Option(None, "--embeddings", help="embedding set"),
    wandb: str | None = typer.Option(None, "--wandb", help="log each training to this project"),
) -> None:
    """Run a sweep of experiments (or `sweep status FILE`): only what is not done yet runs."""
    if first == "status":
        if second is None:
            raise ConfigError("usage: tdc-harness sweep status FILE")
        sweep = _plan(Path(second), only=only, embeddings=embeddings)
        print_status(sweep, failures=True)
        return
    if second is not None:
        raise ConfigError(f"unexpected argument {second!r} (usage: tdc-harness sweep FILE)")
    if filter_only and train_only:
        raise ConfigError("--filter-only and --train-only exclude each other")
    if wandb:
        from harness.tracking import require_wandb

        require_wandb()
    sweep = _plan(Path(first), only=only, embeddings=embeddings, wandb=wandb)
    print_status(sweep, failures=False)
    if sweep.unprepared():
        typer.echo(f"not prepared here (every job to do): {', '.join(sweep.unprepared())}")
    if dry_run:
        return
    _run(sweep, executor, filter_only=filter_only, train_only=train_only, max_jobs=max_jobs)


def _plan(
    path: Path, *, only: str | None, embeddings: str | None, wandb: str | None = None
) -> SweepPlan:
    from harness.selection import load_baselines
    from harness.sweep import load_experiments, plan_sweep
    from harness.sweep.config import Only

    settings = common.settings()
    specs = common.specs(settings)
    baselines = load_baselines(settings.configs_dir)
    experiments = load_experiments(path, specs=specs, baselines=baselines)
    sweep = plan_sweep(
        experiments,
        settings=settings,
        specs=specs,
        baselines=baselines,
        only=Only.parse(only),
        embeddings=embeddings,
        wandb_project=wandb,
    )
    for name, keys in sweep.experiments.items():
        sweep.records.save_experiment(name, keys)
    return sweep


def _run(
    sweep: SweepPlan, executor: str, *, filter_only: bool, train_only: bool, max_jobs: int | None
) -> None:
    from harness.dispatch.executors import executor_spec
    from harness.sweep.run import run_sweep

    settings = common.settings()
    spec = executor_spec(executor, configs_dir=settings.configs_dir)
    spec = spec.resolve_log_dir(Path(settings.runs_dir).absolute() / "sweep")
    summary = run_sweep(
        sweep, executor=spec, filter_only=filter_only, train_only=train_only, max_jobs=max_jobs
    )
    typer.echo(
        f"launched {summary.selections} selection(s) and {summary.trainings} "
        f"training(s) on {spec.cluster} in {summary.seconds:.1f} s"
        + (f" (arrays {', '.join(summary.array_jobs)})" if summary.array_jobs else "")
    )
    print_status(sweep, failures=True)
    if summary.failed:
        raise typer.Exit(1)


def print_status(sweep: SweepPlan, *, failures: bool) -> None:
    """One row per (experiment, dataset, method, recipe): selections and trainings by state."""
    from rich.console import Console
    from rich.table import Table

    rows: Counter[tuple[str, ...]] = Counter()
    for name, keys in sweep.experiments.items():
        seen_sel: set[str] = set()
        for k in keys:
            t = sweep.trainings[k]
            sel = sweep.selections[t.selection]
            group = (name, t.dataset, sel.method, t.recipe.name)
            if t.selection not in seen_sel:
                seen_sel.add(t.selection)
                rows[(*group, "sel", sweep.selection_status(t.selection))] += 1
            rows[(*group, "train", sweep.status(t))] += 1
    table = Table(
        "experiment",
        "dataset",
        "method",
        "recipe",
        "subsets done/todo/failed",
        "trainings done/todo/failed/blocked",
        title="Sweep",
    )
    groups = sorted({key[:4] for key in rows})
    for g in groups:
        made = "/".join(str(rows[(*g, "sel", s)]) for s in ("done", "todo", "failed"))
        tr = "/".join(str(rows[(*g, "train", s)]) for s in ("done", "todo", "failed", "blocked"))
        table.add_row(*g, made, tr)
    Console(width=160).print(table)
    totals: Counter[tuple[str, str]] = Counter()
    for key, v in rows.items():
        totals[(key[4], key[5])] += v
    typer.echo(
        f"{len(sweep.selections)} subsets ({totals[('sel', 'done')]} done), "
        f"{len(sweep.trainings)} trainings ({totals[('train', 'done')]} done, "
        f"{totals[('train', 'failed')]} failed)"
    )
    if failures:
        _print_failures(sweep)


def _print_failures(sweep: SweepPlan, limit: int = 10) -> None:
    shown = 0
    for key in sweep.selections:
        record = sweep.records.selection(key)
        if record is not None and record.status == "failed" and shown < limit:
            typer.echo(
                f"  selection {record.method} {record.dataset} {record.fraction:g} "
                f"{record.task or 'all'}: {record.message} (log {record.log})"
            )
            shown += 1
    for job in sweep.trainings.values():
        trained = sweep.records.training(job.key)
        if trained is not None and trained.status == "failed" and shown < limit:
            typer.echo(
                f"  training {job.recipe.name} of {job.selection}: {trained.message} "
                f"(log {trained.log})"
            )
            shown += 1
