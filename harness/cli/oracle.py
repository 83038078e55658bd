"""``tdc-harness oracle``: the train-on-query reference rows of a dataset.

    tdc-harness oracle --dataset demo
    tdc-harness oracle -d demo --recipe linear_probe --task test1 --seeds 0 --out oracle.json
    TDC_ORGANIZER_TOKEN=... tdc-harness oracle -d demo --post --server http://127.0.0.1:8000

For every task (or ``--task``), the recipe (default: the dataset's) trains on the task's own
query split and is scored on its test split (harness.recipes.oracle). Prints one table per
task and writes ``{"kind": "oracle", "results": [EvalResult, ...]}`` with ``--out``: rows for
boards as references, never a participant's submission. ``--post`` records them on the
server (``POST /api/organizer/references``, organizer token; idempotent) as unranked oracle
reference rows of team ``--team`` (default ``oracle``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from harness.cli import common
from harness.cli.evaluate import parse_seeds, render
from harness.cli.main import app

if TYPE_CHECKING:
    from submissions.schemas import EvalResult


@app.command("oracle")
def oracle_command(
    dataset: str = typer.Option(..., "--dataset", "-d", help="dataset name (datasets.yaml)"),
    recipe: str | None = typer.Option(None, "--recipe", "-r", help="default: the dataset's"),
    task: list[str] = typer.Option([], "--task", "-t", help="a task (repeatable); default all"),
    fraction: float | None = typer.Option(
        None, "--fraction", "-f", help="the board the rows belong to; default the smallest"
    ),
    seeds: str | None = typer.Option(None, "--seeds", help="comma-separated, e.g. 0,1,2"),
    out: Path | None = typer.Option(None, "--out", "-o", help="write the results JSON here"),
    post: bool = typer.Option(False, "--post", help="record the rows on the server"),
    server: str | None = typer.Option(
        None, "--server", help="server URL (default: TDC_SERVER or local)"
    ),
    token: str | None = typer.Option(
        None, "--token", help="organizer token (with --post; default: TDC_ORGANIZER_TOKEN)"
    ),
    team: str | None = typer.Option(None, "--team", help="the rows' team (default: oracle)"),
    embeddings: str | None = typer.Option(
        None, "--embeddings", help="embedding set (default: the dataset's)"
    ),
) -> None:
    """Train the recipe on each task's query split and score it on the task's test split."""
    from harness.embed.sets import open_dataset
    from harness.recipes.oracle import evaluate_oracle
    from harness.specs import check_fraction
    from submissions.errors import ConfigError

    client = common.client_settings()
    token = client.organizer(token)
    if post and not token:  # fail before training, not after
        raise ConfigError("--post needs an organizer token: --token or TDC_ORGANIZER_TOKEN")
    settings = common.settings()
    specs = common.specs(settings)
    spec = specs.dataset(dataset)
    if fraction is not None:
        fraction = check_fraction(spec, fraction)
    results = evaluate_oracle(
        ds=open_dataset(spec, data_root=settings.data_root, embeddings=embeddings),
        recipe=specs.recipe(recipe or spec.default_recipe),
        tasks=task or None,
        fraction=fraction,
        seeds=parse_seeds(seeds),
        weights_dir=settings.weights_dir,
    )
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        payload = {"kind": "oracle", "results": [r.model_dump(mode="json") for r in results]}
        out.write_text(json.dumps(payload, indent=2) + "\n")
    for result in results:
        render(result, out=None)
    if out is not None:
        typer.echo(f"wrote {out}")
    if post:
        _post(results, url=client.server_url(server), token=token, team=team)


def _post(results: list[EvalResult], *, url: str, token: str | None, team: str | None) -> None:
    from submissions.client import TdcClient

    with TdcClient(url, token) as client:
        recorded = client.post_references(results, kind="oracle", team=team)
    ids = ", ".join(str(s.id) for s in recorded.submissions)
    typer.echo(f"posted {len(recorded.submissions)} oracle row(s) to {url} "
               f"({recorded.created} new): {ids}")  # fmt: skip
