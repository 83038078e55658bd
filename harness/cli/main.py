"""``tdc-harness``: one Typer app; each command group lives in its own module.

    tdc-harness datasets                      # list datasets and whether they are prepared
    tdc-harness prepare demo && tdc-harness embed demo
    tdc-harness validate sub.npy --dataset demo --fraction 0.1

Commands are thin: they parse options and call keyword-only library functions; ``main`` runs
the app through ``submissions.cli_runner`` (a TdcError: exit 2 and its message; a usage
error: exit 2 and the usage). Heavy modules are imported inside the commands, so ``--help``
stays fast. Our own packages log at INFO; third-party libraries (faiss's loader, timm,
ultralytics) only from WARNING, unless ``--verbose``.
"""

from __future__ import annotations

import importlib
import logging

import typer

app = typer.Typer(
    name="tdc-harness",
    help="Task-DataComp harness: datasets, validation, baselines, evaluation, dispatch.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

OUR_LOGGERS = ("harness", "submissions", "leaderboard")


def configure_logging(*, verbose: bool) -> None:
    """Our packages at INFO; everything else at WARNING, or INFO too with ``--verbose``."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(logging.INFO if verbose else logging.WARNING)
    for name in OUR_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.INFO)


@app.callback()
def options(
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="also show third-party libraries' INFO logs"
    ),
) -> None:
    """Task-DataComp harness: datasets, validation, baselines, evaluation, dispatch."""
    configure_logging(verbose=verbose)


# Each module registers its commands on ``app`` when imported (one line per command group).
COMMAND_MODULES = (
    "harness.cli.datasets",
    "harness.cli.demo",
    "harness.cli.baseline",
    "harness.cli.evaluate_pending",
    "harness.cli.validate",
    "harness.cli.evaluate",
    "harness.cli.report",
    "harness.cli.oracle",
    "harness.cli.references",
    "harness.cli.sweep",
    "harness.cli.tune",
    "harness.cli.cache_images",
)


def _load_commands() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(name)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (tests call ``main([...])``)."""
    from submissions.cli_runner import run_app

    configure_logging(verbose=False)
    _load_commands()
    return run_app(app, argv, prog_name="tdc-harness")
