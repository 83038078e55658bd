"""``tdc-harness baseline``: list the selection baselines or run one into a subset file.

    tdc-harness baseline --list
    tdc-harness baseline image_alignment --dataset demo --fraction 0.1 --task test1 -o sub.npy
    tdc-harness baseline tsds -d demo -f 0.1 -t test1 --seed 1 -p alpha=0.75
    tdc-harness baseline image_alignment -d iWildCam -f 0.1 -t test1 --embeddings research
    tdc-harness validate sub.npy --dataset demo --fraction 0.1 --task test1   # passes

``-p KEY=VALUE`` overrides a parameter of configs/baselines.yaml (VALUE is read as YAML);
unknown keys fail with the method's valid parameters before anything runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from harness.cli.main import app
from submissions.errors import ConfigError

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from harness.selection import BaselinesConfig


@app.command("baseline")
def baseline(
    name: Annotated[str | None, typer.Argument(help="selection method (see --list)")] = None,
    list_methods: Annotated[bool, typer.Option("--list", help="list the methods and exit")] = False,
    dataset: Annotated[str | None, typer.Option("--dataset", "-d", help="dataset name")] = None,
    fraction: Annotated[
        float | None, typer.Option("--fraction", "-f", help="budget as a pool fraction")
    ] = None,
    task: Annotated[str | None, typer.Option("--task", "-t", help="task (default: none)")] = None,
    seed: Annotated[int, typer.Option("--seed", "-s", help="random seed")] = 0,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="subset file to write (.npy)")
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="KEY=VALUE method parameter")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the metadata as JSON")] = False,
    embeddings: Annotated[
        str | None, typer.Option("--embeddings", help="embedding set (default: the dataset's)")
    ] = None,
    params_file: Annotated[
        Path | None,
        typer.Option("--params-file", help="parameters from a YAML (`params:`), e.g. from tune"),
    ] = None,
) -> None:
    """Run a selection baseline and write its subset file (or list the baselines)."""
    from harness.cli.common import settings as get_settings
    from harness.selection import load_baselines

    settings = get_settings()
    config = load_baselines(settings.configs_dir)
    if list_methods:
        _print_list(config)
        return
    if name is None or dataset is None or fraction is None:
        raise ConfigError("baseline: give NAME, --dataset and --fraction (or --list)")
    overrides = {**read_params_file(params_file), **parse_params(param or [])}
    config.method(name).resolved_params(overrides)  # fail on a typo before loading data
    out_path = output or default_output(
        settings.runs_dir, name=name, dataset=dataset, fraction=fraction, task=task, seed=seed
    )
    meta = _run(name, dataset, fraction, task, seed, overrides, config, out_path, embeddings)
    if as_json:
        typer.echo(json.dumps(meta, default=str))
    else:
        typer.echo(
            f"{name}: wrote {meta['size']} UIDs (budget {meta['budget']}, "
            f"natural size {meta['natural_size']}) to {out_path}"
        )
        if meta.get("note"):
            typer.echo(f"  {meta['note']}")


def _run(
    name: str,
    dataset: str,
    fraction: float,
    task: str | None,
    seed: int,
    overrides: dict[str, Any],
    config: BaselinesConfig,
    out_path: Path,
    embeddings: str | None,
) -> dict[str, Any]:
    from harness.cli.common import settings, specs
    from harness.embed.sets import open_dataset
    from harness.selection import select, write_selection

    s = settings()
    ds = open_dataset(specs(s).dataset(dataset), data_root=s.data_root, embeddings=embeddings)
    if task is not None:
        ds.spec.task(task)  # UnknownName with suggestions before any work
    with RichProgress() as progress:
        out = select(
            ds=ds,
            method=name,
            fraction=fraction,
            task=task,
            seed=seed,
            params=overrides,
            baselines=config,
            progress=progress,
            weights_dir=s.weights_dir,
        )
    write_selection(out, out_path)
    return {**out.metadata, "output": str(out_path)}


def parse_params(items: list[str]) -> dict[str, Any]:
    """``["k=10", "captions=label"]`` -> ``{"k": 10, "captions": "label"}`` (YAML values)."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--param expects KEY=VALUE, got {item!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def read_params_file(path: Path | None) -> dict[str, Any]:
    """The ``params:`` mapping of a YAML such as ``tdc-harness tune`` writes ({} without one)."""
    if path is None:
        return {}
    from harness.specs import read_yaml

    doc = read_yaml(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("params"), dict):
        raise ConfigError(f"{path}: expected a `params:` mapping (as `tdc-harness tune` writes)")
    return dict(doc["params"])


def default_output(
    runs_dir: Path, *, name: str, dataset: str, fraction: float, task: str | None, seed: int
) -> Path:
    stem = f"{dataset}-{name}-f{fraction:g}-{task or 'all'}-s{seed}"
    return runs_dir / "selections" / f"{stem}.npy"


def _print_list(config: BaselinesConfig) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("method", "query set", "description", box=None)
    for spec in config.methods.values():
        need = "labels" if spec.needs_labels else ("yes" if spec.needs_query else "no")
        table.add_row(spec.name, need, " ".join(spec.description.split()))
    Console(width=160).print(table)


class RichProgress:
    """A progress callback ``(step, done, total)`` drawing one rich bar per step on stderr."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import Progress

        self._progress: Progress = Progress(console=Console(stderr=True), transient=True)
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def __call__(self, step: str, done: int, total: int) -> None:
        if step not in self._tasks:
            self._tasks[step] = self._progress.add_task(step, total=total)
        self._progress.update(self._tasks[step], completed=done, total=total)
