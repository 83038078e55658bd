"""``tdc-harness cache-images``: decode and shrink every image of a dataset once.

    tdc-harness cache-images iWildCam --size 256            # resumable; no-op when complete
    tdc-harness cache-images iWildCam --size 256 --codec jpeg --workers 8
    tdc-harness cache-images demo --size 256 --force         # rebuild from scratch

Thin: calls :func:`harness.datasets.image_cache.build_image_cache`. Recipes read the cache
when one of at least their evaluation resize exists (``image_size / 0.875``: 256 for 224).
"""

from __future__ import annotations

import json
import time

import typer

from harness.cli import common
from harness.cli.main import app


@app.command("cache-images")
def cache_images_command(
    name: str = typer.Argument(..., help="dataset name (datasets.yaml)", show_default=False),
    size: int = typer.Option(
        ..., "--size", "-s", help="short side in pixels (>= the recipe's image_size / 0.875)"
    ),
    codec: str = typer.Option("raw", "--codec", help="raw (uint8 pixels) or jpeg (quality 90)"),
    workers: int | None = typer.Option(
        None, "--workers", help="decoding processes (default: SLURM_CPUS_PER_TASK or all CPUs)"
    ),
    force: bool = typer.Option(False, "--force", help="discard the cache and any progress"),
    as_json: bool = typer.Option(False, "--json", help="print the cache's record as JSON"),
) -> None:
    """Build the decoded-image cache of a dataset (every split's images, short side SIZE)."""
    from harness.datasets import Dataset
    from harness.datasets.image_cache import CODECS, build_image_cache, cache_info
    from submissions.errors import ConfigError

    if codec not in CODECS:
        raise ConfigError(f"--codec is one of {', '.join(CODECS)}, not {codec!r}")
    settings = common.settings()
    ds = Dataset.open(common.specs(settings).dataset(name), data_root=settings.data_root)
    start = time.perf_counter()
    cache = build_image_cache(
        ds=ds,
        size=size,
        codec=codec,
        workers=workers,
        force=force,  # type: ignore[arg-type]
    )
    info = cache_info(cache)
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    typer.echo(
        f"{name}: image cache {info['key']} ({info['count']:,} images, "
        f"{info['bytes'] / 1e6:,.1f} MB) at {info['path']} in {time.perf_counter() - start:.1f} s"
    )
