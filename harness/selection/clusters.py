"""Cluster matching: ``image_based``, ``text_based``, ``image_clip``.

As the research code does: k-means the pool's embeddings (L2 k-means with FAISS, ``k=1000``
by default, at most one centroid per 39 pool rows, the number used in the metadata); every
query point votes for the centroid with the largest inner product; the pool rows whose own
such centroid was voted for are the candidates. ``text_based`` clusters caption embeddings.
Unlike the research (which keeps every candidate), a benchmark subset meets its budget:
when there are more candidates than the budget, each voted cluster gets a share of the budget
proportional to its query votes and keeps its rows most similar to the mean of its voting
query points (ties to the lower row id): deterministic, and the subset's cluster histogram
follows the query set's. Fewer candidates than the budget are returned as they are
(``natural_size`` < budget). k-means is trained on at most 256 rows per centroid (faiss's
default; the research uses up to 5,000), with a seed drawn from the selection seed (the
research: 0).

    out = selector("image_based")(ctx, 430, rng=rng, n_clusters=1000)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from harness.selection import faiss_ops
from harness.selection.context import CLIP_SCORE_KIND, TEXT_KIND, Captions, SelectionContext
from harness.selection.labels import allocate
from harness.selection.registry import SELECTORS, SelectionOutput, output

# faiss wants >= 39 training points per centroid; fewer makes a cluster a handful of points.
MIN_ROWS_PER_CLUSTER = 39


@dataclass(frozen=True)
class Clusters:
    candidates: npt.NDArray[np.int64]  # pool rows in a voted cluster, ascending
    cluster_of: npt.NDArray[np.int64]  # the cluster of each candidate
    votes: dict[int, int]  # voted cluster -> number of query points voting for it
    centres: npt.NDArray[np.float32]  # per cluster: mean of the unit query points voting for it
    info: dict[str, Any]


def cluster_candidates(
    ctx: SelectionContext, kind: str, *, n_clusters: int, niter: int, seed: int
) -> Clusters:
    """Pool rows whose k-means cluster is the nearest cluster of at least one query point."""
    x, q = ctx.features(kind)
    k = max(1, min(n_clusters, ctx.pool_size // MIN_ROWS_PER_CLUSTER))
    centroids = faiss_ops.kmeans_cosine(
        x, k=k, seed=seed, niter=niter, spherical=False, progress=ctx.progress
    )
    pool_cluster = faiss_ops.assign_nearest(x, centroids, progress=ctx.progress)
    query_cluster = faiss_ops.assign_nearest(q, centroids)
    voted, counts = np.unique(query_cluster, return_counts=True)
    candidates = np.flatnonzero(np.isin(pool_cluster, voted)).astype(np.int64)
    centres = np.zeros_like(centroids)
    np.add.at(centres, query_cluster, faiss_ops.normalize(q))
    info = {"n_clusters": len(centroids), "n_clusters_asked": n_clusters,
            "kmeans_seed": seed, "query_clusters": len(voted)}  # fmt: skip
    votes = {int(c): int(v) for c, v in zip(voted, counts, strict=True)}
    return Clusters(candidates, pool_cluster[candidates], votes, centres, info)


def cut_to_budget(
    ctx: SelectionContext, kind: str, found: Clusters, budget: int
) -> npt.NDArray[np.int64]:
    """The candidates, cut to ``budget`` in the query set's cluster proportions.

    Each voted cluster gets a share of the budget proportional to its query votes (largest
    remainder; a cluster with too few rows gives all it has and the rest is shared among the
    others), and within a cluster the rows most similar to the mean of the query points that
    voted for it are kept (one dot product per row). So the subset's cluster histogram follows
    the query set's instead of collapsing onto the single tightest cluster.
    """
    if len(found.candidates) <= budget:
        return found.candidates
    clusters = np.array(sorted(found.votes), dtype=np.int64)
    capacity = np.array([np.count_nonzero(found.cluster_of == c) for c in clusters])
    weights = np.array([found.votes[int(c)] for c in clusters], dtype=np.float64)
    share = allocate(budget, weights, capacity)
    x, _ = ctx.features(kind)
    sims = faiss_ops.rowwise_cosine(x, found.candidates, found.centres, found.cluster_of)
    keep = []
    for c, k in zip(clusters, share, strict=True):
        members = np.flatnonzero(found.cluster_of == c)
        keep.append(members[faiss_ops.top_k(sims[members], int(k))])
    return found.candidates[np.concatenate(keep)]


def _cluster_match(
    ctx: SelectionContext, kind: str, budget: int, rng: np.random.Generator, **kw: Any
) -> SelectionOutput:
    found = cluster_candidates(ctx, kind, seed=int(rng.integers(2**31 - 1)), **kw)
    rows = cut_to_budget(ctx, kind, found, budget)
    natural = len(found.candidates)
    ranked_by = "query-vote shares per cluster, nearest-query similarity within"
    return output(rows, natural_size=natural, note=_note(natural, budget, ranked_by), **found.info)


def _note(natural: int, budget: int, ranked_by: str) -> str:
    if natural > budget:
        return f"{natural} candidates cut to the budget by {ranked_by}"
    if natural < budget:
        return f"only {natural} candidates: fewer than the budget {budget}"
    return "candidates fill the budget exactly"


@SELECTORS.register("image_based")
def image_based(
    ctx: SelectionContext,
    budget: int,
    *,
    rng: np.random.Generator,
    n_clusters: int = 1000,
    niter: int = 20,
) -> SelectionOutput:
    """Pool rows in the image-embedding clusters nearest to the query images."""
    return _cluster_match(ctx, "image", budget, rng, n_clusters=n_clusters, niter=niter)


@SELECTORS.register("text_based")
def text_based(
    ctx: SelectionContext,
    budget: int,
    *,
    rng: np.random.Generator,
    n_clusters: int = 1000,
    niter: int = 20,
    captions: Captions = "nolabel",
) -> SelectionOutput:
    """Pool rows in the caption-embedding clusters nearest to the query captions."""
    kind = TEXT_KIND[captions]
    out = _cluster_match(ctx, kind, budget, rng, n_clusters=n_clusters, niter=niter)
    return out.with_metadata(captions=captions)


@SELECTORS.register("image_clip")
def image_clip(
    ctx: SelectionContext,
    budget: int,
    *,
    rng: np.random.Generator,
    n_clusters: int = 1000,
    niter: int = 20,
    clip_keep: float | None = None,
    captions: Captions = "nolabel",
) -> SelectionOutput:
    """``image_based`` intersected with the top of the pool by CLIP score.

    ``clip_keep=None`` (default) sets the CLIP cut adaptively: the candidates are ranked by
    CLIP score and the top ``budget`` kept, i.e. the intersection with the smallest top-CLIP
    set that fills the budget. A float is the research's fixed cut, the fraction of the pool
    the CLIP filter keeps before the intersection; the result can then be far smaller than
    the budget (``natural_size`` says so) and is cut to the budget by CLIP score if larger.
    """
    if clip_keep is not None and not 0 < clip_keep <= 1:
        from submissions.errors import ConfigError

        raise ConfigError(f"image_clip: clip_keep must be in (0, 1], got {clip_keep}")
    seed = int(rng.integers(2**31 - 1))
    found = cluster_candidates(ctx, "image", n_clusters=n_clusters, niter=niter, seed=seed)
    scores = np.asarray(ctx.pool(CLIP_SCORE_KIND[captions]), dtype=np.float32)
    both = found.candidates
    if clip_keep is not None:
        clip_top = faiss_ops.top_k(scores, int(np.floor(clip_keep * ctx.pool_size)))
        both = np.intersect1d(found.candidates, clip_top, assume_unique=True)
    rows = both[faiss_ops.top_k(scores[both], budget)]
    return output(
        rows,
        natural_size=len(both),
        note=_note(len(both), budget, "CLIP score"),
        captions=captions,
        **found.info,
    )
