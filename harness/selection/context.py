"""What a selector may look at: the pool and (with a task) the query set, loaded lazily.

    ctx = SelectionContext.from_dataset(ds, task="test1")
    x = ctx.pool("image")                  # (n, d) float32, memory-mapped, pool row order
    q = ctx.query("text_nolabel")          # (m, d) query-set caption embeddings
    s = ctx.pool("clip_score_nolabel")     # (n,) image-caption similarity
    y, yq = ctx.pool("label"), ctx.query("label")
    paths = ctx.pool("path")               # (n,) str: absolute image file paths, pool order
    ctx.progress("k-means", 3, 20)         # logging-friendly progress callback
    ctx.weights_dir                        # local checkpoints (gradmatch's ``weights``)

    # benchmarks and unit tests: plain arrays, no files
    ctx = SelectionContext.from_arrays(pool={"image": x}, query={"image": q})
    ctx = SelectionContext.from_arrays(pool={"path": p, "label": y}, query={"path": q, "label": z})

Every kind is one array aligned to the split's rows, whatever its source: ``label`` and
``path`` come from the split table (``path`` = the dataset's image root / ``filename``, made
absolute), every other kind from the embedding set. Methods that train on pixels
(``gradmatch``) read ``path``; ``from_arrays`` callers pass it like any other array.

Arrays are cached per context, so methods that combine features load each once. A query
array requested without a task fails with a ConfigError that names the method's need.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt

from harness.settings import DEFAULT_WEIGHTS_DIR
from submissions.errors import ConfigError, DataNotFound

if TYPE_CHECKING:
    from harness.datasets import Dataset

log = logging.getLogger(__name__)

# (step, done, total): called as long steps advance; the CLI draws a rich progress bar.
ProgressFn = Callable[[str, int, int], None]
Captions = Literal["nolabel", "label"]

# Caption variant -> stored kinds. Captions may contain the label; "nolabel" never does.
TEXT_KIND = {"nolabel": "text_nolabel", "label": "text"}
CLIP_SCORE_KIND = {"nolabel": "clip_score_nolabel", "label": "clip_score"}


def log_progress(step: str, done: int, total: int) -> None:
    """Default progress: one log line at the start and the end of each step."""
    if done == 0 or done >= total:
        log.info("%s: %d/%d", step, done, total)


Loader = Callable[[str], npt.NDArray[np.generic]]


@dataclass
class SelectionContext:
    """Lazy, cached pool/query arrays for one (dataset, task or none) selection."""

    pool_size: int
    task: str | None
    task_type: str
    _load_pool: Loader = field(repr=False)
    _load_query: Loader | None = field(repr=False)
    progress: ProgressFn = field(default=log_progress, repr=False)
    weights_dir: Path = DEFAULT_WEIGHTS_DIR  # relative checkpoint names resolve here
    _cache: dict[tuple[str, str], npt.NDArray[np.generic]] = field(default_factory=dict)

    @classmethod
    def from_dataset(
        cls,
        ds: Dataset,
        *,
        task: str | None,
        progress: ProgressFn | None = None,
        weights_dir: Path | None = None,
    ) -> SelectionContext:
        pool = ds.spec.pool
        query = ds.spec.task(task).query if task is not None else None

        def split_array(split: str, kind: str) -> npt.NDArray[np.generic]:
            if kind == "label":
                return ds.split(split)["label"].to_numpy()
            if kind == "path":
                root = ds.image_root.absolute()
                return np.array([str(root / str(f)) for f in ds.split(split)["filename"]])
            return ds.embeddings(split, kind)

        return cls(
            pool_size=ds.pool_size,
            task=task,
            task_type=ds.spec.task_type,
            _load_pool=lambda kind: split_array(pool, kind),
            _load_query=(lambda kind: split_array(query, kind)) if query else None,
            progress=progress or log_progress,
            weights_dir=weights_dir or DEFAULT_WEIGHTS_DIR,
        )

    @classmethod
    def from_arrays(
        cls,
        *,
        pool: Mapping[str, npt.NDArray[np.generic]],
        query: Mapping[str, npt.NDArray[np.generic]] | None = None,
        task_type: str = "classification",
        progress: ProgressFn | None = None,
        weights_dir: Path | None = None,
    ) -> SelectionContext:
        """A context over in-memory arrays keyed by kind (``image``, ``label``, ...)."""
        sizes = {len(a) for a in pool.values()}
        if len(sizes) != 1:
            raise ValueError(f"pool arrays must have one length, got {sorted(sizes)}")

        def getter(arrays: Mapping[str, npt.NDArray[np.generic]], where: str) -> Loader:
            def load(kind: str) -> npt.NDArray[np.generic]:
                if kind not in arrays:
                    raise DataNotFound(f"no {kind!r} array for the {where}")
                return arrays[kind]

            return load

        return cls(
            pool_size=sizes.pop(),
            task="query" if query is not None else None,
            task_type=task_type,
            _load_pool=getter(pool, "pool"),
            _load_query=getter(query, "query set") if query is not None else None,
            progress=progress or log_progress,
            weights_dir=weights_dir or DEFAULT_WEIGHTS_DIR,
        )

    @property
    def has_task(self) -> bool:
        return self._load_query is not None

    def pool(self, kind: str) -> npt.NDArray[np.generic]:
        """A pool array aligned to pool rows: an embedding kind, clip_score*, label or path."""
        return self._get("pool", kind, self._load_pool)

    def query(self, kind: str) -> npt.NDArray[np.generic]:
        """The task's query-set array of ``kind``; ConfigError when there is no task."""
        if self._load_query is None:
            raise ConfigError(
                "this selection method needs a task's query set: pass a task (--task)"
            )
        return self._get("query", kind, self._load_query)

    def _get(self, where: str, kind: str, load: Loader) -> npt.NDArray[np.generic]:
        key = (where, kind)
        if key not in self._cache:
            self._cache[key] = load(kind)
        return self._cache[key]

    def features(self, kind: str) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """Pool and query features of one kind, float32 and of matching width."""
        x = np.asarray(self.pool(kind), dtype=np.float32)
        q = np.asarray(self.query(kind), dtype=np.float32)
        if x.ndim != 2 or q.ndim != 2 or x.shape[1] != q.shape[1]:
            raise DataNotFound(f"{kind} embeddings: pool {x.shape} and query {q.shape} differ")
        return x, q

    def require_classification(self, method: str) -> None:
        if self.task_type != "classification":
            raise ConfigError(
                f"selection method {method!r} needs class labels; "
                f"this dataset's task type is {self.task_type!r}"
            )
