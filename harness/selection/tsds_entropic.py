"""``tsds_entropic``: our closed-form variant of the TSDS idea (not the published algorithm).

The idea of Liu et al. (2024), "TSDS: Data Selection for Task-Specific Model Finetuning",
solved differently: an entropic, semi-relaxed transport plan with its own temperature and a
Gaussian density term, and neighbourhoods sized to the budget. The published algorithm (the
research code's) is ``tsds`` (harness.selection.tsds); the two select different subsets
(Jaccard ~0.2 on the demo). The selection is a probability distribution ``p`` over pool rows that
(a) transports cheaply onto the query set and (b) does not pile its mass on near-duplicates;
the subset is ``budget`` draws from ``p`` without replacement.

1. Each query point j may send its mass 1/m only to its K nearest pool rows N(j) (cosine,
   exact FAISS search); cost C_ji = 1 - cos(q_j, x_i).
2. Diversity: a Gaussian kernel density of each neighbour within its neighbourhood,
   rho_ji = sum_{l in N(j)} exp(-|x_i - x_l|^2 / (2 h^2))  (>= 1: the point itself),
   estimated from ``kde_sample`` evenly spaced members when K is larger (cost O(K * s * d)).
3. Minimising  sum_ji g_ji (C_ji + t * b * log rho_ji) + t * sum_ji g_ji log g_ji  over
   transport plans g whose query marginal is uniform (a semi-relaxed entropic OT problem)
   has the closed form  g_ji = (1/m) exp(-C_ji / t) rho_ji^-b / sum_{l in N(j)} (same for l).
   With b = 1 a group of d identical candidates, with nothing else within the bandwidth,
   receives the mass one of them alone would.
4. p_i = sum_j g_ji; draw ``budget`` distinct rows with probability proportional to p
   (Gumbel top-k, i.e. successive sampling without replacement).

K is the larger of ``oversample * budget / m`` and the smallest K whose neighbourhoods cover
the budget, at most ``max_neighbours`` (one search at that size, then the prefix); if even
those do not cover the budget, the subset is the whole support and ``natural_size`` says how
many rows it has. ``neighbours`` fixes K instead.

    out = selector("tsds_entropic")(ctx, 430, rng=rng, temperature=0.05, diversity=1.0)
"""

from __future__ import annotations

import logging
import math
import os
from typing import Literal

import numpy as np
import numpy.typing as npt

from harness.selection import faiss_ops
from harness.selection.context import TEXT_KIND, Captions, SelectionContext
from harness.selection.registry import SELECTORS, SelectionOutput, output

log = logging.getLogger(__name__)

# Query groups of the transport plan: fixed, so results do not depend on the core count.
_GROUPS = 4


def neighbourhoods(
    ctx: SelectionContext,
    x: npt.NDArray[np.float32],
    q: npt.NDArray[np.float32],
    *,
    k_min: int,
    need: int,
    max_k: int,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """The k-NN of every query point for the smallest k >= k_min whose union has ``need`` rows.

    One exact search at ``max_k`` (its cost is the pass over the pool, nearly the same for
    any k), then the smallest prefix that is large enough: the union size of every prefix
    comes from one ``np.unique`` over the first column each row appears in.
    """
    k_max = max(1, min(max_k, len(x)))
    sims, ids = faiss_ops.knn_cosine(q, x, k=k_max, progress=ctx.progress)
    _, first = np.unique(ids.T.ravel(), return_index=True)  # column-major: index // m = column
    union = np.cumsum(np.bincount(first // len(q), minlength=k_max))  # union[k-1] for prefix k
    k = max(min(k_min, k_max), int(np.searchsorted(union, need)) + 1)
    k = min(k, k_max)
    if union[k - 1] < need:
        log.info("tsds: %d rows in the %d-NN neighbourhoods < %d", union[k - 1], k, need)
    return sims[:, :k], ids[:, :k]


def transport_mass(
    ctx: SelectionContext,
    x: npt.NDArray[np.float32],
    sims: npt.NDArray[np.float32],
    ids: npt.NDArray[np.int64],
    *,
    temperature: float,
    bandwidth: float,
    diversity: float,
    kde_sample: int = 128,
) -> npt.NDArray[np.float64]:
    """Probability of every pool row: the column marginal of the closed-form transport plan.

    The query points are split into a fixed number of groups (so the floating-point sums do
    not depend on the machine) run on a thread pool: the per-neighbourhood work is small
    GEMMs, which run best one BLAS thread each, side by side.
    """
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    m = len(ids)
    groups = [np.arange(g, m, _GROUPS) for g in range(_GROUPS)]

    def run(group: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        part = np.zeros(len(x), dtype=np.float64)
        for j in group:
            cost = 1.0 - sims[j].astype(np.float64)
            logw = -(cost - cost.min()) / temperature
            if diversity > 0:
                logw -= diversity * np.log(_local_density(x, ids[j], bandwidth, kde_sample))
            w = np.exp(logw - logw.max())
            np.add.at(part, ids[j], w / (w.sum() * m))
        return part

    workers = max(1, min(_GROUPS, os.cpu_count() or 1))
    p = np.zeros(len(x), dtype=np.float64)
    with threadpool_limits(limits=1), ThreadPoolExecutor(workers) as pool:
        for i, part in enumerate(pool.map(run, groups)):  # results in group order
            p += part
            ctx.progress("transport plan", i + 1, len(groups))
    return p


def _local_density(
    x: npt.NDArray[np.float32], rows: npt.NDArray[np.int64], bandwidth: float, sample: int
) -> npt.NDArray[np.float64]:
    """Gaussian kernel density of each row among ``rows`` (unit vectors: |a-b|^2 = 2-2cos).

    rho_i = 1 + sum_{l != i} k(x_i, x_l). With more than ``sample`` rows the sum runs over
    ``sample`` evenly spaced members (by similarity rank) scaled up to all of them, which keeps
    the cost at O(K * sample * d) per neighbourhood instead of O(K^2 * d).
    """
    z = faiss_ops.normalize(x[np.sort(rows)])[np.argsort(np.argsort(rows))]
    ref = np.unique(np.linspace(0, len(z) - 1, min(sample, len(z))).astype(np.int64))
    kernel = np.exp(-np.clip(2.0 - 2.0 * (z @ z[ref].T), 0.0, None) / (2.0 * bandwidth**2))
    kernel[ref, np.arange(len(ref))] = 0.0  # the self term is the 1 below
    others = np.full(len(z), len(ref), dtype=np.float64)  # sampled members other than i
    others[ref] -= 1
    scale = (len(z) - 1) / np.maximum(others, 1)
    dens: npt.NDArray[np.float64] = 1.0 + scale * kernel.sum(axis=1, dtype=np.float64)
    return dens


@SELECTORS.register("tsds_entropic")
def tsds_entropic(
    ctx: SelectionContext,
    budget: int,
    *,
    rng: np.random.Generator,
    features: Literal["image", "text"] = "image",
    captions: Captions = "nolabel",
    neighbours: int | None = None,
    oversample: float = 4.0,
    max_neighbours: int = 2048,
    temperature: float = 0.05,
    bandwidth: float = 0.2,
    diversity: float = 1.0,
    kde_sample: int = 128,
) -> SelectionOutput:
    """Entropic OT alignment to the query set plus a Gaussian density term (module docstring)."""
    _check_positive(temperature=temperature, bandwidth=bandwidth, oversample=oversample)
    kind = "image" if features == "image" else TEXT_KIND[captions]
    x, q = ctx.features(kind)
    if neighbours:  # a fixed neighbourhood size
        sims, ids = neighbourhoods(ctx, x, q, k_min=neighbours, need=0, max_k=neighbours)
    else:
        k_min = math.ceil(oversample * budget / len(q))
        sims, ids = neighbourhoods(ctx, x, q, k_min=k_min, need=budget, max_k=max_neighbours)
    p = transport_mass(
        ctx,
        x,
        sims,
        ids,
        temperature=temperature,
        bandwidth=bandwidth,
        diversity=diversity,
        kde_sample=kde_sample,
    )
    rows = faiss_ops.sample_without_replacement(p, budget, rng)
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
        raise ConfigError(f"tsds_entropic: parameters must be > 0: {', '.join(bad)}")
