"""``tdc-harness report leaderboard``: the web leaderboard as static HTML, from a database.

    tdc-harness report leaderboard --out site/                        # TDC_DATABASE_URL
    tdc-harness report leaderboard --out site/ --database-url sqlite:///./tdc.db
    tdc-harness report leaderboard --out internal/ --organizer        # hidden tests too

Writes the same pages the server shows (home, every board with its CSV and JSON exports,
submission and team pages) with relative links, for hosting without the server. The site is
built by ``server.services.static_site`` (imported here, inside the command: the server
package owns the database schema, and the harness imports it only for this read-only export).
"""

from __future__ import annotations

from pathlib import Path

import typer

from harness.cli.main import app
from submissions.errors import ConfigError

report_app = typer.Typer(help="Reports: the leaderboard as a static site.", no_args_is_help=True)
app.add_typer(report_app, name="report")


@report_app.command("leaderboard")
def leaderboard_command(
    out: Path = typer.Option(..., "--out", "-o", help="directory to write the site into"),
    database_url: str | None = typer.Option(
        None, "--database-url", help="default: TDC_DATABASE_URL (the server's database)"
    ),
    organizer: bool = typer.Option(
        False, "--organizer", help="include hidden tests and hidden submissions (do not publish)"
    ),
) -> None:
    """Write the leaderboard pages and exports as static files."""
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError, ProgrammingError
    from sqlmodel import Session

    from server.context import ServerContext
    from server.db import make_engine
    from server.services.pages import PageService
    from server.services.static_site import write_static_site
    from server.settings import Settings

    settings = Settings()
    if database_url:
        settings = settings.model_copy(update={"database_url": database_url})
    url = settings.database_url
    try:
        engine = make_engine(url)
    except (ArgumentError, NoSuchModuleError) as err:
        raise ConfigError(f"not a usable database URL {url!r}: {err}") from None
    try:
        pages = PageService(ServerContext.from_settings(settings))
        with Session(engine) as db:
            files = write_static_site(db=db, pages=pages, out=out, organizer=organizer)
    except (OperationalError, ProgrammingError) as err:
        raise ConfigError(
            f"cannot read the leaderboard from {url!r} (is it the server's database, migrated "
            f"with `tdc-server migrate`?): {err.orig}"
        ) from None
    finally:
        engine.dispose()
    typer.echo(f"wrote {len(files)} files to {out} (open {out / 'index.html'})")
