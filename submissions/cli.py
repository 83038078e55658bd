"""``tdc-submit``: check a subset locally, upload it, follow it to its scores.

    tdc-submit my_subset.npy --dataset demo --fraction 0.1 [--task test1] [--recipe R]
               [--name "my method"] [--server URL] [--wait]
    tdc-submit status [ID]          # the latest submission of your team without ID
    tdc-submit list [--dataset D]
    tdc-submit select [ID ...] [--drop ID]   # final picks for hidden tests; no ID: list them
    tdc-submit unselect ID ...

The token comes from ``TDC_TOKEN`` or the token file, the server from ``--server`` or
``TDC_SERVER`` (``submissions.config.ClientSettings``). Before
uploading, the file is checked here under the file contract, against the budget and against
the pool UIDs (downloaded once, cached under ~/.cache/tdc and revalidated by ETag), so most
mistakes never leave your machine. Every failure prints one line and exits with its own code:

    ====  ================================================================
    code  meaning
    ====  ================================================================
    0     done (with --wait: scored)
    2     bad command line
    3     local pre-check failed (file contract, fraction, task, budget, unknown UIDs)
    4     server unreachable (no network, refused, timed out)
    5     not authenticated (no token, unsafe token file, 401)
    6     forbidden (403)
    7     file too large (413)
    8     rejected by the server's validation (422; the problems are listed); select and
          unselect: the change was refused (too many picks, picks final, not scored: 422/409)
    9     quota exceeded (429; says when to retry)
    10    not found (404: unknown dataset or submission)
    11    any other server error
    12    --wait: the submission failed or was cancelled
    ====  ================================================================
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from submissions.cli_runner import Failure, run_app
from submissions.client import ApiError, ServerUnreachable, TdcClient
from submissions.config import ClientSettings, TokenError, load_settings
from submissions.errors import SubsetFileError, TdcError
from submissions.schemas import DatasetPublic, Picks, State, SubmissionDetail, SubmissionPublic

if TYPE_CHECKING:
    import numpy as np
    from rich.console import Console

EXIT_PRECHECK, EXIT_NETWORK, EXIT_AUTH, EXIT_FORBIDDEN = 3, 4, 5, 6
EXIT_TOO_LARGE, EXIT_INVALID, EXIT_QUOTA, EXIT_NOT_FOUND, EXIT_SERVER, EXIT_FAILED = (
    7, 8, 9, 10, 11, 12,
)  # fmt: skip
STATUS_EXIT = {401: EXIT_AUTH, 403: EXIT_FORBIDDEN, 404: EXIT_NOT_FOUND, 413: EXIT_TOO_LARGE,
               422: EXIT_INVALID, 429: EXIT_QUOTA}  # fmt: skip
COMMANDS = ("upload", "status", "list", "select", "unselect")

app = typer.Typer(
    name="tdc-submit",
    help="Submit a Task-DataComp subset and follow its evaluation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
ServerOpt = Annotated[str | None, typer.Option("--server", help="default: TDC_SERVER")]


def _settings() -> ClientSettings:
    return load_settings(ClientSettings)


def _client(settings: ClientSettings, server: str | None) -> TdcClient:
    return TdcClient(settings.server_url(server), settings.load_token(), timeout=120)


def _fail(code: int, message: str, details: list[str] | None = None) -> NoReturn:
    raise Failure(code, message, details or [])


# --- local pre-check ------------------------------------------------------------------------


def pool_uids(client: TdcClient, dataset: str, *, cache_dir: Path) -> np.ndarray:
    """The pool UIDs, from the cache when the server's ETag still matches."""
    from urllib.parse import urlsplit

    import numpy as np

    host = urlsplit(client.base_url).netloc.replace(":", "_") or "local"
    path = cache_dir / "pool-uids" / host / f"{dataset}.npy"
    tag_file = path.with_suffix(".etag")
    old = tag_file.read_text().strip() if tag_file.is_file() and path.is_file() else None
    new = client.pool_uids(dataset, path, etag=old)
    if new is not None:
        tag_file.write_text(new)
    uids: np.ndarray = np.load(path, allow_pickle=False)
    return uids


def precheck(
    client: TdcClient,
    path: Path,
    *,
    info: DatasetPublic,
    fraction: float,
    task: str | None,
    cache_dir: Path,
) -> int:
    """Check ``path`` as the server will; returns the subset size or exits with code 3."""
    from submissions.subset_file import read_subset_file

    budgets = {f.fraction: f.budget for f in info.fractions}
    match = [f for f in budgets if abs(f - fraction) < 1e-9]
    if not match:
        allowed = ", ".join(f"{f:g}" for f in budgets)
        _fail(
            EXIT_PRECHECK,
            f"fraction {fraction:g} is not offered for {info.name}; allowed: {allowed}",
        )
    if task is not None and task not in {t.name for t in info.tasks}:
        names = ", ".join(t.name for t in info.tasks)
        _fail(EXIT_PRECHECK, f"{info.name} has no task {task!r}; tasks: {names}")
    max_bytes = client.info().max_upload_bytes
    try:
        uids = read_subset_file(path, max_bytes=max_bytes).uids
    except SubsetFileError as err:
        _fail(EXIT_PRECHECK, f"{path}: {err} [{err.code}]")
    problems = _subset_problems(
        uids,
        budget=budgets[match[0]],
        fraction=fraction,
        pool=lambda: pool_uids(client, info.name, cache_dir=cache_dir),
        name=info.name,
    )
    if problems:
        _fail(EXIT_PRECHECK, "; ".join(problems))
    return len(uids)


def _subset_problems(
    uids: np.ndarray,
    *,
    budget: int | None,
    fraction: float,
    pool: Callable[[], np.ndarray],
    name: str,
) -> list[str]:
    """Every pre-check problem at once (duplicates, budget, UIDs outside the pool)."""
    import numpy as np

    problems = []
    unique, counts = np.unique(uids, return_counts=True)
    if len(unique) != len(uids):
        dup = ", ".join(map(str, unique[counts > 1][:5]))
        problems.append(f"{len(uids) - len(unique)} duplicate UIDs, e.g. {dup}")
    if budget is not None and len(uids) > budget:
        problems.append(f"{len(uids)} UIDs exceed the budget of {budget} at {fraction:g}")
    unknown = unique[~np.isin(unique, pool())]
    if len(unknown):
        sample = ", ".join(map(str, unknown[:10]))
        problems.append(f"{len(unknown)} UIDs are not in the {name} pool, e.g. {sample}")
    return problems


# --- commands -------------------------------------------------------------------------------


@app.command()
def upload(
    file: Annotated[Path, typer.Argument(help="the subset .npy", exists=True, dir_okay=False)],
    dataset: Annotated[str, typer.Option(help="dataset name, e.g. demo")],
    fraction: Annotated[float, typer.Option(help="budget fraction, e.g. 0.1")],
    task: Annotated[str | None, typer.Option(help="score on this task only")] = None,
    recipe: Annotated[str | None, typer.Option(help="default: the dataset's")] = None,
    name: Annotated[str | None, typer.Option(help="your method's name")] = None,
    server: ServerOpt = None,
    wait: Annotated[bool, typer.Option("--wait", help="follow until scored")] = False,
    check: Annotated[bool, typer.Option(help="run the local pre-check first")] = True,
    poll: Annotated[float, typer.Option(help="--wait polling interval, s")] = 5.0,
) -> None:
    """Check FILE locally, upload it, print its id and web page (and, with --wait, scores)."""
    settings = _settings()
    with _client(settings, server) as client:
        if check:
            info = client.dataset(dataset)
            size = precheck(client, file, info=info, fraction=fraction, task=task,
                            cache_dir=settings.cache_dir)  # fmt: skip
            typer.echo(f"pre-check passed: {size} UIDs, all in the pool", err=True)
        sub = _upload(client, file, dataset=dataset, fraction=fraction, task=task, recipe=recipe,
                      name=name)  # fmt: skip
        typer.echo(f"submission {sub.id}: {sub.state.value}  {sub.url or ''}".rstrip())
        if wait:
            _follow(client, sub.id, poll)


def _upload(client: TdcClient, file: Path, **meta: object) -> SubmissionPublic:
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    columns = (BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, transient=True, console=_stderr_console()) as bar:
        job = bar.add_task("upload", total=file.stat().st_size)
        return client.submit(
            file,
            progress=lambda sent, total: bar.update(job, completed=sent),
            **meta,  # type: ignore[arg-type]
        )


def _stderr_console() -> Console:
    from rich.console import Console

    return Console(stderr=True)


def _follow(client: TdcClient, submission_id: int, poll: float) -> None:
    for sub in client.follow(submission_id, poll_s=poll):
        job = f"  job {sub.job_state}" if sub.job_state else ""
        typer.echo(f"  {sub.updated_at:%H:%M:%S}  {sub.state.value}{job}", err=True)
    _print_detail(sub)
    if sub.state != State.scored:
        _fail(EXIT_FAILED, f"submission {sub.id} {sub.state.value}: {sub.error or 'no details'}")


def _print_detail(sub: SubmissionDetail) -> None:
    typer.echo(f"submission {sub.id} [{sub.state.value}] {sub.dataset} fraction {sub.fraction:g} "
               f"task {sub.task or 'all'} recipe {sub.recipe} size {sub.size}")  # fmt: skip
    if sub.error:
        typer.echo(f"  {sub.error}")
    if sub.job_state:
        typer.echo(f"  job: {sub.job_state}")
    for score in sub.scores:
        metrics = ", ".join(
            f"{k} {v:.4f} ± {score.std.get(k, 0.0):.4f}" for k, v in sorted(score.mean.items())
        )
        typer.echo(f"  {score.task}: {metrics}")
    if sub.url:
        typer.echo(f"  {sub.url}")


@app.command()
def status(
    submission_id: Annotated[int | None, typer.Argument(help="default: your latest")] = None,
    server: ServerOpt = None,
) -> None:
    """Show a submission's state and, when scored, its scores."""
    with _client(_settings(), server) as client:
        if submission_id is None:
            latest = client.list(limit=1)
            if not latest:
                _fail(EXIT_NOT_FOUND, "your team has no submissions yet")
            submission_id = latest[0].id
        _print_detail(client.get(submission_id))


@app.command("list")
def list_(
    dataset: Annotated[str | None, typer.Option(help="only this dataset")] = None,
    state: Annotated[State | None, typer.Option(help="only this state")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    server: ServerOpt = None,
) -> None:
    """List your team's submissions, newest first."""
    with _client(_settings(), server) as client:
        for s in client.list(dataset=dataset, state=state, limit=limit):
            when = f"{s.created_at:%Y-%m-%d %H:%M}"
            typer.echo(f"{s.id:>7}  {s.state.value:<12} {s.dataset} {s.fraction:g} "
                       f"{s.task or 'all':<8} {s.name or '':<20} {when}")  # fmt: skip


IdsArg = Annotated[list[int] | None, typer.Argument(help="submission ids", min=1, max=2**31 - 1)]


@app.command()
def select(
    ids: IdsArg = None,
    drop: Annotated[
        list[int] | None, typer.Option("--drop", help="also unpick this one (repeatable)")
    ] = None,
    dataset: Annotated[str | None, typer.Option(help="list this dataset's picks")] = None,
    server: ServerOpt = None,
) -> None:
    """Pick IDS as final submissions for the hidden tests (or, without IDS, list your picks).

    After a hidden test's reveal its boards rank only each team's picks, at most the dataset's
    limit per board (fraction and recipe); on a board where a team picked none, its best
    submissions by public score count. Picks freeze at the first reveal.
    """
    with _client(_settings(), server) as client:
        if not ids and not drop:
            _print_picks(client.picks(dataset=dataset))
            return
        _print_picks(_change_picks(client, pick=ids or [], unpick=drop or []))


@app.command()
def unselect(
    ids: Annotated[list[int], typer.Argument(help="submission ids", min=1, max=2**31 - 1)],
    server: ServerOpt = None,
) -> None:
    """Remove IDS from your final picks (while the picks are open)."""
    with _client(_settings(), server) as client:
        _print_picks(_change_picks(client, pick=[], unpick=ids))


def _change_picks(client: TdcClient, *, pick: list[int], unpick: list[int]) -> list[Picks]:
    try:
        return client.change_picks(pick=pick, unpick=unpick)
    except ApiError as err:
        if err.status in (409, 422):
            _fail(EXIT_INVALID, f"picks unchanged: {err}")
        raise


def _print_picks(picks: list[Picks]) -> None:
    if not picks:
        typer.echo("no picks to make: none of your datasets has a hidden test")
    for p in picks:
        until = f" until {p.closes_at:%Y-%m-%d %H:%M} UTC" if p.closes_at else ""
        state = f"open{until}" if p.open else "final" if p.hidden_tasks else "not needed"
        hidden = ", ".join(p.hidden_tasks) or "none"
        typer.echo(f"{p.dataset} ({p.team}): picks {state}; hidden tests: {hidden}; "
                   f"at most {p.limit} per board")  # fmt: skip
        for s in p.picks:
            typer.echo(f"{s.id:>7}  {s.fraction:g} {s.recipe} {s.task or 'all':<8} "
                       f"{s.state.value:<10} {s.name or ''}".rstrip())  # fmt: skip
        if not p.picks and p.hidden_tasks:
            typer.echo(f"  no picks: your {p.limit} best by public score count on each board")


# --- entry point ----------------------------------------------------------------------------


def _quota_message(err: ApiError) -> str:
    if err.retry_after and "retry" not in str(err):
        return f"{err} (retry after {int(err.retry_after)} s)"
    return str(err)


def _api_exit(err: ApiError) -> Failure:
    code = STATUS_EXIT.get(err.status, EXIT_SERVER)
    details = [f"  - {p.get('code', '?')}: {p.get('message', '')}" for p in err.problems()]
    messages = {
        401: f"not authenticated: {err} (check TDC_TOKEN or the token file)",
        403: f"forbidden: {err}",
        413: f"file too large for the server: {err}",
        422: f"the server rejected the submission ({len(details)} problem(s)):",
        429: _quota_message(err),
        404: f"not found: {err}",
    }
    return Failure(code, messages.get(err.status, f"server error {err.status}: {err}"),
                   details if err.status == 422 else [])  # fmt: skip


def _failure(err: TdcError) -> Failure:
    """Each kind of failure its own exit code (the table above)."""
    if isinstance(err, ApiError):
        return _api_exit(err)
    if isinstance(err, ServerUnreachable):
        return Failure(EXIT_NETWORK, f"server unreachable: {err}")
    if isinstance(err, TokenError):
        return Failure(EXIT_AUTH, f"not authenticated: {err}")
    return Failure(EXIT_PRECHECK, str(err))


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (tests call ``main([...])``)."""
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] not in (*COMMANDS, "--help", "-h"):
        args.insert(0, "upload")  # `tdc-submit FILE ...` is the upload command
    return run_app(app, args, prog_name="tdc-submit", translate=_failure)


if __name__ == "__main__":
    raise SystemExit(main())
