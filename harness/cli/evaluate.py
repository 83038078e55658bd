"""``tdc-harness evaluate``: validate a subset, train the fixed recipe, score every task.

    tdc-harness evaluate sub.npy --dataset demo --fraction 0.1
    tdc-harness evaluate sub.npy -d demo -f 0.1 --task test1 --recipe linear_probe \\
        --seeds 0,1 --out results.json
    tdc-harness evaluate sub.npy -d iWildCam -f 0.1 --embeddings research -r linear_probe_research

Prints one row per task (each metric as mean ± std over seeds) and writes the full result,
manifest included, as JSON (submissions.schemas.EvalResult) when ``--out`` is given. An
invalid subset or a bad recipe exits with code 2 and the reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from harness.cli import common
from harness.cli.main import app
from submissions.errors import ConfigError

if TYPE_CHECKING:
    from submissions.schemas import EvalResult


@app.command("evaluate")
def evaluate_command(
    file: Path = typer.Argument(..., help="the subset .npy file", show_default=False),
    dataset: str = typer.Option(..., "--dataset", "-d", help="dataset name (datasets.yaml)"),
    fraction: float = typer.Option(..., "--fraction", "-f", help="budget fraction of the pool"),
    task: str | None = typer.Option(None, "--task", "-t", help="one task; omit for all tasks"),
    recipe: str | None = typer.Option(None, "--recipe", "-r", help="default: the dataset's"),
    seeds: str | None = typer.Option(None, "--seeds", help="comma-separated, e.g. 0,1,2"),
    out: Path | None = typer.Option(None, "--out", "-o", help="write the result JSON here"),
    embeddings: str | None = typer.Option(
        None, "--embeddings", help="embedding set (default: the dataset's)"
    ),
    no_store: bool = typer.Option(
        False, "--no-store", help="train every seed, reading nothing from the results store"
    ),
    wandb: str | None = typer.Option(None, "--wandb", help="log the result to this project"),
) -> None:
    """Validate FILE, train the recipe on exactly its subset, and score the test split(s).

    Scores are kept in the results store under TDC_RUNS_DIR: a seed already scored there (by
    an earlier evaluate, a sweep or the server's worker) is read, not retrained.
    """
    from harness.runner import EvalJob, run_eval_job

    settings = common.settings()
    if wandb:
        from harness.tracking import require_wandb

        require_wandb()
    job = EvalJob(
        dataset=dataset,
        fraction=fraction,
        task=task,
        recipe=recipe,
        subset_path=file,
        data_root=settings.data_root,
        configs_dir=settings.configs_dir,
        weights_dir=settings.weights_dir,
        seeds=parse_seeds(seeds),
        embeddings=embeddings,
        store_dir=None if no_store else settings.runs_dir,
    )
    result = run_eval_job(job)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(result.model_dump_json(indent=2) + "\n")
    render(result, out=out)
    if wandb:
        from harness.tracking import track_result

        config = {
            "dataset": dataset,
            "fraction": fraction,
            "task": task,
            "file": str(file),
            "recipe": result.recipe,
            "subset_sha256": result.manifest.subset_sha256,
        }
        track_result(
            project=wandb,
            name=f"{file.stem}/{result.recipe}",
            config=config,
            result=result,
            run_dir=Path(settings.runs_dir) / "wandb",
        )


def parse_seeds(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        seeds = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise ConfigError(f"--seeds must be comma-separated integers, got {text!r}") from None
    if not seeds:
        raise ConfigError("--seeds names no seed")
    return seeds


def render(result: EvalResult, *, out: Path | None) -> None:
    from rich.console import Console
    from rich.table import Table

    m = result.manifest
    seen = f", {result.classes_seen} classes seen" if result.classes_seen is not None else ""
    table = Table(
        title=f"{result.dataset} @ {result.fraction:g}, recipe {result.recipe}: "
        f"{result.subset_size} examples{seen}, seeds {m.seeds}"
    )
    metrics = sorted({k for t in result.tasks for k in t.mean})
    table.add_column("task")
    table.add_column("test size", justify="right")
    for name in metrics:
        table.add_column(name, justify="right")
    for t in result.tasks:
        cells = [f"{t.mean[k]:.4f} ± {t.std[k]:.4f}" for k in metrics]
        table.add_row(t.task, str(t.test_size), *cells)
    console = Console(width=max(100, 24 * (len(metrics) + 2)))
    console.print(table)
    used = f", embeddings {m.embedding_set} ({m.embedding_fingerprint})" if m.embedding_set else ""
    console.print(f"device {m.device}, {m.wall_time_s:.2f}s, code {m.code_version}{used}")
    if m.reused_seeds:
        console.print(f"seeds {m.reused_seeds} read from the results store (not retrained)")
    if out is not None:
        console.print(f"wrote {out}")
