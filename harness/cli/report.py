"""``tdc-harness report leaderboard | results``: the leaderboard as static HTML; the research table.

    tdc-harness report results --out report/ [--sweep demo] [--select-on test]
    tdc-harness report leaderboard --out site/                          # TDC_SERVER or local
    tdc-harness report leaderboard --out site/ --server https://tdc.example.org
    TDC_ORGANIZER_TOKEN=... tdc-harness report leaderboard --out internal/ --organizer

Downloads ``GET /api/site.zip`` (the same pages the server shows: home, every board with its
CSV and JSON exports, submission and team pages, with relative links, for hosting without
the server) and unpacks it into ``--out`` with :func:`harness.archive.extract_zip` (no
absolute names, no ``..``, no links, a cap on the unpacked size). ``--organizer`` asks for the
organizers' view with hidden tests, which needs an organizer token and must not be published.
The harness talks to the server over HTTP only; ``tdc-server report`` writes the same site
straight from the database on the server's side.
"""

from __future__ import annotations

from pathlib import Path

import typer

from harness.cli.main import app

report_app = typer.Typer(
    help="Reports: the leaderboard as a static site; the results store as research tables.",
    no_args_is_help=True,
)
app.add_typer(report_app, name="report")

# Building the site may take a while on a big database before the first byte is sent.
DOWNLOAD_TIMEOUT_S = 600.0


@report_app.command("leaderboard")
def leaderboard_command(
    out: Path = typer.Option(..., "--out", "-o", help="directory to write the site into"),
    server: str | None = typer.Option(
        None, "--server", help="server URL (default: TDC_SERVER or local)"
    ),
    token: str | None = typer.Option(
        None,
        "--token",
        help="API token (default: TDC_ORGANIZER_TOKEN, else TDC_TOKEN; needed only with "
        "--organizer, which needs an organizer token)",
    ),
    organizer: bool = typer.Option(
        False, "--organizer", help="include hidden tests and hidden submissions (do not publish)"
    ),
) -> None:
    """Download the leaderboard pages and exports from the server as static files."""
    import tempfile

    from harness.archive import extract_zip
    from harness.cli import common
    from submissions.client import TdcClient
    from submissions.errors import ConfigError

    settings = common.client_settings()
    token = settings.organizer(token) or (
        settings.token.get_secret_value() if settings.token else None
    )
    if organizer and not token:
        raise ConfigError("--organizer needs an organizer token: --token or TDC_ORGANIZER_TOKEN")
    with (
        tempfile.TemporaryDirectory(prefix="tdc-report-") as tmp,
        TdcClient(settings.server_url(server), token, timeout=DOWNLOAD_TIMEOUT_S) as client,
    ):
        archive = client.download_site(Path(tmp) / "site.zip", organizer=organizer)
        files = extract_zip(archive, out)
    typer.echo(f"wrote {len(files)} files to {out} (open {out / 'index.html'})")


@report_app.command("results")
def results_command(
    out: Path = typer.Option(..., "--out", "-o", help="directory for CSV, Markdown, HTML, figures"),
    sweep: str | None = typer.Option(None, "--sweep", help="one experiment (default: everything)"),
    select_on: str = typer.Option(
        "query", "--select-on", help="query (default) or test: test is for analysis only"
    ),
) -> None:
    """The research table of the results store: methods x tasks x fractions, mean ± std."""
    from harness.cli import common
    from harness.sweep.report import (
        SelectOn,
        results_frame,
        selection_note,
        summarize,
        write_report,
    )
    from submissions.errors import ConfigError

    if select_on not in ("query", "test"):
        raise ConfigError(f"--select-on is query or test, not {select_on!r}")
    on: SelectOn = "test" if select_on == "test" else "query"
    settings = common.settings()
    frame = results_frame(settings.runs_dir, sweep=sweep)
    table = summarize(frame, specs=common.specs(settings), select_on=on)
    written = write_report(table, frame, out=out, select_on=on)
    typer.echo(f"{len(frame)} scores, {len(table)} cells; {selection_note(on)}")
    typer.echo(f"wrote {', '.join(p.name for p in written)} to {out}")
