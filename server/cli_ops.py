"""``tdc-server check``, ``backup`` and ``restore``: the operator's integrity and backup tools.

    tdc-server check [--repair] [--grace-s 3600] [--no-hash]   # exit 1 with one line a problem
    tdc-server backup --out /backups [--copy]                  # prints the new backup's path
    tdc-server restore /backups/tdc-backup-20250301T120000Z    # into a new database

They read ``TDC_DATABASE_URL`` and ``TDC_STORAGE_DIR``; ``server.cli`` registers them on its
app (``register(app)``). The work is done by ``server.services.integrity``, ``.backup`` and
``.restore``; these commands only print. Problems go to stdout, one a line (so they can be
piped); summaries, progress and hints go to stderr.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from server.cli_env import database, server_settings
from submissions.cli_runner import Failure

if TYPE_CHECKING:
    from server.settings import Settings
    from server.storage import Storage

PROBLEMS_EXIT = 1


def register(app: typer.Typer) -> None:
    """Add ``check``, ``backup`` and ``restore`` to ``app``."""
    app.command()(check)
    app.command()(backup)
    app.command()(restore)


def _storage(settings: Settings) -> Storage:
    from server.storage import Storage
    from submissions.errors import ConfigError

    root = settings.storage_dir
    if not root.is_dir():
        raise ConfigError(f"the storage directory {root} does not exist (TDC_STORAGE_DIR)")
    try:
        return Storage(root)
    except OSError as err:
        raise ConfigError(f"cannot use the storage directory {root}: {err}") from None


def check(
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="remove unreferenced stored files and stale upload temp files older than "
            "--grace-s, and print each one removed (nothing else is ever changed)",
        ),
    ] = False,
    grace_s: Annotated[
        float,
        typer.Option(
            "--grace-s",
            min=0,
            help="unreferenced and temp files younger than this are uploads in flight",
        ),
    ] = 3600.0,
    no_hash: Annotated[
        bool,
        typer.Option("--no-hash", help="compare file sizes only, skip reading every file"),
    ] = False,
) -> None:
    """Check that the database and the stored files agree; exit 1 listing every problem.

    Every submission's events end in its state; scores exist for scored rows only (and each
    scored row has them); every referenced file exists with its size and sha256; no stored
    file is unreferenced; no upload temp file is left from a crash; no running submission
    has an expired lease (the next worker claim requeues or fails it: `check` never writes
    to the database). One line per problem on stdout: `KIND: SUBJECT: MESSAGE`.
    """
    from sqlmodel import Session

    from server.models import utcnow
    from server.services.integrity import check_integrity
    from server.services.integrity import repair as remove

    settings = server_settings()
    storage = _storage(settings)
    now = utcnow()
    with database(settings) as engine, Session(engine) as db:
        report = check_integrity(
            db=db, storage=storage, now=now, grace_s=grace_s, verify_hashes=not no_hash
        )
        removed = []
        if repair:
            removed = remove(
                db=db, storage=storage, findings=report.findings, now=now, grace_s=grace_s
            )
    gone = set(removed)
    for path in removed:
        typer.echo(f"removed {path}")
    left = [f for f in report.findings if not (f.path in gone and f.repairable)]
    for finding in left:
        typer.echo(str(finding))
    typer.echo(report.summary() + (f"; removed {len(removed)} files" if repair else ""), err=True)
    if left:
        hint = ""
        if not repair and any(f.repairable for f in left):
            hint = " (--repair removes the unreferenced and stale temp files)"
        raise Failure(PROBLEMS_EXIT, f"{len(left)} problem(s) found{hint}")


def backup(
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="directory to create the backup in (made if missing)"),
    ],
    copy: Annotated[
        bool,
        typer.Option("--copy", help="copy the stored files even where hard links would do"),
    ] = False,
) -> None:
    """Back up the database and the stored files into a new directory under OUT.

    The database is one consistent snapshot (SQLite: its online backup API; PostgreSQL:
    pg_dump, which must be on PATH) and the files are those its rows reference, hard-linked
    where OUT is on the storage's filesystem (they are immutable) and copied elsewhere, each
    checked against its sha256. manifest.json lists them with the database's kind, alembic
    revision and row counts. The directory appears only once complete and never replaces
    another; its path is printed on stdout. Exit 1 if a stored file was missing or damaged
    (the backup is written without it).
    """
    from server.services.backup import backup as run

    settings = server_settings()
    storage = _storage(settings)
    with database(settings) as engine:
        done = run(engine=engine, storage=storage, out=out, link=not copy)
    m = done.manifest
    typer.echo(str(done.path))
    typer.echo(
        f"backed up the {m.database.kind} database ({m.counts.get('submission', 0)} "
        f"submissions, alembic revision {m.database.alembic_revision or 'none'}) and "
        f"{len(m.files)} files ({done.linked} hard-linked, {done.copied} copied)",
        err=True,
    )
    if m.problems:
        msg = "the backup is incomplete (run `tdc-server check`):"
        raise Failure(PROBLEMS_EXIT, msg, m.problems)


def restore(
    backup_dir: Annotated[
        Path, typer.Argument(help="a tdc-backup-<time> directory made by `tdc-server backup`")
    ],
) -> None:
    """Restore a backup into TDC_DATABASE_URL (which must not exist yet) and TDC_STORAGE_DIR.

    Nothing is written unless the whole backup checks out (every file against its sha256),
    the database is new (SQLite: no file there; PostgreSQL: an empty database, e.g. made with
    createdb; pg_restore must be on PATH) and no file already in the storage differs. Files
    are added to the storage first, the database last, so an interrupted restore can simply
    be run again. Then `tdc-server migrate` (if the backup's schema is older) and
    `tdc-server check`. By hand, for PostgreSQL: createdb, then `pg_restore --no-owner
    --no-privileges --single-transaction --dbname=URL BACKUP/tdc.pgdump` and
    `cp -an BACKUP/storage/. $TDC_STORAGE_DIR/`.
    """
    from server.services.restore import restore as run

    settings = server_settings()
    done = run(
        backup_dir=backup_dir, database_url=settings.database_url, storage_dir=settings.storage_dir
    )
    m = done.manifest
    typer.echo(
        f"restored {done.database} ({m.counts.get('submission', 0)} submissions, alembic "
        f"revision {m.database.alembic_revision or 'none'}) and {done.added} files into "
        f"{settings.storage_dir} ({done.present} already there), from a backup of "
        f"{m.created_at:%Y-%m-%d %H:%M:%S} UTC; now run `tdc-server migrate` and "
        "`tdc-server check`",
        err=True,
    )
