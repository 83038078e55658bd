"""``tdc-harness evaluate-pending``: evaluate queued submissions on SLURM, locally or in-process.

    export TDC_ORGANIZER_TOKEN=...            # an organizer-scope token of the server
    tdc-harness evaluate-pending --server https://tdc.example.org --executor slurm
    tdc-harness evaluate-pending --executor local --watch          # a long-running worker
    tdc-harness evaluate-pending --dry-run                         # what would run, no claims
    tdc-harness evaluate-pending --executor slurm --partition gpu --timeout-min 240

``--executor`` names a preset of configs/executors.yaml (default: ``slurm`` where ``sbatch``
is on PATH, else ``local``); the options after it override the preset. Without ``--watch``
the command returns once the queue is drained and its jobs are done (cron-friendly); with it,
it keeps polling until interrupted (the first Ctrl-C finishes the jobs in flight).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import signal
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any

import typer

from harness.cli.main import app

if TYPE_CHECKING:
    from harness.dispatch.client import Client
    from harness.dispatch.executors import ExecutorSpec
    from harness.settings import HarnessSettings


@app.command("evaluate-pending")
def evaluate_pending(
    server: Annotated[
        str | None, typer.Option("--server", help="server URL (default: TDC_SERVER or local)")
    ] = None,
    token: Annotated[
        str | None,
        typer.Option("--token", help="organizer token (default: TDC_ORGANIZER_TOKEN)"),
    ] = None,
    executor: Annotated[
        str | None,
        typer.Option("--executor", "-e", help="preset: slurm | local | debug | ... (yaml)"),
    ] = None,
    watch: Annotated[bool, typer.Option("--watch", help="keep polling for work")] = False,
    max_jobs: Annotated[
        int, typer.Option("--max-jobs", min=1, help="submissions held at once")
    ] = 100,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="print what would run; claim nothing")
    ] = False,
    dataset: Annotated[str | None, typer.Option("--dataset", help="only this dataset")] = None,
    lease_seconds: Annotated[int, typer.Option("--lease-seconds", min=5)] = 600,
    max_pending_s: Annotated[
        float,
        typer.Option(
            "--max-pending-s", min=1, help="cancel a SLURM job not started after this (infra)"
        ),
    ] = 86400,
    partition: Annotated[str | None, typer.Option("--partition")] = None,
    timeout_min: Annotated[int | None, typer.Option("--timeout-min", min=1)] = None,
    array_parallelism: Annotated[int | None, typer.Option("--array-parallelism", min=1)] = None,
    items_per_task: Annotated[int | None, typer.Option("--items-per-task", min=1)] = None,
) -> None:
    """Claim queued submissions, evaluate them, post results (or explain failures)."""
    from harness.cli.common import client_settings
    from harness.cli.common import settings as get_settings
    from harness.dispatch.executors import executor_spec
    from submissions.client import TdcClient
    from submissions.errors import ConfigError

    settings = get_settings()
    client_config = client_settings()
    token = client_config.organizer(token)
    overrides: dict[str, Any] = {
        "partition": partition,
        "timeout_min": timeout_min,
        "array_parallelism": array_parallelism,
        "items_per_task": items_per_task,
    }
    spec = executor_spec(
        executor or default_executor(),
        configs_dir=settings.configs_dir,
        overrides={k: v for k, v in overrides.items() if v is not None},
    )
    if not token:
        raise ConfigError("an organizer token is needed: --token or TDC_ORGANIZER_TOKEN")
    with TdcClient(client_config.server_url(server), token) as client:
        if dry_run:
            _dry_run(client, spec, dataset=dataset, limit=max_jobs)
            return
        _run(client, spec, settings, watch=watch, max_jobs=max_jobs, dataset=dataset,
             lease_seconds=lease_seconds, max_pending_s=max_pending_s)  # fmt: skip


def default_executor() -> str:
    return "slurm" if shutil.which("sbatch") else "local"


def _dry_run(client: Client, spec: ExecutorSpec, *, dataset: str | None, limit: int) -> None:
    from harness.dispatch import plan
    from submissions.schemas import State

    queued = client.list_all(state=State.queued, dataset=dataset, limit=limit)
    if not queued:
        typer.echo("nothing queued")
        return
    groups = plan.group_by_key(queued)
    typer.echo(f"would claim {len(queued)} submission(s): {len(groups)} unique evaluation(s)")
    for line in plan.describe(groups, spec):
        typer.echo(line)


def _run(
    client: Client,
    spec: ExecutorSpec,
    s: HarnessSettings,
    *,
    watch: bool,
    max_jobs: int,
    dataset: str | None,
    lease_seconds: int,
    max_pending_s: float,
) -> None:
    from harness.dispatch.worker import Worker, WorkerOptions

    options = WorkerOptions(
        executor=spec,
        runs_dir=s.runs_dir,
        data_root=s.data_root,
        configs_dir=s.configs_dir,
        weights_dir=s.weights_dir,
        max_jobs=max_jobs,
        lease_seconds=lease_seconds,
        max_pending_s=max_pending_s,
        watch=watch,
        dataset=dataset,
    )
    stop = threading.Event()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # the worker logs what matters
    with _stop_on_signals(stop):
        report = Worker(client=client, options=options, stop=stop).run()
    typer.echo(
        f"claimed {report.claimed} ({report.unique} unique), launched {report.launched} in "
        f"{report.array_tasks} {spec.cluster} task(s), adopted {report.adopted}, reused "
        f"{report.reused}; scored {report.scored}, failed_user {report.failed_user}, "
        f"failed_infra {report.failed_infra}, leases lost {report.leases_lost}"
    )


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """First SIGINT/SIGTERM: stop claiming and finish the jobs in flight. Second: quit now.
    The previous handlers come back afterwards (tests call ``main`` in-process)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        typer.echo("stopping: finishing the jobs in flight (again to quit now)", err=True)
        stop.set()

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)
