"""What every recipe kind receives and returns. No torch here.

A recipe kind is a function ``train(*, ctx: TrainContext, seed: int) -> Predictor``. The
runner builds the context once per evaluation, calls ``train`` once per seed, and asks the
predictor for each evaluated task's test split::

    ctx = TrainContext(ds=ds, recipe=spec, params=params, rows=rows, labels=labels, ...)
    predictor = kind.train(ctx=ctx, seed=0)
    predictor.predict("test1")      # class indices into ctx.labels, or regression values

``ctx.rows`` are the subset's pool rows (sorted, unique), found through the dataset's UID
index by validation. A recipe trains on exactly those rows and nothing else of the pool.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict

from harness.specs import RecipeSpec, TaskSpec
from submissions.errors import DataNotFound

if TYPE_CHECKING:
    import pandas as pd

    from harness.datasets import Dataset


class Params(BaseModel):
    """Base of every recipe kind's params model: frozen, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Predictor(Protocol):
    """A trained model, asked once per evaluated test split."""

    def predict(self, split: str) -> npt.NDArray[Any]:
        """Class indices (int64, into the dataset's LabelSpace) or regression values."""
        ...


@dataclass(frozen=True)
class LabelSpace:
    """The classes of a whole dataset: sorted unique labels over the pool and every task split.

    Models predict indices into ``classes``; metrics are computed over all of them, so a class
    missing from a subset is still scored.
    """

    classes: npt.NDArray[Any]

    @classmethod
    def of(cls, ds: Dataset) -> LabelSpace:
        labels = [ds.split(s)["label"].to_numpy() for s in ds.spec.split_names()]
        return cls(classes=np.unique(np.concatenate(labels)))

    def __len__(self) -> int:
        return len(self.classes)

    def encode(self, labels: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
        idx = np.searchsorted(self.classes, labels)
        idx = np.minimum(idx, len(self.classes) - 1)
        if len(labels) and not np.array_equal(self.classes[idx], np.asarray(labels)):
            raise DataNotFound("a label is not among the dataset's classes")
        return idx.astype(np.int64)

    def name(self, index: int) -> str:
        return str(self.classes[index])


@dataclass(frozen=True)
class TrainContext:
    """Everything a recipe needs to train on one subset."""

    ds: Dataset
    recipe: RecipeSpec
    params: Any  # the kind's validated params model
    rows: npt.NDArray[np.int64]  # sorted unique pool rows of the subset
    labels: LabelSpace | None  # None for non-classification datasets
    tasks: Sequence[TaskSpec]  # the tasks this evaluation scores
    device: str
    weights_dir: Path

    @property
    def pool(self) -> str:
        return self.ds.spec.pool

    def subset_table(self) -> pd.DataFrame:
        """The pool table restricted to the subset's rows, in pool row order."""
        return self.ds.split(self.pool).iloc[self.rows].reset_index(drop=True)

    def targets(self, split: str, rows: npt.NDArray[np.int64] | None = None) -> npt.NDArray[Any]:
        """Class indices (classification) or float targets of a split's rows (all if None)."""
        labels = self.ds.split(split)["label"].to_numpy()
        if rows is not None:
            labels = labels[rows]
        if self.labels is None:
            return labels.astype(np.float64)
        return self.labels.encode(labels)


def uid_holdout(
    uids: Sequence[str], fraction: float, *, salt: str = "val"
) -> npt.NDArray[np.bool_]:
    """Deterministic held-out mask: the ``floor(fraction * n)`` UIDs with the smallest salted hash.

    Depends only on the UIDs (not on their order, not on positions), so the same subset always
    holds out the same examples. Fewer than one held-out example -> an all-False mask (the
    caller then trains on everything without early stopping).
    """
    n = len(uids)
    n_val = int(np.floor(fraction * n + 1e-9))
    mask = np.zeros(n, bool)
    if n_val < 1 or n_val >= n:
        return mask
    keys = np.array(
        [int.from_bytes(hashlib.sha256(f"{salt}:{u}".encode()).digest()[:8], "big") for u in uids],
        dtype=np.uint64,
    )
    mask[np.argsort(keys, kind="stable")[:n_val]] = True
    return mask
