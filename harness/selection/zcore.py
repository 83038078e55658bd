"""``zcore``: zero-shot coreset selection (Griffin et al., 2024), with an exact budget.

What the research filter (``baselines/filters/zcore_filter.py``, over the ZCore reference
code) computes, sample by sample:

1. pick ``sample_dim`` random embedding dimensions and a random point there, each coordinate
   drawn from a triangular distribution (min, median, max of the pool in that dimension);
2. **coverage**: the pool row nearest to that point (L1 distance in those dimensions) gains 1;
3. **redundancy**: that row's ``redund_nn`` nearest other rows (same distance) lose a total
   of 1, split in proportion to ``1 / distance ** redund_exp``; an exact duplicate loses 1.

Scores start uniform in [0, 1) (``rand_init``), are min-max normalised, and the ``budget``
highest are kept (ties to the lower row id). No labels and no query set are used.

The loop is the reference's, vectorised: samples are drawn one by one from the seeded
generator (so the result does not depend on batching), then evaluated ``batch`` at a time on
a dimension-major copy of the pool with torch (``topk`` instead of a full ``argsort``).
Cost is about ``n_sample x pool rows``: 1,000 samples of a 1M x 512 pool take seconds.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from harness.selection import faiss_ops
from harness.selection.context import SelectionContext
from harness.selection.registry import SELECTORS, SelectionOutput, output

BATCH = 16


def draw_samples(
    x_min: npt.NDArray[np.float32],
    x_med: npt.NDArray[np.float32],
    x_max: npt.NDArray[np.float32],
    *,
    n_sample: int,
    sample_dim: int,
    rng: np.random.Generator,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """(dims (n_sample, sample_dim), points (n_sample, sample_dim)), drawn sample by sample.

    Dimensions where the pool is constant cannot carry a triangular draw (the reference
    fails there); they are never chosen.
    """
    usable = np.flatnonzero(x_max > x_min)
    dims = np.empty((n_sample, sample_dim), np.int64)
    points = np.empty((n_sample, sample_dim), np.float64)
    for i in range(n_sample):
        d = usable[rng.choice(len(usable), sample_dim, replace=False)]
        dims[i], points[i] = d, rng.triangular(x_min[d], x_med[d], x_max[d])
    return dims, points


def sample_scores(
    xt: Any, dims: npt.NDArray[np.int64], points: npt.NDArray[np.float64], *,
    redund_nn: int, redund_exp: float,
) -> npt.NDArray[np.float64]:  # fmt: skip
    """The coverage and redundancy deltas of a batch of samples over the pool (torch)."""
    import torch

    n = xt.shape[1]
    delta = torch.zeros(n, dtype=torch.float64)
    cols = xt[torch.from_numpy(dims)]  # (batch, sample_dim, n)
    target = torch.from_numpy(points).to(cols.dtype)[:, :, None]
    covered = (cols - target).abs().sum(dim=1).argmin(dim=1)  # (batch,)
    delta.index_add_(0, covered, torch.ones(len(covered), dtype=torch.float64))
    here = torch.gather(cols, 2, covered[:, None, None].expand(-1, cols.shape[1], 1))
    nn_dist = (cols - here).abs().sum(dim=1)  # (batch, n)
    k = min(redund_nn + 1, n)
    dist, idx = torch.topk(nn_dist, k, dim=1, largest=False, sorted=True)
    for b in range(len(dims)):  # the first neighbour is the covered row itself
        d, j = dist[b, 1:].double(), idx[b, 1:]
        if len(d) == 0:
            continue
        if d[0] == 0:
            delta[j[0]] -= 1.0
        else:
            w = 1.0 / d**redund_exp
            delta.index_add_(0, j, -(w / w.sum()))
    return delta.numpy()


def zcore_scores(
    x: npt.NDArray[np.floating[Any]], *, n_sample: int, sample_dim: int, redund_nn: int,
    redund_exp: float, rand_init: bool, rng: np.random.Generator,
) -> npt.NDArray[np.float64]:  # fmt: skip
    """Min-max normalised ZCore scores of every row of ``x`` (see the module docstring)."""
    import torch

    xt_np = np.ascontiguousarray(np.asarray(x, dtype=np.float32).T)  # dimension-major
    dims, points = draw_samples(
        xt_np.min(axis=1), np.median(xt_np, axis=1), xt_np.max(axis=1),
        n_sample=n_sample, sample_dim=min(sample_dim, xt_np.shape[0]), rng=rng,
    )  # fmt: skip
    n = xt_np.shape[1]
    scores = np.asarray(rng.uniform(0, 1, n) if rand_init else np.zeros(n), dtype=np.float64)
    xt = torch.from_numpy(xt_np)
    for lo in range(0, n_sample, BATCH):
        hi = min(lo + BATCH, n_sample)
        scores += sample_scores(xt, dims[lo:hi], points[lo:hi], redund_nn=redund_nn,
                                redund_exp=redund_exp)  # fmt: skip
    span = scores.max() - scores.min()
    return (scores - scores.min()) / (span if span > 0 else 1.0)


@SELECTORS.register("zcore")
def zcore(
    ctx: SelectionContext,
    budget: int,
    *,
    rng: np.random.Generator,
    n_sample: int = 1000,
    sample_dim: int = 2,
    redund_nn: int = 1000,
    redund_exp: float = 4.0,
    rand_init: bool = True,
    features: str = "image",
) -> SelectionOutput:
    """The ``budget`` rows with the highest zero-shot coverage-minus-redundancy score."""
    x = np.asarray(ctx.pool(features), dtype=np.float32)
    ctx.progress("zcore samples", 0, n_sample)
    scores = zcore_scores(x, n_sample=n_sample, sample_dim=sample_dim, redund_nn=redund_nn,
                          redund_exp=redund_exp, rand_init=rand_init, rng=rng)  # fmt: skip
    ctx.progress("zcore samples", n_sample, n_sample)
    rows = faiss_ops.top_k(scores, budget)
    return output(rows, natural_size=budget, n_sample=n_sample,
                  min_score=float(scores[rows].min()) if len(rows) else None)  # fmt: skip
