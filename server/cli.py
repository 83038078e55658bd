"""``tdc-server``: run the server and administer teams and tokens.

    tdc-server migrate                                   # alembic upgrade head
    tdc-server serve [--host 127.0.0.1] [--port 8000] [--workers 2]   # migrates, then uvicorn
    tdc-server create-team lab
    tdc-server issue-token lab --scope participant [--expires-days 90]   # prints the token once
    tdc-server revoke-token tdc_AbCdEf12                  # full token or its 12-char prefix
    tdc-server report --out site/ [--organizer]          # the leaderboard as static files
    tdc-server check [--repair] [--no-hash]              # database <-> storage; exit 1 if not ok
    tdc-server backup --out /backups [--copy]            # prints the new backup directory
    tdc-server restore /backups/tdc-backup-<time>        # into a new database (server.cli_ops)

Configuration comes from ``TDC_*`` environment variables (server.settings.Settings). The
token is all ``issue-token`` writes to stdout, so ``TOKEN=$(tdc-server issue-token ...)`` works.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from server.cli_env import database, server_settings
from server.cli_ops import register as register_ops
from server.cli_submissions import app as submissions_app

if TYPE_CHECKING:
    from sqlalchemy import Engine


app = typer.Typer(
    name="tdc-server",
    help="Task-DataComp leaderboard server: serve, teams and tokens, moderation, checks, backups.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(submissions_app, name="submissions")
register_ops(app)  # check, backup, restore


class ScopeOpt(StrEnum):
    participant = "participant"
    organizer = "organizer"


def _engine() -> Engine:
    from server.db import make_engine

    return make_engine(server_settings().database_url)


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema (alembic upgrade head)."""
    from server.db import migrate as run

    engine = _engine()
    run(engine)
    typer.echo(
        f"database at {engine.url.render_as_string(hide_password=True)} is up to date", err=True
    )


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="default: TDC_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="default: TDC_PORT")] = None,
    workers: Annotated[int, typer.Option(min=1, help="server processes (each its own cache)")] = 1,
    no_migrate: Annotated[bool, typer.Option("--no-migrate", help="skip the upgrade")] = False,
) -> None:
    """Serve the API and the web leaderboard with uvicorn."""
    import uvicorn

    from server.db import migrate as run

    settings = server_settings()
    if not no_migrate:
        engine = _engine()
        run(engine)
        engine.dispose()
    # Each worker process builds its app from the same TDC_* environment.
    uvicorn.run(
        "server.app:from_environment",
        factory=True,
        workers=workers,
        host=host or settings.host,
        port=port or settings.port,
        log_level="info",
        timeout_graceful_shutdown=10,
    )


@app.command("create-team")
def create_team(name: str) -> None:
    """Create a team: a unique name of 1-100 ASCII letters, digits, '_', '-', '.' and spaces,
    starting with a letter or a digit."""
    from server.db import session_scope
    from server.services.auth import create_team as create

    with session_scope(_engine()) as db:
        team = create(db=db, name=name)
    typer.echo(f"team {team.name!r} created (id {team.id})", err=True)


def _expiry(days: float | None) -> float | None:
    """``--expires-days``: more than 0 (a usage error otherwise; omit it for never)."""
    from server.services.auth import MAX_EXPIRES_DAYS

    if days is not None and not 0 < days <= MAX_EXPIRES_DAYS:
        raise typer.BadParameter(
            f"must be more than 0 and at most {MAX_EXPIRES_DAYS} days, not {days:g} "
            "(omit it for a token that never expires)"
        )
    return days


@app.command("issue-token")
def issue_token(
    team: str,
    scope: Annotated[
        ScopeOpt, typer.Option(help="participant or organizer")
    ] = ScopeOpt.participant,
    expires_days: Annotated[
        float | None, typer.Option(help="days, > 0; never expires if omitted", callback=_expiry)
    ] = None,
    create: Annotated[bool, typer.Option("--create-team", help="create TEAM if missing")] = False,
    note: Annotated[str | None, typer.Option(help="a label for the token")] = None,
) -> None:
    """Issue a token for TEAM and print it once (only its hash is stored)."""
    from server.db import session_scope
    from server.services.auth import get_or_create_team, get_team
    from server.services.auth import issue_token as issue

    with session_scope(_engine()) as db:
        row = get_or_create_team(db=db, name=team) if create else get_team(db=db, name=team)
        text, tok = issue(db=db, team=row, scope=scope.value, expires_days=expires_days, note=note)
    expiry = tok.expires_at.isoformat() if tok.expires_at else "never"
    typer.echo(f"{scope.value} token for {team!r} (expires {expiry}); shown once:", err=True)
    typer.echo(text)


@app.command("revoke-token")
def revoke_token(token: str) -> None:
    """Revoke a token, given in full or by the prefix printed when it was issued."""
    from server.db import session_scope
    from server.services.auth import revoke_token as revoke

    with session_scope(_engine()) as db:
        row = revoke(db=db, token_or_prefix=token)
    typer.echo(f"token {row.prefix}... revoked", err=True)


@app.command()
def report(
    out: Annotated[Path, typer.Option("--out", "-o", help="directory to write the site into")],
    organizer: Annotated[
        bool, typer.Option("--organizer", help="include hidden tests and submissions")
    ] = False,
) -> None:
    """Write the leaderboard as a static site (pages + exports) straight from the database."""
    from sqlmodel import Session

    from server.context import ServerContext
    from server.services.page_data import PageService
    from server.services.static_site import write_static_site

    settings = server_settings()
    with database(settings) as engine, Session(engine) as db:
        pages = PageService(ServerContext.from_settings(settings))
        files = write_static_site(db=db, pages=pages, out=out, organizer=organizer)
    typer.echo(f"wrote {len(files)} files to {out} (open {out / 'index.html'})", err=True)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (tests call ``main([...])``)."""
    from submissions.cli_runner import run_app

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return run_app(app, argv, prog_name="tdc-server")


if __name__ == "__main__":
    raise SystemExit(main())
