"""``tdc-harness report leaderboard | results | stability``: the leaderboard as static HTML;
the research table; how stable the ranking of the reference methods is.

    tdc-harness report results --out report/ [--sweep demo] [--select-on test]
    tdc-harness report stability demo --fraction 0.05 --out docs/stability-demo.md
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

``stability`` evaluates each reference method's subset of one selection seed through the
results store (harness.stability) and prints Kendall tau between the full-test ranking and
bootstrap resamples, and between training seeds, as Markdown (``--out`` writes it too).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from harness.cli.main import app

if TYPE_CHECKING:
    from harness.datasets import Dataset
    from harness.settings import HarnessSettings
    from harness.stability import Stability

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


@report_app.command("stability")
def stability_command(
    dataset: str = typer.Argument(..., help="dataset name (datasets.yaml)"),
    fraction: list[float] = typer.Option(
        [], "--fraction", "-f", help="repeatable; default: the dataset's smallest fraction"
    ),
    recipe: str | None = typer.Option(None, "--recipe", "-r", help="default: the dataset's"),
    method: list[str] = typer.Option(
        [],
        "--method",
        "-m",
        help="NAME or NAME:KEY=VALUE,..., repeatable (default: the demo board's references)",
    ),
    selection_seed: int = typer.Option(0, "--selection-seed", help="each method's subset seed"),
    hidden: bool = typer.Option(
        False, "--hidden", help="include hidden tests (organizers only: do not publish)"
    ),
    fresh: bool = typer.Option(
        False, "--fresh", help="retrain instead of reading the results store (not updated)"
    ),
    out: Path | None = typer.Option(None, "--out", "-o", help="also write the Markdown here"),
) -> None:
    """How stable the ranking of the reference methods is: Kendall tau between the full-test
    ranking and bootstrap resamples of the test sets, and between training seeds."""
    from harness.cli import common
    from harness.cli.demo_loop import REFERENCES
    from harness.cli.references import parse_method

    items = [parse_method(m) for m in method] or list(REFERENCES)
    text = stability_report(settings=common.settings(), dataset=dataset, fractions=fraction,
                            recipe=recipe, methods=items, selection_seed=selection_seed,
                            hidden=hidden, fresh=fresh)  # fmt: skip
    typer.echo(text)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        typer.echo(f"wrote {out}")


def stability_report(
    *,
    settings: HarnessSettings,
    dataset: str,
    fractions: Sequence[float] = (),
    recipe: str | None = None,
    methods: Sequence[tuple[str, dict[str, object]]],
    selection_seed: int = 0,
    hidden: bool = False,
    fresh: bool = False,
) -> str:
    """The Markdown report of :mod:`harness.stability` for one dataset and recipe, a section
    per fraction (default: the smallest)."""
    from harness.cli import common
    from harness.embed.sets import open_dataset
    from harness.references import Reference
    from harness.selection.config import load_baselines
    from harness.specs import check_fraction
    from harness.stability import reading_guide
    from harness.store import ResultsStore
    from submissions.errors import ConfigError
    from submissions.outcomes import PER_EXAMPLE

    specs = common.specs(settings)
    spec = specs.dataset(dataset)
    if spec.primary_metric not in PER_EXAMPLE:
        raise ConfigError(f"{dataset}: {spec.primary_metric} is not a mean over test examples; "
                          "its ranking cannot be resampled per example")  # fmt: skip
    fracs = [check_fraction(spec, f) for f in fractions] or [min(spec.fractions)]
    rec = specs.recipe(recipe or spec.default_recipe)
    baselines = load_baselines(settings.configs_dir)
    refs = [Reference.of(m, p, baselines=baselines) for m, p in methods]
    tasks = [t.name for t in spec.tasks if hidden or not t.hidden]
    if not tasks:
        raise ConfigError(f"{dataset}: every test is hidden; --hidden includes them")
    left_out = [t.name for t in spec.tasks if t.name not in tasks]
    head = [
        f"# Ranking stability: {dataset}",
        "",
        f"Recipe {rec.name}, metric {spec.primary_metric}, selection seed {selection_seed}, "
        f"{len(refs)} reference methods; the dataset score is the mean over tasks.  ",
        *([f"Hidden tests left out: {', '.join(left_out)}.  "] if left_out else []),
        *(
            ["**Includes hidden tests: for organizers only, do not publish.**  "]
            if hidden and any(t.hidden for t in spec.tasks)
            else []
        ),
        "",
    ]
    ds = open_dataset(spec, data_root=settings.data_root)
    store = None if fresh else ResultsStore(settings.runs_dir)
    sections = []
    for frac in fracs:
        report, text = _stability_section(ds=ds, recipe=rec, refs=refs, fraction=frac,
                                          tasks=tasks, baselines=baselines, store=store,
                                          selection_seed=selection_seed,
                                          weights_dir=settings.weights_dir)  # fmt: skip
        sections.append(text)
    return "\n".join([*head, *sections, reading_guide(report), ""])


def _stability_section(
    *, ds: Dataset, fraction: float, tasks: list[str], **kw: Any
) -> tuple[Stability, str]:
    from harness.stability import gather_outcomes, render_markdown, stability, task_classes
    from submissions.errors import ConfigError

    got = gather_outcomes(ds=ds, fraction=fraction, tasks=tasks, **kw)
    if len(got.outcomes) < 2:
        raise ConfigError(f"a ranking needs 2 methods with outcomes; skipped: {got.skipped}")
    report = stability(got.outcomes, tasks=tasks, classes=task_classes(ds, tasks),
                       higher_is_better=ds.spec.higher_is_better)  # fmt: skip
    seeds = f"{report.seeds} training seed{'s' if report.seeds > 1 else ''}"
    notes = [
        f"{len(got.outcomes)} methods, {seeds}, {report.resamples:,} bootstrap resamples.",
        *(f"Skipped {label}: {why}." for label, why in got.skipped.items()),
    ]
    title = f"Fraction {fraction:g}"
    return report, render_markdown(report, title=title, notes=notes, level=2, guide=False)
