"""The resumable loop of model embedders: every unfinished split, chunk by chunk.

    encode = lambda rows: {"image": model_features(rows)}            # a block of split rows
    done = embed_in_chunks(ds, store, encode=encode, kinds=("image",), chunk_size=8192)

A chunk's arrays are written as soon as it is encoded; a rerun skips finished splits and
chunks, so an interrupted run resumes at the first missing chunk. Progress is a rich bar.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from harness.embed.base import EmbeddingStore
from submissions.errors import DataNotFound

if TYPE_CHECKING:
    import pandas as pd

    from harness.datasets.dataset import Dataset

Encode = Callable[["pd.DataFrame"], dict[str, npt.NDArray[np.float32]]]


def batches(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def progress() -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )


def embed_in_chunks(
    ds: Dataset,
    store: EmbeddingStore,
    *,
    encode: Encode,
    kinds: tuple[str, ...],
    chunk_size: int,
) -> list[str]:
    """Encode every unfinished split of ``ds`` into ``store``; returns the splits done now."""
    todo = [s for s in ds.spec.split_names() if not store.done(s)]
    with progress() as bar:
        for split in todo:
            df = ds.split(split)
            if df.empty:
                raise DataNotFound(f"split {ds.spec.name}/{split} has no rows to embed")
            task = bar.add_task(f"{ds.spec.name}/{split}", total=len(df))
            for c, part in enumerate(batches(len(df), chunk_size)):
                if not store.has_chunk(split, c, kinds):
                    store.write_chunk(split, c, encode(df.iloc[part]))
                bar.advance(task, part.stop - part.start)
            n_chunks = math.ceil(len(df) / chunk_size)
            store.assemble(split, n_chunks, kinds=kinds, uids=ds.uids(split))
    return todo


def loader_workers(device: str, requested: int | None) -> int:
    """Decoding processes: ``requested``, else none on the CPU (the model needs every core)
    and on CUDA the CPUs this job was given (``SLURM_CPUS_PER_TASK``) less one, up to 8."""
    import os

    if requested is not None:
        return requested
    if not device.startswith("cuda"):
        return 0
    cpus = int(os.environ.get("SLURM_CPUS_PER_TASK") or len(os.sched_getaffinity(0)))
    return max(0, min(8, cpus - 1))


def image_batches(
    ds: Dataset, rows: pd.DataFrame, *, transform: Any, batch_size: int, workers: int,
    draft: int | None, device: str,
) -> Iterator[Any]:  # fmt: skip
    """The rows' images, decoded (in ``workers`` processes) and transformed, in batches."""
    from torch.utils.data import DataLoader

    from harness.recipes.images import ImageFiles

    paths = [ds.image_root / str(f) for f in rows["filename"]]
    data = ImageFiles(paths=paths, targets=np.zeros(len(paths)), transform=transform,
                      draft=draft)  # fmt: skip
    loader = DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=workers,
                        pin_memory=device.startswith("cuda"))  # fmt: skip
    for images, _ in loader:
        yield images.to(device, non_blocking=True)
