"""``tdc-server submissions``: organizers list, inspect and moderate submissions.

    tdc-server submissions list [--state S] [--dataset D] [--team T] [--limit 100] [--json]
    tdc-server submissions show 7 [--json]
    tdc-server submissions hide 7 8 9 --reason "duplicate account"
    tdc-server submissions ACTION ID... --reason TEXT
        # ACTION: requeue, cancel, hide, unhide, disqualify, requalify, rescore

Every change goes through ``organizer_ops.moderate``, the service behind ``POST
/api/organizer/submissions/{id}/{action}``: the same transition rules, one event per change
with its reason and the actor ``organizer:cli:<os user>`` (an API change says
``organizer:<team>``). Each ID is changed in its own transaction: one line per ID, ``done``
lines on stdout, ``error:`` lines on stderr. ``rescore`` sends a scored submission back to be
evaluated again, its scores off the boards until then (``server.services.rescore``).

Exit codes: 0 every ID done; 1 some ID refused (unknown, an illegal transition, a flag
already so) or ``show`` of an unknown ID; 2 a usage or configuration error (unknown option,
no ``--reason``, unknown dataset or team, a database not migrated).
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from server.cli_env import database, server_settings
from submissions.schemas import State

if TYPE_CHECKING:
    from sqlmodel import Session

    from server.context import ServerContext
    from server.services.auth import Principal
    from submissions.schemas import SubmissionDetail, SubmissionPublic

app = typer.Typer(
    name="submissions",
    help="List, inspect and moderate submissions (one event per change, with your reason).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# action -> (what a done line says, the command's help). Each is organizer_ops.MODERATIONS'.
ACTIONS: dict[str, tuple[str, str]] = {
    "requeue": ("requeued", "Evaluate a failed (or running) submission again from the start."),
    "cancel": ("cancelled", "Cancel a queued or running submission (not charged as an upload)."),
    "hide": ("hidden", "Hide a submission: off the boards, its page for organizers only."),
    "unhide": ("unhidden", "Undo a hide."),
    "disqualify": ("disqualified", "Disqualify a submission: off the boards, its page marked."),
    "requalify": ("requalified", "Undo a disqualification."),
    "rescore": (
        "queued to be rescored",
        "Evaluate a scored submission again (after a harness or data fix): its scores are "
        "deleted and it leaves the boards until the new result arrives.",
    ),
}
MAX_LIMIT = 10_000


def console_principal() -> Principal:
    """The organizer at this console: no token and no team, ``organizer:cli:<os user>``."""
    from server.services.auth import Principal

    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name (some containers)
        user = "unknown"
    return Principal(token_id=0, team_id=0, team=f"cli:{user}", scope="organizer")


@contextmanager
def _console() -> Iterator[tuple[Session, ServerContext]]:
    """A session on ``TDC_DATABASE_URL`` and the server's context, database errors explained."""
    from sqlmodel import Session

    from server.context import ServerContext

    settings = server_settings()
    with database(settings) as engine, Session(engine) as db:
        yield db, ServerContext.from_settings(settings)


@app.command("list")
def list_(
    state: Annotated[State | None, typer.Option(help="only this state")] = None,
    dataset: Annotated[str | None, typer.Option(help="only this dataset")] = None,
    team: Annotated[str | None, typer.Option(help="only this team's")] = None,
    limit: Annotated[int, typer.Option(min=1, max=MAX_LIMIT, help="at most this many")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="a JSON list, for scripts")] = False,
) -> None:
    """Every team's submissions, newest first (organizer view: errors, hidden rows; UTC)."""
    from server.services.auth import get_team
    from server.services.organizer_ops import list_all

    with _console() as (db, ctx):
        if dataset is not None:
            ctx.catalog.spec(dataset)  # unknown: an error naming the configured ones
        if team is not None:
            get_team(db=db, name=team)
        rows = list_all(db=db, ctx=ctx, state=state, dataset=dataset, team=team, limit=limit)
        flags = _flags(db, [r.id for r in rows])
    if as_json:
        typer.echo(json.dumps([_row_json(r, flags[r.id]) for r in rows], indent=2))
    elif rows:
        typer.echo(_table([_row_cells(r, flags[r.id]) for r in rows]))
    else:
        typer.echo("no submissions match", err=True)


def _flags(db: Session, ids: list[int]) -> dict[int, tuple[bool, bool]]:
    """``id -> (hidden, disqualified)``: the flags list_all's public rows do not carry."""
    from sqlmodel import col, select

    from server.models import Submission

    stmt = select(Submission.id, Submission.hidden, Submission.disqualified)
    rows = db.exec(stmt.where(col(Submission.id).in_(ids))).all()
    return {i: (h, d) for i, h, d in rows if i is not None}


def _flag_words(hidden: bool, disqualified: bool) -> str:
    return ",".join(w for w, on in (("hidden", hidden), ("disqualified", disqualified)) if on)


def _row_json(row: SubmissionPublic, flags: tuple[bool, bool]) -> dict[str, object]:
    return row.model_dump(mode="json") | {"hidden": flags[0], "disqualified": flags[1]}


COLUMNS = ("id", "team", "dataset", "fraction", "task", "state", "flags", "kind", "created",
           "error")  # fmt: skip


def _row_cells(row: SubmissionPublic, flags: tuple[bool, bool]) -> list[str]:
    error = (row.error or "").replace("\n", " ")
    return [
        str(row.id),
        row.team,
        row.dataset,
        f"{row.fraction:g}",
        row.task or "all",
        row.state.value,
        _flag_words(*flags) or "-",
        row.kind,
        row.created_at.strftime("%Y-%m-%d %H:%M"),
        error[:60] + ("..." if len(error) > 60 else ""),
    ]


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(COLUMNS)]
    lines = [COLUMNS, *rows]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(ln, widths, strict=True)).rstrip() for ln in lines
    )


@app.command()
def show(
    submission_id: Annotated[int, typer.Argument(metavar="ID", help="the submission")],
    as_json: Annotated[bool, typer.Option("--json", help="the API's SubmissionDetail")] = False,
) -> None:
    """One submission with its scores and its full event timeline (organizer view; UTC)."""
    from server.errors import NotFound
    from server.services.submissions import get_submission
    from submissions.cli_runner import Failure

    with _console() as (db, ctx):
        try:
            detail = get_submission(
                db=db, ctx=ctx, principal=console_principal(), submission_id=submission_id
            )
        except NotFound as err:
            raise Failure(1, str(err)) from None
    typer.echo(detail.model_dump_json(indent=2) if as_json else render_detail(detail))


def render_detail(d: SubmissionDetail) -> str:
    """The text of ``show``: facts, scores (mean ± std over seeds), events, the log's tail."""
    lines = [
        f"submission {d.id}  {d.url}",
        f"  team      {d.team}   kind {d.kind}" + (f"   name {d.name}" if d.name else ""),
        f"  entry     {d.dataset}  fraction {d.fraction:g}  task {d.task or 'all'}  "
        f"recipe {d.recipe}",
        f"  subset    {d.size} UIDs, sha256 {d.sha256}",
        f"  state     {d.state.value}"
        + (f"  ({_flag_words(d.hidden, d.disqualified)})" if d.hidden or d.disqualified else ""),
        f"  attempts  {d.attempts}   worker {d.worker or '-'}   job {d.executor_job_id or '-'}"
        + (f"   lease until {_when(d.lease_expires_at)}" if d.lease_expires_at else "")
        + (f"   not before {_when(d.not_before)}" if d.not_before else ""),
        f"  created   {_when(d.created_at)}   updated {_when(d.updated_at)}",
    ]
    if d.error:
        lines.append(f"  error     {d.error}")
    if d.manifest:
        m = d.manifest
        lines.append(
            f"  manifest  code {m.code_version}, recipe {m.recipe} v{m.recipe_version} "
            f"({m.recipe_hash}), {m.executor} job {m.job_id or '-'}"
        )
    lines.append("scores" if d.scores else "scores    none")
    for s in d.scores:
        metrics = ", ".join(f"{k} {v:.4f} ± {s.std.get(k, 0.0):.4f}" for k, v in s.mean.items())
        lines.append(f"  {s.task}  n={s.test_size}  seeds={len(s.seeds)}  {metrics}")
    lines.append("events")
    for e in d.events:
        move = f"{e.from_state.value if e.from_state else '':>12} -> {e.to_state.value:<12}"
        lines.append(
            f"  {_when(e.created_at)}  {e.action:<13} {move} {e.actor}"
            + (f"  {e.reason}" if e.reason else "")
        )
    if d.log_tail:
        lines += ["log tail", *("  " + ln for ln in d.log_tail.splitlines()[-20:])]
    return "\n".join(lines)


def _when(t: object) -> str:
    from datetime import datetime

    return t.strftime("%Y-%m-%d %H:%M:%S") if isinstance(t, datetime) else "-"


def _reason(value: str) -> str:
    """``--reason``: the text the event records (1-2000 characters, not only spaces)."""
    from pydantic import ValidationError

    from submissions.schemas import AdminAction

    text = value.strip()
    if not text:
        raise typer.BadParameter("must say why (it is recorded in the submission's history)")
    try:
        return AdminAction(reason=text).reason
    except ValidationError as err:
        raise typer.BadParameter(err.errors()[0]["msg"]) from None


def moderate_ids(action: str, ids: list[int], reason: str) -> int:
    """Apply ``action`` to each ID in its own transaction; returns how many failed."""
    from server.models import Submission
    from server.services.organizer_ops import moderate
    from submissions.errors import TdcError

    done_word = ACTIONS[action][0]
    actor = console_principal().actor
    failed = 0
    with _console() as (db, ctx):
        for sid in dict.fromkeys(ids):  # each ID once, in the order given
            try:
                row = moderate(
                    db=db,
                    ctx=ctx,
                    submission_id=sid,
                    action=action,  # type: ignore[arg-type]
                    reason=reason,
                    actor=actor,
                )
            except TdcError as err:
                failed += 1
                typer.echo(f"submission {sid}: error: {err}", err=True)
                continue
            sub = db.get(Submission, sid)
            flags = _flag_words(sub.hidden, sub.disqualified) if sub else ""
            typer.echo(
                f"submission {sid}: {done_word} ({row.state.value}"
                + (f", {flags})" if flags else ")")
            )
    return failed


def _register(action: str) -> None:
    def command(
        ids: Annotated[list[int], typer.Argument(metavar="ID", help="submission IDs")],
        reason: Annotated[
            str, typer.Option(help="why (kept in each submission's history)", callback=_reason)
        ],
    ) -> None:
        failed = moderate_ids(action, ids, reason)
        if failed:
            if len(set(ids)) > 1:
                typer.echo(f"{failed} of {len(set(ids))} submissions not changed", err=True)
            raise typer.Exit(1)

    app.command(action, help=ACTIONS[action][1])(command)


for _action in ACTIONS:
    _register(_action)
