"""``tsds``: TSDS (Liu et al., 2024) as published and as the research code computes it.

"TSDS: Data Selection for Task-Specific Model Finetuning": a probability distribution over the
pool that aligns with the query set by optimal transport over k-nearest-neighbour
neighbourhoods, regularised by kernel density so near-duplicates share mass. The research
code (``baselines/filters/tsds_filter.py``, parameters from its ``tsds_data/config.yaml``)
computes it in four steps, which this module follows:

1. **Neighbourhoods.** Each of the M query points' ``K = min(max_k, n // 10)`` nearest pool
   rows by L2 distance (the embeddings are unit vectors, so this is cosine order), sorted.
2. **Density.** For every pool row in those neighbourhoods (their union U), the kernel
   density over its ``min(kde_k, n // 10)`` nearest rows *within U* (itself included):
   ``kde = sum (1 - d^2 / sigma^2)_+`` (Epanechnikov, the research's) or
   ``sum exp(-d^2 / (2 sigma^2))`` (``kernel: gaussian``); ``sigma: 0`` turns it off (all 1).
3. **Transport.** The research's exact water-filling: a level ``s`` rises over the queries'
   neighbour lists (a heap ordered by ``sum_{l<=k} 1 / kde_jl``), each neighbour getting mass
   ``1 / (M s kde)``, until ``alpha / C * cost >= (1 - alpha) * M``; each query's remaining
   mass goes to its next neighbour. The result is ``p`` over the pool.
4. **Draw.** The research draws 100 rows *with* replacement; a benchmark subset has exactly
   the budget, distinct: ``budget`` rows without replacement with probability proportional to
   ``p`` (Gumbel top-k), seeded. If fewer rows than the budget have mass, the subset is the
   whole support plus the next rows the level search would reach if it went on (the
   transport level raised further); ``natural_size`` is the support.

Nearest neighbours are exact (FAISS brute force) for step 1 at any size, and for step 2 while
U has at most ``exact_limit`` rows; above that step 2 uses an IVF index (``nlist`` about
sqrt(|U|), ``nprobe`` lists searched, a range search of radius sigma), as the research does
throughout. The metadata says which.

    out = selector("tsds")(ctx, 430, rng=rng)                       # the research's parameters
    out = selector("tsds")(ctx, 430, rng=rng, alpha=0.3, sigma=0)   # no density term
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from harness.selection import faiss_ops
from harness.selection.context import TEXT_KIND, Captions, SelectionContext
from harness.selection.kde import Kernel, KernelDensity
from harness.selection.registry import SELECTORS, SelectionOutput, output
from submissions.errors import ConfigError

log = logging.getLogger(__name__)


def neighbourhoods(
    x: npt.NDArray[np.float32], q: npt.NDArray[np.float32], k: int, ctx: SelectionContext
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """(L2 distances, pool rows) of every query's ``k`` nearest rows, nearest first."""
    sims, ids = faiss_ops.knn_cosine(q, x, k=k, progress=ctx.progress)  # best first
    return np.sqrt(np.clip(2.0 - 2.0 * sims.astype(np.float64), 0.0, None)), ids


@dataclass
class Fill:
    """Where the level search stopped: each query's last full neighbour, the level, and the
    heap as it was (to go on raising the level when the support is short of the budget)."""

    last: list[int]
    level: float
    heap: list[tuple[float, int, int]]
    weights: list[list[float]]
    deepest: int  # the deepest neighbour index the search looked at

    def beyond(self, ids: npt.NDArray[np.int64], *, complete: bool) -> Iterator[int]:
        """Pool rows in the order a still higher level would reach them; -1 (then nothing)
        where that order needs a neighbour past the end of a list that is not ``complete``."""
        heap, w, k = list(self.heap), self.weights, ids.shape[1]
        while heap:
            count, ck, j = heapq.heappop(heap)
            if ck + 1 < k:
                yield int(ids[j, ck + 1])
            elif not complete:
                yield -1
                return
            if ck < k - 2 or (not complete and ck < k - 1):
                heapq.heappush(heap, (count + w[j][ck + 1], ck + 1, j))


def water_fill(
    dists: npt.NDArray[np.float64], kdes: npt.NDArray[np.float64], *, alpha: float, C: float
) -> Fill:
    """The research's level search (step 3 of the module docstring)."""
    m, k = dists.shape
    d, w = dists.tolist(), (1.0 / kdes).tolist()
    last = [0] * m
    weighted = [d[j][0] * w[j][0] for j in range(m)]
    heap = [(w[j][0], 0, j) for j in range(m)]
    heapq.heapify(heap)
    cost = [0.0] * m
    total, s, deepest = 0.0, 0.0, 0
    while heap:
        count, ck, j = heapq.heappop(heap)
        s, deepest = count, max(deepest, ck + 1)
        total -= cost[j]
        cost[j] = d[j][ck + 1] * count - weighted[j]
        total += cost[j]
        if alpha / C * total >= (1 - alpha) * m:  # the research's test, as written
            heapq.heappush(heap, (count, ck, j))  # kept for Fill.beyond
            break
        last[j] = ck
        if ck < k - 2:
            heapq.heappush(heap, (count + w[j][ck + 1], ck + 1, j))
            weighted[j] += d[j][ck + 1] * w[j][ck + 1]
    return Fill(last, s, heap, w, deepest)


def probabilities(
    ids: npt.NDArray[np.int64], kdes: npt.NDArray[np.float64], last: list[int], s: float, n: int
) -> npt.NDArray[np.float64]:
    """Mass 1 / (M s kde) on each query's neighbours up to ``last``, the rest of its 1 / M on
    the next one."""
    m, k = ids.shape
    cols = np.arange(k)
    taken = cols[None, :] <= np.asarray(last)[:, None]
    mass = np.where(taken, 1.0 / (m * s * kdes), 0.0)
    p = np.zeros(n)
    np.add.at(p, ids[taken], mass[taken])
    rest = np.maximum(1.0 / m - mass.sum(axis=1), 0.0)
    np.add.at(p, ids[np.arange(m), np.asarray(last) + 1], rest)
    return p


def tsds_probabilities(
    x: npt.NDArray[np.float32],
    q: npt.NDArray[np.float32],
    *,
    alpha: float,
    C: float,
    sigma: float,
    max_k: int,
    kde_k: int,
    kernel: Kernel,
    exact_limit: int,
    nprobe: int,
    ctx: SelectionContext,
    budget: int = 0,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], dict[str, Any]]:
    """``p`` over the pool (steps 1-3 of the module docstring), the rows without mass that
    fill a short support up to ``budget`` (see :func:`fill_rows`), and what was done.

    Densities are computed only for the neighbours the level search can reach: it runs on
    the first ``w`` neighbours of every query (w = 64, doubled while the search, or the
    filling of a short support, reached the end of them), which gives exactly the result of
    running it on all K: the rows beyond w are never looked at.
    """
    n = len(x)
    k = min(n, max(2, min(max_k, n // 10)))
    dists, ids = neighbourhoods(x, q, k, ctx)
    union, where = np.unique(ids, return_inverse=True)
    where = where.reshape(ids.shape)
    info: dict[str, Any] = {"neighbours": k, "union": len(union), "knn": "exact"}
    kde = None
    if sigma > 0:
        z = faiss_ops.normalize(x[union])
        kde = KernelDensity(
            z,
            k=max(1, min(kde_k, n // 10)),
            sigma=sigma,
            kernel=kernel,
            exact_limit=exact_limit,
            nprobe=nprobe,
        )
    width = min(k, 64)
    while True:
        if kde is None:
            kdes = np.ones((len(ids), width))
        else:
            kde.compute(where[:, :width].ravel())
            kdes = kde.values[where[:, :width]]
        fill = water_fill(dists[:, :width], kdes, alpha=alpha, C=C)
        p = probabilities(ids[:, :width], kdes, fill.last, fill.level, n)
        extra = fill_rows(fill, ids[:, :width], p, budget, complete=width == k)
        if width == k or (fill.deepest < width - 2 and extra is not None):
            break
        width = min(k, 2 * width)
    info |= {
        "density": kde.method if kde else "off",
        "densities_computed": 0 if kde is None else int(np.count_nonzero(~np.isnan(kde.values))),
        "neighbours_used": width,  # the first columns the search and the fill needed
        "level": fill.level,
        "mean_last_neighbour": float(np.mean(fill.last)),
    }
    return p, np.empty(0, np.int64) if extra is None else extra, info


# The parameters of the method that the probabilities depend on (``features`` and ``captions``
# choose the input arrays).
PROBABILITY_PARAMS = ("alpha", "C", "sigma", "max_k", "kde_k", "kernel", "exact_limit", "nprobe")


def probabilities_for(
    x: npt.NDArray[np.float32],
    q: npt.NDArray[np.float32],
    params: Mapping[str, Any],
    *,
    ctx: SelectionContext,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], dict[str, Any]]:
    """:func:`tsds_probabilities` with the method's parameters as configured, e.g.
    ``load_baselines(...).method("tsds").resolved_params() | {"exact_limit": 10**9}``."""
    return tsds_probabilities(x, q, ctx=ctx, **{k: params[k] for k in PROBABILITY_PARAMS})


@SELECTORS.register("tsds")
def tsds(
    ctx: SelectionContext,
    budget: int,
    *,
    rng: np.random.Generator,
    alpha: float = 0.5,
    C: float = 5.0,
    sigma: float = 0.75,
    max_k: int = 5000,
    kde_k: int = 1000,
    kernel: Kernel = "epanechnikov",
    features: Literal["image", "text"] = "image",
    captions: Captions = "nolabel",
    exact_limit: int = 50_000,
    nprobe: int = 2,
) -> SelectionOutput:
    """TSDS as published (module docstring); exactly ``budget`` rows drawn without replacement."""
    if not 0 < alpha < 1 or C <= 0 or sigma < 0 or max_k < 2 or kde_k < 1:
        got = f"alpha={alpha}, C={C}, sigma={sigma}, max_k={max_k}, kde_k={kde_k}"
        raise ConfigError(
            f"tsds: need 0 < alpha < 1, C > 0, sigma >= 0, max_k >= 2, kde_k >= 1; got {got}"
        )
    kind = "image" if features == "image" else TEXT_KIND[captions]
    x, q = ctx.features(kind)
    p, extra, info = tsds_probabilities(
        x,
        q,
        alpha=alpha,
        C=C,
        sigma=sigma,
        max_k=max_k,
        kde_k=kde_k,
        kernel=kernel,
        exact_limit=exact_limit,
        nprobe=nprobe,
        ctx=ctx,
        budget=budget,
    )
    rows = faiss_ops.sample_without_replacement(p, budget, rng)
    support = int(np.count_nonzero(p))
    note = "budget drawn without replacement from the TSDS probabilities"
    if len(extra):
        rows = np.sort(np.concatenate([rows, extra])).astype(np.int64)
        note = (
            f"{support} rows have probability, fewer than the budget; the other "
            f"{len(extra)} are the next rows a higher transport level reaches"
        )
    meta = {"filled": len(extra), "note": note, "features": kind}
    return output(rows, natural_size=support, **meta, **info)


def fill_rows(
    fill: Fill,
    ids: npt.NDArray[np.int64],
    p: npt.NDArray[np.float64],
    budget: int,
    *,
    complete: bool,
) -> npt.NDArray[np.int64] | None:
    """When fewer than ``budget`` rows have mass, the rows without mass a higher transport
    level would reach first, as many as are missing (empty when none are); ``None`` when
    finding them needs neighbours past the end of lists that are not ``complete``."""
    need = budget - int(np.count_nonzero(p))
    out: list[int] = []
    if need <= 0:
        return np.empty(0, np.int64)
    taken = set(np.flatnonzero(p).tolist())
    for row in fill.beyond(ids, complete=complete):
        if row < 0:
            return None
        if row not in taken:
            taken.add(row)
            out.append(row)
            if len(out) == need:
                break
    return np.asarray(out, dtype=np.int64)
