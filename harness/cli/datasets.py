"""``tdc-harness datasets | prepare | embed``: what exists, and building it on this machine.

    tdc-harness datasets                     # table: name, task type, tasks, pool, embeddings
    tdc-harness datasets show demo [--json]  # pool size, tasks and their sizes, budgets
    tdc-harness prepare demo [--force]       # GeoDE etc.: --source DIR (the release's CSVs)
    tdc-harness embed demo [--force]         # resumable; skips what is done

Thin: each command calls one library function (harness.datasets.preparers.prepare_dataset,
harness.embed.embed_dataset, harness.datasets.status.dataset_status).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from harness.cli import common
from harness.cli.main import app

if TYPE_CHECKING:
    from harness.datasets.status import DatasetStatus

datasets_app = typer.Typer(
    help="List the benchmark's datasets (and `show NAME` for one of them).",
    invoke_without_command=True,
    no_args_is_help=False,
)
app.add_typer(datasets_app, name="datasets")


@datasets_app.callback()
def datasets_command(ctx: typer.Context) -> None:
    """List every dataset of configs/datasets.yaml and its state on this machine."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.console import Console
    from rich.table import Table

    from harness.datasets.status import dataset_status

    settings = common.settings()
    table = Table("name", "task type", "tasks", "pool", "embeddings", title="Datasets")
    for spec in common.specs(settings).datasets.values():
        st = dataset_status(spec=spec, settings=settings)
        pool = f"{st.pool_size:,}" if st.pool_size is not None else "not prepared"
        table.add_row(st.name, st.task_type, str(len(st.tasks)), pool,
                      "yes" if st.embedded else "no")  # fmt: skip
    Console(width=120).print(table)
    typer.echo(f"data root: {settings.data_root}")


@datasets_app.command("show")
def show_command(
    name: str = typer.Argument(..., help="dataset name (datasets.yaml)", show_default=False),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Pool size, tasks with query/test sizes, fractions and their budgets in samples."""
    from harness.datasets.status import dataset_status

    settings = common.settings()
    st = dataset_status(spec=common.specs(settings).dataset(name), settings=settings)
    typer.echo(st.model_dump_json(indent=2) if as_json else render_status(st))


def _n(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def render_status(st: DatasetStatus) -> str:
    """The human form of ``datasets show``."""
    size = _n
    lines = [
        f"{st.name} ({st.task_type}): {st.description}",
        f"pool {st.pool!r}: {size(st.pool_size) if st.prepared else 'not prepared'}; "
        f"embeddings: {st.embedder if st.embedded else 'no'}",
        f"default recipe {st.default_recipe}, primary metric {st.primary_metric}",
        "tasks:",
    ]
    for t in st.tasks:
        hidden = "  [hidden test]" if t.hidden else ""
        lines.append(
            f"  {t.name}: query {t.query} ({size(t.query_size)}), test {t.test} "
            f"({size(t.test_size)}){hidden}  {t.description}"
        )
    lines.append("fractions (budget in samples):")
    lines += [f"  {f.fraction:g}: {size(f.budget)}" for f in st.fractions]
    return "\n".join(lines)


@app.command("prepare")
def prepare_command(
    name: str = typer.Argument(..., help="dataset name (datasets.yaml)", show_default=False),
    force: bool = typer.Option(False, "--force", help="rebuild even if prepared"),
    source: Path | None = typer.Option(
        None, "--source", help="directory of the public release (split CSVs + images)"
    ),
) -> None:
    """Build a dataset in the benchmark format under the data root (TDC_DATA_ROOT)."""
    from harness.datasets.preparers import prepare_dataset

    settings = common.settings()
    spec = common.specs(settings).dataset(name)
    start = time.perf_counter()
    ds = prepare_dataset(spec=spec, settings=settings, force=force, source=source)
    sizes = ", ".join(f"{s} {ds.split_size(s):,}" for s in spec.split_names())
    took = time.perf_counter() - start
    typer.echo(f"{name}: prepared at {ds.dir.root} ({sizes}) in {took:.1f} s")


@app.command("embed")
def embed_command(
    name: str = typer.Argument(..., help="dataset name (datasets.yaml)", show_default=False),
    force: bool = typer.Option(False, "--force", help="recompute even if up to date"),
) -> None:
    """Compute image/caption embeddings of every split (resumable; skips what is done)."""
    from harness.datasets import Dataset
    from harness.embed import embed_dataset

    settings = common.settings()
    ds = Dataset.open(common.specs(settings).dataset(name), data_root=settings.data_root)
    start = time.perf_counter()
    manifest = embed_dataset(ds=ds, settings=settings, force=force)
    typer.echo(
        f"{name}: {manifest['embedder']} embeddings of {len(manifest['splits'])} splits "
        f"at {ds.dir.root / 'embeddings'} in {time.perf_counter() - start:.1f} s"
    )
