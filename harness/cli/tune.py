"""``tdc-harness tune``: pick a baseline's parameters by query-split score.

    tdc-harness tune tsds --dataset demo --task test1 --fraction 0.1 \\
        --grid alpha=0.25,0.5,0.75 --grid C=2,5 --seeds 0,1
    tdc-harness baseline tsds -d demo -f 0.1 -t test1 \\
        --params-file runs/tuned/demo-tsds-test1-f0.1.yaml

Prints every grid point's mean query score (the test split is never looked at) and writes
the best parameters to a YAML that ``baseline --params-file`` and a sweep's ``params_file``
read (default ``<runs>/tuned/<dataset>-<method>-<task>-f<fraction>.yaml``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from harness.cli import common
from harness.cli.main import app
from submissions.errors import ConfigError


def parse_grid(items: list[str]) -> dict[str, list[Any]]:
    """``["k=1,2", "m=a"]`` -> ``{"k": [1, 2], "m": ["a"]}`` (each value read as YAML)."""
    import yaml

    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not key.strip() or not values.strip():
            raise ConfigError(f"--grid expects KEY=V1,V2,..., got {item!r}")
        grid[key.strip()] = [yaml.safe_load(v) for v in values.split(",")]
    return grid


@app.command("tune")
def tune_command(
    method: str = typer.Argument(..., help="selection method", show_default=False),
    dataset: str = typer.Option(..., "--dataset", "-d", help="dataset name"),
    task: str = typer.Option(..., "--task", "-t", help="the task whose query split decides"),
    fraction: float = typer.Option(..., "--fraction", "-f", help="budget as a pool fraction"),
    grid: list[str] = typer.Option([], "--grid", help="KEY=V1,V2,... (repeatable)"),
    recipe: str | None = typer.Option(None, "--recipe", "-r", help="default: the dataset's"),
    seeds: str = typer.Option("0", "--seeds", help="selection seeds, e.g. 0,1,2"),
    executor: str = typer.Option("debug", "--executor", help="debug (in-process), local, slurm"),
    out: Path | None = typer.Option(None, "--out", "-o", help="YAML to write"),
) -> None:
    """Run every grid point and write the parameters with the best query score."""
    from rich.console import Console
    from rich.table import Table

    from harness.cli.evaluate import parse_seeds
    from harness.dispatch.executors import executor_spec
    from harness.selection import load_baselines
    from harness.sweep.tune import tune, write_tuned

    if not grid:
        raise ConfigError("tune needs at least one --grid KEY=V1,V2,...")
    settings = common.settings()
    spec = executor_spec(executor, configs_dir=settings.configs_dir)
    result = tune(
        method=method,
        dataset=dataset,
        task=task,
        fraction=fraction,
        grid=parse_grid(grid),
        settings=settings,
        specs=common.specs(settings),
        baselines=load_baselines(settings.configs_dir),
        executor=spec.resolve_log_dir(Path(settings.runs_dir).absolute() / "sweep"),
        recipe=recipe,
        seeds=parse_seeds(seeds) or (0,),
    )
    table = Table(*grid_keys(grid), f"query {result.metric}", "seeds", title=f"tune {method}")
    for c in result.candidates:
        std = f" ± {c['query_std']:.4f}" if c["query_std"] is not None else ""
        table.add_row(
            *(str(c["params"][k]) for k in grid_keys(grid)),
            f"{c['query_mean']:.4f}{std}",
            str(c["n"]),
        )
    Console(width=140).print(table)
    path = (
        out or Path(settings.runs_dir) / "tuned" / f"{dataset}-{method}-{task}-f{fraction:g}.yaml"
    )
    write_tuned(result, path)
    typer.echo(
        f"chose {', '.join(f'{k}={result.chosen[k]}' for k in grid_keys(grid))} "
        f"by query {result.metric}; wrote {path}"
    )


def grid_keys(items: list[str]) -> list[str]:
    return [i.partition("=")[0].strip() for i in items]
