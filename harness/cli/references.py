"""``tdc-harness references``: baseline reference rows, averaged over selection seeds.

    tdc-harness references -d demo -f 0.1 -m random_filter -m clip_score \\
        -m clip_score:captions=label -m tsds:alpha=0.3,C=2
    TDC_ORGANIZER_TOKEN=... tdc-harness references -d demo -m match_label --post \\
        --server http://127.0.0.1:8000

Each ``--method`` is ``NAME`` or ``NAME:KEY=VALUE,...`` (values read as YAML). Every method
is selected with each of ``--seeds`` (default 0,1,2) on every fraction (default: all the
dataset allows) and, for task-aware methods, every task; each distinct subset is trained once
(through the results store under TDC_RUNS_DIR) and a reference row is the mean ± std over
the seeds (harness.references). Labels show every non-default parameter; methods that chose
byte-identical subsets are named together. Prints one line per row; ``--out`` writes the
results JSON; ``--post`` records them on the server as unranked baseline rows of ``--team``
(default ``baselines``; ``POST /api/organizer/references``, organizer token; idempotent).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from harness.cli import common
from harness.cli.baseline import parse_params
from harness.cli.evaluate import parse_seeds
from harness.cli.main import app
from submissions.errors import ConfigError

if TYPE_CHECKING:
    from harness.references import ScoredReference


@app.command("references")
def references_command(
    dataset: str = typer.Option(..., "--dataset", "-d", help="dataset name (datasets.yaml)"),
    method: list[str] = typer.Option(..., "--method", "-m", help="NAME or NAME:KEY=VALUE,..."),
    fraction: list[float] = typer.Option([], "--fraction", "-f", help="repeatable; default all"),
    seeds: str | None = typer.Option(
        None, "--seeds", help="selection seeds, comma-separated (default 0,1,2)"
    ),
    recipe: str | None = typer.Option(None, "--recipe", "-r", help="default: the dataset's"),
    out: Path | None = typer.Option(None, "--out", "-o", help="write the results JSON here"),
    post: bool = typer.Option(False, "--post", help="record the rows on the server"),
    server: str | None = typer.Option(None, "--server", help="default: TDC_SERVER or local"),
    token: str | None = typer.Option(
        None, "--token", help="organizer token (with --post; default: TDC_ORGANIZER_TOKEN)"
    ),
    team: str = typer.Option("baselines", "--team", help="the rows' team"),
    embeddings: str | None = typer.Option(None, "--embeddings", help="default: the dataset's"),
) -> None:
    """Score selection methods over selection seeds as board reference rows."""
    from harness.embed.sets import open_dataset
    from harness.references import SELECTION_SEEDS, Reference, score_references
    from harness.selection.config import load_baselines
    from harness.specs import check_fraction
    from harness.store import ResultsStore

    client = common.client_settings()
    token = client.organizer(token)
    if post and not token:  # fail before any training, not after
        raise ConfigError("--post needs an organizer token: --token or TDC_ORGANIZER_TOKEN")
    settings = common.settings()
    specs = common.specs(settings)
    spec = specs.dataset(dataset)
    baselines = load_baselines(settings.configs_dir)
    refs = [Reference.of(*parse_method(m), baselines=baselines) for m in method]
    fractions = [check_fraction(spec, f) for f in fraction] or list(spec.fractions)
    rows = score_references(
        ds=open_dataset(spec, data_root=settings.data_root, embeddings=embeddings),
        recipe=specs.recipe(recipe or spec.default_recipe),
        refs=refs,
        fractions=fractions,
        seeds=parse_seeds(seeds) or SELECTION_SEEDS,
        baselines=baselines,
        store=ResultsStore(settings.runs_dir),
        weights_dir=settings.weights_dir,
    )
    for row in rows:
        typer.echo(describe(row))
    if out is not None:
        payload = [{"label": r.label, "result": r.result.model_dump(mode="json")} for r in rows]
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(payload, indent=2) + "\n")
        typer.echo(f"wrote {out}")
    if post:
        _post(rows, url=client.server_url(server), token=token, team=team)


def parse_method(item: str) -> tuple[str, dict[str, Any]]:
    """``"tsds:alpha=0.3,C=2"`` -> ``("tsds", {"alpha": 0.3, "C": 2})``."""
    name, _, params = item.partition(":")
    if not name.strip():
        raise ConfigError(f"--method expects NAME or NAME:KEY=VALUE,..., got {item!r}")
    return name.strip(), parse_params([p for p in params.split(",") if p.strip()])


def describe(row: ScoredReference) -> str:
    cells = ", ".join(
        f"{t.task} {t.mean.get(m, float('nan')):.3f} ± {t.std.get(m, 0.0):.3f}"
        for t in row.result.tasks
        for m in list(t.mean)[:1]
    )
    distinct = len(set(row.subsets))
    scope = row.task or "all tasks"
    return f"{row.label} | f={row.fraction:g} {scope} | {distinct} subset(s) | {cells}"


def _post(rows: list[ScoredReference], *, url: str, token: str | None, team: str) -> None:
    from harness.references import post_rows
    from submissions.client import TdcClient

    with TdcClient(url, token) as client:
        created, total = post_rows(client, rows, team=team)
    typer.echo(f"posted {total} reference row(s) to {url} ({created} new)")
