"""``linear_probe``: multinomial logistic regression on the dataset's cached embeddings.

The research recipe was scikit-learn ``LogisticRegression(C=0.75, max_iter=1000)`` on raw
(unstandardised) CLIP image features. This kind minimises the same objective with the same
stopping rule (harness.recipes.logreg) on exactly the subset's pool rows::

    recipes:
      linear_probe:
        kind: linear_probe
        task_types: [classification]
        params: {C: 0.75, max_iter: 1000}

``normalize`` (default true) scales every feature row to unit length before training and
prediction, so a score does not depend on how an embedding set stores its vectors; research
numbers computed on the unnormalised fp16 research features (an imported set's
``image_raw``) are reproduced with ``embedding: image_raw, normalize: false`` (the
``linear_probe_research`` recipe). It is deterministic (a fixed solver from zero), so every
seed gives the same model; the seed is accepted for the common signature. Only the classes
present in the subset can be predicted (as with sklearn); test examples of other classes
count as errors.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from harness.recipes.base import TrainContext
from harness.recipes.params import LinearProbeParams
from harness.recipes.registry import register_kind
from submissions.errors import DataNotFound

if TYPE_CHECKING:
    from harness.datasets import Dataset
    from harness.recipes.logreg import LogRegFit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LinearPredictor:
    """Logistic-regression coefficients over the classes seen in the subset."""

    ds: Dataset
    embedding: str
    normalize: bool
    fit: LogRegFit | None  # None when the subset holds a single class
    seen: npt.NDArray[np.int64]  # global class index of each fitted class

    def predict(self, split: str) -> npt.NDArray[np.int64]:
        from harness.recipes.logreg import predict_logreg

        x = features(self.ds.embeddings(split, self.embedding), normalize=self.normalize)
        if self.fit is None:
            return np.full(len(x), self.seen[0], np.int64)
        return self.seen[predict_logreg(self.fit, x)]


@register_kind(
    "linear_probe",
    params=LinearProbeParams,
    task_types=("classification",),
    libraries=("numpy", "torch"),
    uses_embeddings=True,
)
def train(*, ctx: TrainContext, seed: int) -> LinearPredictor:
    """Fit on the embeddings of exactly ``ctx.rows`` of the pool."""
    import torch

    from harness.recipes.logreg import fit_logreg

    p: LinearProbeParams = ctx.params
    x = features(subset_features(ctx, p.embedding), normalize=p.normalize)
    y_global = ctx.targets(ctx.pool, ctx.rows)
    seen, y = np.unique(y_global, return_inverse=True)
    if len(seen) == 1:
        log.info("subset holds one class; the probe predicts it everywhere")
        return LinearPredictor(ctx.ds, p.embedding, p.normalize, None, seen.astype(np.int64))
    dtype = torch.float64 if p.dtype == "float64" else torch.float32
    fit = fit_logreg(
        torch.from_numpy(x).to(ctx.device, dtype),
        torch.from_numpy(y.astype(np.int64)).to(ctx.device),
        n_classes=len(seen),
        C=p.C,
        tol=p.tol,
        max_iter=p.max_iter,
    )
    if not fit.converged:
        log.warning(
            "linear probe stopped after %d iterations, |grad| %.2e", fit.n_iter, fit.grad_max
        )
    return LinearPredictor(ctx.ds, p.embedding, p.normalize, fit, seen.astype(np.int64))


def features(x: npt.NDArray[Any], *, normalize: bool) -> npt.NDArray[np.float32]:
    """Rows as float32, scaled to unit length when ``normalize`` (zero rows stay zero)."""
    from harness.embed.base import l2_normalise  # not at import: it loads the embed package

    return l2_normalise(x) if normalize else np.asarray(x, dtype=np.float32)


def subset_features(ctx: TrainContext, kind: str) -> npt.NDArray[Any]:
    emb = ctx.ds.embeddings(ctx.pool, kind)
    if len(emb) != ctx.ds.pool_size:
        raise DataNotFound(
            f"{kind} embeddings of {ctx.ds.spec.name}/{ctx.pool} have {len(emb)} rows, "
            f"the pool has {ctx.ds.pool_size}; re-run `tdc-harness embed {ctx.ds.spec.name}`"
        )
    # Fancy indexing a memory map reads only the subset's rows.
    return np.ascontiguousarray(emb[ctx.rows])
