"""``linear_probe_regression``: ridge regression on the dataset's cached embeddings.

The cheap recipe of regression datasets (SelfDrivingCar's steering), as ``linear_probe`` is of
classification ones: scikit-learn ``Ridge(alpha)`` with an intercept, on exactly the subset's
pool rows, scored with MSE / MAE on every test example::

    recipes:
      linear_probe_regression:
        kind: linear_probe_regression
        task_types: [regression]
        params: {alpha: 1.0, embedding: image}

Closed form (a Cholesky solve of the ridge normal equations): deterministic, so every seed
gives the same model. ``normalize`` as in ``linear_probe``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from harness.recipes.base import TrainContext
from harness.recipes.linear_probe import features, subset_features
from harness.recipes.params import RidgeParams
from harness.recipes.registry import register_kind

if TYPE_CHECKING:
    from harness.datasets import Dataset


@dataclass(frozen=True)
class RidgePredictor:
    ds: Dataset
    embedding: str
    normalize: bool
    model: Any  # a fitted sklearn Ridge

    def predict(self, split: str) -> npt.NDArray[np.float64]:
        x = features(self.ds.embeddings(split, self.embedding), normalize=self.normalize)
        return np.asarray(self.model.predict(x), dtype=np.float64)


@register_kind(
    "linear_probe_regression",
    params=RidgeParams,
    task_types=("regression",),
    libraries=("numpy", "sklearn"),
    uses_embeddings=True,
)
def train(*, ctx: TrainContext, seed: int) -> RidgePredictor:
    """Fit ``Ridge(alpha)`` on exactly ``ctx.rows`` of the pool (the seed changes nothing)."""
    from sklearn.linear_model import Ridge

    del seed
    p: RidgeParams = ctx.params
    x = features(subset_features(ctx, p.embedding), normalize=p.normalize)
    y = ctx.targets(ctx.pool, ctx.rows)
    model = Ridge(alpha=p.alpha, solver="cholesky").fit(x.astype(np.float64), y)
    return RidgePredictor(ctx.ds, p.embedding, p.normalize, model)
