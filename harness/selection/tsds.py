"""TSDS: task-specific data selection by optimal transport with a density-based diversity term.

Our implementation of the idea of Liu et al. (2024), "TSDS: Data Selection for Task-Specific
Model Finetuning". The selection is a probability distribution ``p`` over pool rows that
(a) transports cheaply onto the query set and (b) does not pile its mass on near-duplicates;
the subset is ``budget`` draws from ``p`` without replacement.

1. Each query point j may send its mass 1/m only to its K nearest pool rows N(j) (cosine,
   exact FAISS search); cost C_ji = 1 - cos(q_j, x_i).
2. Diversity: a Gaussian kernel density of each neighbour within its neighbourhood,
   rho_ji = sum_{l in N(j)} exp(-|x_i - x_l|^2 / (2 h^2))  (>= 1: the point itself).
3. Minimising  sum_ji g_ji (C_ji + t * b * log rho_ji) + t * sum_ji g_ji log g_ji  over
   transport plans g whose query marginal is uniform (a semi-relaxed entropic OT problem)
   has the closed form  g_ji = (1/m) exp(-C_ji / t) rho_ji^-b / sum_{l in N(j)} (same for l).
   With b = 1 a group of d identical candidates, with nothing else within the bandwidth,
   receives the mass one of them alone would.
4. p_i = sum_j g_ji; draw ``budget`` distinct rows with probability proportional to p
   (Gumbel top-k, i.e. successive sampling without replacement).

K defaults to ``oversample * budget / m`` and doubles (up to ``max_neighbours``) until the
rows with positive probability outnumber the budget; if they still do not, the subset is
that whole support and ``natural_size`` says how many rows it has.

    out = selector("tsds")(ctx, 430, rng=rng, temperature=0.05, diversity=1.0)
"""

from __future__ import annotations

import logging
import math
from typing import Literal

import numpy as np
import numpy.typing as npt

from harness.selection import faiss_ops
from harness.selection.context import TEXT_KIND, Captions, SelectionContext
from harness.selection.registry import SELECTORS, SelectionOutput, output

log = logging.getLogger(__name__)


def neighbourhoods(
    ctx: SelectionContext,
    x: npt.NDArray[np.float32],
    q: npt.NDArray[np.float32],
    *,
    k: int,
    need: int,
    max_k: int,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """k-NN of every query point, k doubled until the union of neighbourhoods has ``need``."""
    k = max(1, min(k, max_k, len(x)))
    while True:
        sims, ids = faiss_ops.knn_cosine(q, x, k=k, progress=ctx.progress)
        support = len(np.unique(ids))
        if support >= need or k >= min(max_k, len(x)):
            return sims, ids
        log.info("tsds: %d rows in %d-NN neighbourhoods < %d; doubling k", support, k, need)
        k = min(2 * k, max_k, len(x))


def transport_mass(
    ctx: SelectionContext,
    x: npt.NDArray[np.float32],
    sims: npt.NDArray[np.float32],
    ids: npt.NDArray[np.int64],
    *,
    temperature: float,
    bandwidth: float,
    diversity: float,
) -> npt.NDArray[np.float64]:
    """Probability of every pool row: the column marginal of the closed-form transport plan."""
    m = len(ids)
    p = np.zeros(len(x), dtype=np.float64)
    for j in range(m):
        cost = 1.0 - sims[j].astype(np.float64)
        logw = -(cost - cost.min()) / temperature
        if diversity > 0:
            logw -= diversity * np.log(_local_density(x, ids[j], bandwidth))
        w = np.exp(logw - logw.max())
        np.add.at(p, ids[j], w / (w.sum() * m))
        if (j + 1) % 64 == 0 or j + 1 == m:
            ctx.progress("transport plan", j + 1, m)
    return p


def _local_density(
    x: npt.NDArray[np.float32], rows: npt.NDArray[np.int64], bandwidth: float
) -> npt.NDArray[np.float64]:
    """Gaussian kernel density of each row among ``rows`` (unit vectors: |a-b|^2 = 2-2cos)."""
    z = faiss_ops.normalize(x[np.sort(rows)])[np.argsort(np.argsort(rows))]
    sq = np.clip(2.0 - 2.0 * (z @ z.T), 0.0, None)
    dens: npt.NDArray[np.float64] = np.exp(-sq / (2.0 * bandwidth**2)).sum(axis=1, dtype=np.float64)
    return dens


def sample_without_replacement(
    p: npt.NDArray[np.float64], k: int, rng: np.random.Generator
) -> npt.NDArray[np.int64]:
    """``k`` distinct indices drawn with probability proportional to ``p`` (Gumbel top-k)."""
    support = np.flatnonzero(p > 0)
    if len(support) <= k:
        return support.astype(np.int64)
    keys = np.log(p[support]) + rng.gumbel(size=len(support))
    return support[faiss_ops.top_k(keys, k)].astype(np.int64)


@SELECTORS.register("tsds")
def tsds(
    ctx: SelectionContext,
    budget: int,
    *,
    rng: np.random.Generator,
    features: Literal["image", "text"] = "image",
    captions: Captions = "nolabel",
    neighbours: int | None = None,
    oversample: float = 2.0,
    max_neighbours: int = 2048,
    temperature: float = 0.05,
    bandwidth: float = 0.2,
    diversity: float = 1.0,
) -> SelectionOutput:
    """TSDS (see the module docstring): OT alignment to the query set plus KDE diversity."""
    _check_positive(temperature=temperature, bandwidth=bandwidth, oversample=oversample)
    kind = "image" if features == "image" else TEXT_KIND[captions]
    x, q = ctx.features(kind)
    k0 = neighbours or math.ceil(oversample * budget / len(q))
    sims, ids = neighbourhoods(ctx, x, q, k=k0, need=budget, max_k=max_neighbours)
    p = transport_mass(
        ctx, x, sims, ids, temperature=temperature, bandwidth=bandwidth, diversity=diversity
    )
    rows = sample_without_replacement(p, budget, rng)
    support = int(np.count_nonzero(p))
    note = "budget drawn from the TSDS distribution without replacement"
    if support < budget:
        note = f"only {support} rows have positive probability: fewer than the budget {budget}"
    return output(
        rows, natural_size=support, note=note, neighbours=int(ids.shape[1]), features=kind
    )


def _check_positive(**values: float) -> None:
    from submissions.errors import ConfigError

    bad = [f"{k}={v}" for k, v in values.items() if not v > 0]
    if bad:
        raise ConfigError(f"tsds: parameters must be > 0: {', '.join(bad)}")
