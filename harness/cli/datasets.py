"""``tdc-harness datasets | prepare | embed``: what exists, and building it on this machine.

    tdc-harness datasets                     # table: name, task type, tasks, pool, embeddings
    tdc-harness datasets show demo [--json]  # pool, tasks, budgets, embedding sets
    tdc-harness prepare demo [--force]
    tdc-harness prepare iWildCam --research-config ~/task_datacomp/configs/datasets.yaml
    tdc-harness prepare FMoW --release ~/wilds/fmow_v1.1     # a public release
    tdc-harness prepare GeoDE --source DIR                    # a directory of <split>.csv
    tdc-harness embed demo [--set SET] [--force]               # resumable; skips what is done
    tdc-harness embed iWildCam --import DIR --set research --format research --trust-pickle

Thin: each command calls one library function (harness.datasets.preparers.prepare_dataset,
harness.embed.embed_dataset, harness.datasets.status.dataset_status).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
    table = Table("name", "task type", "tasks", "pool", "default embeddings", title="Datasets")
    for spec in common.specs(settings).datasets.values():
        st = dataset_status(spec=spec, settings=settings)
        pool = f"{st.pool_size:,}" if st.pool_size is not None else "not prepared"
        table.add_row(st.name, st.task_type, str(len(st.tasks)), pool,
                      f"{st.default_set} ({'ready' if st.embedded else 'not made'})"
                      if st.prepared and st.default_set else "-")  # fmt: skip
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
        f"default embedding set: {st.default_set or '-'}"
        f"{'' if st.embedded or not st.prepared else ' (not made yet)'}",
        f"default recipe {st.default_recipe}, primary metric {st.primary_metric}",
    ]
    if st.image_root:
        lines.append(f"images referenced in place under {st.image_root}")
    if st.embedding_sets:
        lines.append("embedding sets (name, embedder, fingerprint, kinds, state):")
        lines += [
            f"  {s.name}{' (default)' if s.default else ''}: {s.embedder}, {s.fingerprint}, "
            f"{', '.join(s.kinds)}; {s.state}{'' if s.declared else ', not declared in the spec'}"
            for s in st.embedding_sets
        ]
    lines.append("tasks:")
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
        None, "--source", help="directory of <split>.csv tables (+ images/)"
    ),
    research_config: Path | None = typer.Option(
        None, "--research-config", help="the research group's datasets.yaml"
    ),
    release: Path | None = typer.Option(
        None, "--release", help="the public release directory (the spec's release builder)"
    ),
    on_missing_label: str = typer.Option(
        "drop", "--on-missing-label", help="rows without a label: drop (and report) or error"
    ),
) -> None:
    """Build a dataset in the benchmark format under the data root (TDC_DATA_ROOT)."""
    from harness.datasets.preparers import PrepareOptions, prepare_dataset
    from submissions.errors import ConfigError

    if on_missing_label not in ("drop", "error"):
        raise ConfigError(f"--on-missing-label is drop or error, not {on_missing_label!r}")
    settings = common.settings()
    spec = common.specs(settings).dataset(name)
    start = time.perf_counter()
    ds = prepare_dataset(
        spec=spec, settings=settings, force=force, source=source,
        research_config=research_config, release=release,
        options=PrepareOptions(on_missing_label=on_missing_label),  # type: ignore[arg-type]
    )  # fmt: skip
    took = time.perf_counter() - start
    sizes = ", ".join(f"{s} {ds.split_size(s):,}" for s in spec.split_names())
    typer.echo(f"{name}: prepared at {ds.dir.root} ({sizes}) in {took:.1f} s")
    typer.echo(render_preparation(ds.manifest))


def render_preparation(manifest: dict[str, Any]) -> str:
    """What a preparation recorded that an organizer should see: mapping, drops, images."""
    lines = []
    research = manifest.get("research")
    if research:
        lines.append(f"  pool <- {research['pool']}")
        lines += [f"  {t} <- query {m['query']}, test {m['test']}"
                  for t, m in research["tasks"].items()]  # fmt: skip
        if research.get("unused"):
            lines.append(f"  not used (no task): {', '.join(research['unused'])}")
    for split, d in (manifest.get("dropped_without_label") or {}).items():
        lines.append(f"  {split}: dropped {d['rows']} rows without a label, e.g. "
                     f"{', '.join(d['first_uids'])}")  # fmt: skip
    if manifest.get("image_root"):
        lines.append(f"  images: {manifest['images']['files']:,} files checked under "
                     f"{manifest['image_root']}")  # fmt: skip
    if manifest.get("release"):
        lines.append(f"  release rule: {manifest['release'].get('rule', '')}")
    return "\n".join(lines)


@app.command("embed")
def embed_command(
    name: str = typer.Argument(..., help="dataset name (datasets.yaml)", show_default=False),
    set_name: str | None = typer.Option(
        None, "--set", help="embedding set (default: the spec's default set)"
    ),
    force: bool = typer.Option(False, "--force", help="re-make it even if up to date"),
    import_dir: Path | None = typer.Option(
        None, "--import", help="import precomputed files from this directory"
    ),
    fmt: str = typer.Option("research", "--format", help="format of --import files"),
    trust_pickle: bool = typer.Option(
        False, "--trust-pickle", help="load pickled files (your own files only)"
    ),
) -> None:
    """Make an embedding set of every split (resumable), or import one with --import."""
    from harness.datasets import Dataset
    from harness.embed import embed_dataset, import_research_set
    from submissions.errors import ConfigError

    settings = common.settings()
    ds = Dataset.open(common.specs(settings).dataset(name), data_root=settings.data_root)
    start = time.perf_counter()
    if import_dir is None:
        manifest = embed_dataset(ds=ds, settings=settings, set_name=set_name, force=force)
    else:
        if fmt != "research":
            raise ConfigError(f"--format: the import formats are: research (not {fmt!r})")
        if set_name is None:
            raise ConfigError("--import needs --set NAME: the name of the new set")
        if trust_pickle:
            typer.echo("warning: --trust-pickle unpickles the files: only your own", err=True)
        manifest = import_research_set(ds=ds, source=import_dir, set_name=set_name,
                                       trust_pickle=trust_pickle, force=force)  # fmt: skip
    typer.echo(
        f"{name}: set {manifest['name']} ({manifest['embedder']}, fingerprint "
        f"{manifest['fingerprint']}, kinds {', '.join(manifest['kinds'])}) of "
        f"{len(manifest['splits'])} splits at {ds.dir.embedding_set(manifest['name']).root} "
        f"in {time.perf_counter() - start:.1f} s"
    )
    if manifest.get("kept_previous_as"):
        typer.echo(f"  the previous {manifest['name']} is kept as {manifest['kept_previous_as']}")
