"""``tdc-harness demo``: the README's `make demo` — the benchmark loop on the embedded default.

    tdc-harness demo            # prepare the demo benchmark, embed it, print its summary

Each step is a small function of the settings that skips work already done, so the command
is cheap to rerun and later steps (score and post the reference rows, submit the demo teams'
entries, evaluate, serve the leaderboard) are appended to ``STEPS`` without touching the others.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import typer

from harness.cli import common
from harness.cli.main import app

if TYPE_CHECKING:
    from harness.datasets import Dataset
    from harness.settings import HarnessSettings

log = logging.getLogger(__name__)

DEMO = "demo"


@dataclass
class DemoRun:
    """State passed from step to step, and the timings printed at the end."""

    settings: HarnessSettings
    dataset: Dataset | None = None
    timings: dict[str, float] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)


def prepare_step(run: DemoRun) -> None:
    from harness.datasets.preparers import prepare_dataset

    spec = common.specs(run.settings).dataset(DEMO)
    run.dataset = prepare_dataset(spec=spec, settings=run.settings)


def embed_step(run: DemoRun) -> None:
    from harness.embed import embed_dataset

    if run.dataset is None:
        raise RuntimeError("embed_step needs prepare_step first")
    manifest = embed_dataset(ds=run.dataset, settings=run.settings)
    run.notes["embedder"] = manifest["embedder"]


Step = Callable[[DemoRun], None]
STEPS: list[tuple[str, Step]] = [("prepare", prepare_step), ("embed", embed_step)]


def run_demo(*, settings: HarnessSettings, steps: list[tuple[str, Step]] | None = None) -> DemoRun:
    """Run the demo's steps in order (each skips what is already done)."""
    run = DemoRun(settings=settings)
    for name, step in steps or STEPS:
        start = time.perf_counter()
        step(run)
        run.timings[name] = time.perf_counter() - start
        log.info("demo step %s done in %.1f s", name, run.timings[name])
    return run


@app.command("demo")
def demo_command() -> None:
    """Prepare and embed the demo benchmark (skipping what is done), then print its summary;
    then start the server, post the reference rows, submit and evaluate the demo teams'
    entries, and serve the leaderboard."""
    from harness.cli.datasets import render_status
    from harness.cli.demo_loop import LOOP_STEPS, serve_until_interrupted
    from harness.datasets.status import dataset_status

    settings = common.settings()
    run = run_demo(settings=settings, steps=[*STEPS, *LOOP_STEPS])
    spec = common.specs(settings).dataset(DEMO)
    typer.echo(render_status(dataset_status(spec=spec, settings=settings)))
    typer.echo("steps: " + ", ".join(f"{k} {v:.1f} s" for k, v in run.timings.items()))
    typer.echo(f"next: tdc-harness datasets show {DEMO}; tdc-harness baseline --list")
    serve_until_interrupted(run)
