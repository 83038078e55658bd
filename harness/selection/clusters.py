"""Cluster matching: ``image_based``, ``text_based``, ``image_clip``.

k-means the pool's embeddings (spherical, FAISS); every query point votes for its nearest
cluster; the pool rows of the voted clusters are the candidates. When there are more
candidates than the budget, they are ranked by cosine similarity to their nearest query
point and the top ``budget`` kept (ties to the lower row id), so the cut is deterministic and
keeps the candidates closest to some part of the query distribution. Fewer candidates than the
budget are returned as they are (``natural_size`` < budget in the metadata).

    out = selector("image_based")(ctx, 430, rng=rng, n_clusters=100)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from harness.selection import faiss_ops
from harness.selection.context import CLIP_SCORE_KIND, TEXT_KIND, Captions, SelectionContext
from harness.selection.registry import SELECTORS, SelectionOutput, output

# faiss wants >= 39 training points per centroid; fewer makes a cluster a handful of points.
MIN_ROWS_PER_CLUSTER = 39


@dataclass(frozen=True)
class Clusters:
    candidates: npt.NDArray[np.int64]
    info: dict[str, Any]


def cluster_candidates(
    ctx: SelectionContext, kind: str, *, n_clusters: int, niter: int, seed: int
) -> Clusters:
    """Pool rows whose k-means cluster is the nearest cluster of at least one query point."""
    x, q = ctx.features(kind)
    k = max(1, min(n_clusters, ctx.pool_size // MIN_ROWS_PER_CLUSTER))
    centroids = faiss_ops.kmeans_cosine(x, k=k, seed=seed, niter=niter, progress=ctx.progress)
    pool_cluster = faiss_ops.assign_nearest(x, centroids, progress=ctx.progress)
    voted = np.unique(faiss_ops.assign_nearest(q, centroids))
    candidates = np.flatnonzero(np.isin(pool_cluster, voted)).astype(np.int64)
    info = {"n_clusters": k, "query_clusters": len(voted), "candidates": len(candidates)}
    return Clusters(candidates, info)


def rank_to_budget(
    ctx: SelectionContext, kind: str, candidates: npt.NDArray[np.int64], budget: int
) -> npt.NDArray[np.int64]:
    """``candidates`` cut to ``budget`` by similarity to the nearest query point."""
    if len(candidates) <= budget:
        return candidates
    x, q = ctx.features(kind)
    sims = faiss_ops.max_cosine(x, q, rows=candidates, progress=ctx.progress)
    return candidates[faiss_ops.top_k(sims, budget)]


def _cluster_match(
    ctx: SelectionContext, kind: str, budget: int, rng: np.random.Generator, **kw: Any
) -> SelectionOutput:
    found = cluster_candidates(ctx, kind, seed=int(rng.integers(2**31 - 1)), **kw)
    rows = rank_to_budget(ctx, kind, found.candidates, budget)
    return output(
        rows,
        natural_size=len(found.candidates),
        note=_note(len(found.candidates), budget, "similarity to the nearest query point"),
        **found.info,
    )


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
    n_clusters: int = 100,
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
    n_clusters: int = 100,
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
    n_clusters: int = 100,
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
