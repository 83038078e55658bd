"""The research group's selection baselines, re-implemented on plain arrays for comparison.

Written from the research code (``hulkund/task_datacomp``, HEAD 3c096ca; read with
``git -C /work/.mirror/hulkund+task_datacomp/repo show HEAD:<path>``), with its parameters
and its quirks, so that our methods (``harness.selection``) can be checked against it. Each
function takes arrays in pool row order and returns pool rows (or TSDS probabilities); its
docstring names the research file and function it follows.

    from benchmarks import research_style as rs

    rows = rs.clip_score(scores, 0.1)                  # the research's own set (>= threshold)
    rows = rs.clip_score(scores, 0.1, budget=430)      # its ranking cut at our budget
    rows = rs.image_alignment(pool, query, 0.1, budget=430)
    rows = rs.image_based(pool, query, k=1000, seed=0) # every row of a voted cluster
    rows = rs.match_dist(pool_labels, query_labels, 0.1, rng=np.random.default_rng(0))
    p = rs.tsds_probabilities(pool, query)             # exact k-NN and density
    p = rs.research_tsds(pool, query)                  # faiss IVF searches, as the research
    rows = rs.tsds_draw(p, 100, rng=np.random.default_rng(0))   # with replacement

Quirks kept on purpose (they are what the research ran):

- Threshold methods (clip_score, image/text_alignment) keep ``score >= sorted[n]`` with
  ``n = int(N * fraction)``: the (n+1)-th best score, so n+1 rows (more with ties).
- ``random_filter`` is ``DataFrame.sample(frac, random_state=42)``: deterministic.
- ``match_dist`` and TSDS draw *with* replacement (unseeded global numpy in the research; a
  generator here); ``match_label`` and the cluster methods have no budget at all.
- Cluster methods train L2 k-means but assign by the largest inner product with the
  (non-unit) centroids.
- ``image_clip`` at the last revision that routed it (8f7fe2f) ignores its CLIP cut; the 2024
  version (39c2387) applied it but paired the kept uids with the first rows' clusters.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt

Rows = npt.NDArray[np.int64]
Floats = npt.NDArray[np.floating[Any]]


# --- threshold methods -------------------------------------------------------------------


def ranking(scores: npt.ArrayLike) -> Rows:
    """Rows by decreasing score, ties in pool order (the order a threshold mask lists them)."""
    s = np.asarray(scores, dtype=np.float64)
    return np.lexsort((np.arange(len(s)), -s)).astype(np.int64)


def threshold_keep(scores: npt.ArrayLike, fraction: float, *, budget: int | None = None) -> Rows:
    """``baselines/filters/utils.py: get_threshold`` and the ``>= threshold`` mask after it.

    ``budget=None``: the research's own set. ``budget``: its ranking cut at that many rows,
    to compare with a method that meets the budget exactly.
    """
    s = np.asarray(scores, dtype=np.float64)
    n = int(len(s) * fraction)
    threshold = -np.sort(-s)[n]  # index n: the (n+1)-th best score (an off-by-one)
    if budget is None:
        return np.flatnonzero(s >= threshold).astype(np.int64)
    return np.sort(ranking(s)[:budget])


def random_filter(pool_size: int, fraction: float, *, random_state: int = 42) -> Rows:
    """``baselines/filters/random_filter.py: load_uids_with_random_filter``.

    ``DataFrame.sample(frac=fraction, random_state=42)`` draws
    ``RandomState(42).choice(N, round(frac * N), replace=False)`` (pandas' implementation).
    """
    size = round(fraction * pool_size)
    rows = np.random.RandomState(random_state).choice(pool_size, size=size, replace=False)
    return np.sort(rows).astype(np.int64)


def clip_score(scores: npt.ArrayLike, fraction: float, *, budget: int | None = None) -> Rows:
    """``baselines/filters/clip_filter.py: load_uids_with_clip_score`` (``threshold=None``).

    ``scores`` is the research's ``similarity_score``: cosine(image, caption), and its
    captions name the class (our ``clip_score`` kind, not ``clip_score_nolabel``).
    """
    return threshold_keep(scores, fraction, budget=budget)


def summed_cosine(pool: Floats, query: Floats) -> npt.NDArray[np.float64]:
    """Per pool row, the sum of its cosine similarities to the query rows (float64).

    Computed once per distinct pool row and broadcast, so identical rows (captions repeat
    verbatim) get bit-identical scores and tie exactly, as the research's mask treats them.
    """
    unique, inverse = np.unique(np.asarray(pool, dtype=np.float64), axis=0, return_inverse=True)
    u = unique / np.linalg.norm(unique, axis=1, keepdims=True)
    q = np.asarray(query, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    sums: npt.NDArray[np.float64] = (u @ q.T).sum(axis=1)
    return sums[inverse.reshape(-1)]


def image_alignment(
    pool: Floats, query: Floats, fraction: float, *, budget: int | None = None
) -> Rows:
    """``baselines/filters/image_align_filter.py: load_uids_with_image_alignment``: summed
    cosine similarity of pool images to the query images, then the threshold."""
    return threshold_keep(summed_cosine(pool, query), fraction, budget=budget)


def text_alignment(
    pool: Floats, query: Floats, fraction: float, *, budget: int | None = None
) -> Rows:
    """``baselines/filters/text_alignment_filter.py: load_uids_with_text_alignment``: the same
    on ``text_embedding`` (the research's captions name the class)."""
    return threshold_keep(summed_cosine(pool, query), fraction, budget=budget)


# --- cluster methods ---------------------------------------------------------------------


def kmeans_centroids(
    x: Floats, *, k: int = 1000, seed: int = 0, niter: int = 20, max_points_per_centroid: int = 5000
) -> npt.NDArray[np.float32]:
    """``baselines/image_clustering.py: train_kmeans``: faiss ``Clustering`` with an L2 index
    (a CPU ``IndexFlatL2`` here; the research used the GPU one), 20 iterations, seed 0,
    up to 5,000 training points per centroid, on the pool embeddings as they are."""
    import faiss

    data = np.ascontiguousarray(x, dtype=np.float32)
    d = data.shape[1]
    clustering = faiss.Clustering(d, k)
    clustering.niter = niter
    clustering.seed = seed
    clustering.max_points_per_centroid = max_points_per_centroid
    clustering.train(data, faiss.IndexFlatL2(d))
    return faiss.vector_float_to_array(clustering.centroids).reshape(k, d)


def nearest_centroid(x: Floats, centroids: npt.NDArray[np.float32]) -> Rows:
    """``centroids_filter.py: get_centroid_ids_gpu``: argmax of the inner product (float32),
    first index on ties, although the centroids came from L2 k-means."""
    sims = np.asarray(x, dtype=np.float32) @ centroids.T
    return np.argmax(sims, axis=1).astype(np.int64)


def centroid_match(pool: Floats, query: Floats, centroids: npt.NDArray[np.float32]) -> Rows:
    """``baselines/filters/centroids_filter.py: load_uids_with_modality_filter``: every pool
    row whose centroid is the centroid of at least one query row (no budget)."""
    voted = np.unique(nearest_centroid(query, centroids))
    return np.flatnonzero(np.isin(nearest_centroid(pool, centroids), voted)).astype(np.int64)


def image_based(pool: Floats, query: Floats, *, k: int = 1000, seed: int = 0) -> Rows:
    """``image_based``: ``load_uids_with_modality_filter`` on image embeddings with pool
    centroids from ``image_clustering.py`` (``--num_clusters 1000``, seed 0)."""
    return centroid_match(pool, query, kmeans_centroids(pool, k=k, seed=seed))


def text_based(pool: Floats, query: Floats, *, k: int = 1000, seed: int = 0) -> Rows:
    """``text_based``: the same with ``key="text_embedding"`` (clustered with ``--key``)."""
    return centroid_match(pool, query, kmeans_centroids(pool, k=k, seed=seed))


# ``image_clip`` as last routed (``apply_filter_ours.py`` at 8f7fe2f and before, back to
# 16e8dbd) is ``image_based``: ``load_uids_with_modality_filter(threshold=..., fraction=...)``
# accepts the CLIP cut and never uses it. At HEAD ``apply_filter`` has no ``image_clip`` branch
# at all (nor ``image_based`` / ``text_based``): it raises ``ValueError("Unknown args.name")``.


def image_clip_2024(
    pool: Floats,
    query: Floats,
    scores: npt.ArrayLike,
    fraction: float,
    *,
    k: int = 1000,
    seed: int = 0,
) -> Rows:
    """``baselines/apply_filter_ours.py: load_uids_with_image_filter`` at 39c2387 (May 2024):
    the CLIP threshold filters the uids, but the cluster ids are computed for the *whole*
    pool and zipped with the filtered uids, so the i-th kept row gets pool row i's cluster."""
    centroids = kmeans_centroids(pool, k=k, seed=seed)
    voted = np.unique(nearest_centroid(query, centroids))
    kept = threshold_keep(scores, fraction)
    clusters_by_position = nearest_centroid(pool, centroids)[: len(kept)]
    return kept[np.isin(clusters_by_position, voted)]


# --- label methods -----------------------------------------------------------------------


def match_label(pool_labels: npt.ArrayLike, query_labels: npt.ArrayLike) -> Rows:
    """``baselines/basic_csv_baselines.py: match_label``: every pool row whose label also
    occurs in the query set (``get_common_labels``; no budget)."""
    y = np.asarray(pool_labels)
    common = np.intersect1d(np.unique(y), np.unique(np.asarray(query_labels)))
    return np.flatnonzero(np.isin(y, common)).astype(np.int64)


def match_dist(
    pool_labels: npt.ArrayLike,
    query_labels: npt.ArrayLike,
    fraction: float,
    *,
    rng: np.random.Generator,
    min_per_class: int = 25,
) -> Rows:
    """``baselines/basic_csv_baselines.py: match_dist``: per common class,
    ``max(25, int(int(N * fraction) * query share))`` rows drawn *with* replacement (repeats
    kept, pool order of draws per class; the draw size goes through ``int(t / n * n)``, which
    can lose one to rounding)."""
    y, yq = np.asarray(pool_labels), np.asarray(query_labels)
    desired = int(len(y) * fraction)
    classes, counts = np.unique(yq, return_counts=True)
    share = dict(zip(classes.tolist(), (counts / counts.sum()).tolist(), strict=True))
    parts = []
    for label in np.intersect1d(np.unique(y), classes):
        members = np.flatnonzero(y == label)
        target = max(min_per_class, int(desired * share[label.item()]))
        size = int(target / len(members) * len(members))
        parts.append(rng.choice(members, size=size, replace=True))
    return np.concatenate(parts).astype(np.int64) if parts else np.empty(0, np.int64)


# --- TSDS ----------------------------------------------------------------------------------

# The defaults below are tsds_data/config.yaml as committed in 55c0ad2 (sample_size 100,
# alpha 0.5, C 5, sigma 0.75, max_K 5000, kde_K 1000; deleted from the tree in 00831bd, the
# filter still reads it).


def squared_l2(a: Floats, b: Floats) -> npt.NDArray[np.float64]:
    """All squared L2 distances between rows of ``a`` and ``b`` (float64, clipped at 0)."""
    a64, b64 = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    d2 = (a64**2).sum(1)[:, None] + (b64**2).sum(1)[None, :] - 2.0 * (a64 @ b64.T)
    return np.maximum(d2, 0.0)


Knn = Callable[[Floats, Floats, int], tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]]


def exact_knn(
    query: Floats, base: Floats, k: int, *, block: int = 512
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """(squared distances, rows) of each query's ``k`` nearest base rows, nearest first,
    ties in row order: what an exact ``IndexFlatL2`` search returns. Blocks of queries keep
    the distance matrix small."""
    dists, rows = [], []
    for lo in range(0, len(query), block):
        d2 = squared_l2(query[lo : lo + block], base)
        order = np.argsort(d2, axis=1, kind="stable")[:, :k]
        dists.append(np.take_along_axis(d2, order, 1))
        rows.append(order.astype(np.int64))
    return np.concatenate(dists), np.concatenate(rows)


def epanechnikov_kde(d2: npt.NDArray[np.float64], sigma: float) -> npt.NDArray[np.float64]:
    """``sum (1 - d^2 / sigma^2)_+`` per row of neighbour distances (tsds_filter.py)."""
    kernel = 1.0 - d2 / sigma**2
    return np.asarray((kernel * (kernel > 0)).sum(axis=-1), dtype=np.float64)


def tsds_transport(
    dists: npt.NDArray[np.float64],
    ids: npt.NDArray[np.int64],
    kdes: npt.NDArray[np.float64],
    n: int,
    *,
    alpha: float,
    C: float,
) -> npt.NDArray[np.float64]:
    """``tsds_filter.py``'s probability assignment: the heap over the queries' neighbour
    lists, the stopping test, then mass ``1 / (M s kde)`` per neighbour up to each query's
    last one and the rest of its ``1 / M`` on the next one."""
    m, k = ids.shape
    # Python lists: the loops below index one scalar at a time (numpy scalars are slow)
    dists, kdes, ids = dists.tolist(), kdes.tolist(), ids.tolist()
    last = [0] * m
    heap = [(1.0 / kdes[j][0], 0, j) for j in range(m)]
    heapq.heapify(heap)
    weighted = [dists[j][0] / kdes[j][0] for j in range(m)]
    cost, total, s = np.zeros(m), 0.0, 0.0
    while heap:
        count, at, j = heapq.heappop(heap)
        s = count
        total -= cost[j]
        cost[j] = dists[j][at + 1] * count - weighted[j]
        total += cost[j]
        if alpha / C * total >= (1 - alpha) * m:
            break
        last[j] = at
        if at < k - 2:
            heapq.heappush(heap, (count + 1.0 / kdes[j][at + 1], at + 1, j))
            weighted[j] += dists[j][at + 1] / kdes[j][at + 1]
    p = np.zeros(n)
    for j in range(m):
        spent = 0.0
        for at in range(last[j] + 1):
            p[ids[j][at]] += 1 / m / s / kdes[j][at]
            spent += 1 / m / s / kdes[j][at]
        p[ids[j][last[j] + 1]] += max(1.0 / m - spent, 0.0)
    return p


def tsds_probabilities(
    pool: Floats,
    query: Floats,
    *,
    alpha: float = 0.5,
    C: float = 5.0,
    sigma: float = 0.75,
    max_k: int = 5000,
    kde_k: int = 1000,
    knn: Knn | None = None,
) -> npt.NDArray[np.float64]:
    """``baselines/filters/tsds_filter.py: load_uids_with_tsds`` up to ``global_probs``, with
    exact searches in place of its two ``FaissIndexIVFFlat`` ones unless ``knn`` says
    otherwise (exact, it can be compared to ours exactly): each query's ``min(max_K, N // 10)``
    nearest pool rows, the Epanechnikov density of each of their union over its
    ``min(kde_K, N // 10)`` nearest rows of the union (itself included), the transport."""
    knn = knn or exact_knn
    n = len(pool)
    max_k, kde_k = min(max_k, n // 10), min(kde_k, n // 10)
    d2, ids = knn(query, pool, max_k)
    union = np.unique(ids)
    kde_d2, _ = knn(pool[union], pool[union], min(kde_k, len(union)))
    kde_of = epanechnikov_kde(kde_d2, sigma) if sigma > 0 else np.ones(len(union))
    kdes = kde_of[np.searchsorted(union, ids)]
    return tsds_transport(np.sqrt(d2), ids, kdes, n, alpha=alpha, C=C)


def ivf_index(data: Floats, nprobe: int = 10) -> Any:
    """``baselines/utils.py: FaissIndexIVFFlat``: nlist = int(sqrt(n)) // 2, nprobe 10."""
    import faiss

    x = np.ascontiguousarray(data, dtype=np.float32)
    nlist = max(1, int(np.sqrt(len(x))) // 2)
    index = faiss.IndexIVFFlat(faiss.IndexFlatL2(x.shape[1]), x.shape[1], nlist)
    index.train(x)
    index.add(x)
    index.nprobe = nprobe
    return index


def ivf_knn(
    query: Floats, base: Floats, k: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """An IVF index over ``base`` searched as the research does (approximate: a neighbour
    outside the probed lists is missed; a short list is padded at distance FLT_MAX, a zero
    kernel, and id -1, which indexes the last pool row, in the research as here), nearest
    first."""
    d2, ids = ivf_index(base).search(np.ascontiguousarray(query, dtype=np.float32), k)
    order = np.argsort(d2, axis=-1)
    d2 = np.take_along_axis(d2, order, 1).astype(np.float64)
    return d2, np.take_along_axis(ids, order, 1).astype(np.int64)


# ``tsds_filter.py: load_uids_with_tsds`` up to ``global_probs`` with its two IVF searches.
research_tsds = partial(tsds_probabilities, knn=ivf_knn)


def tsds_draw(p: npt.NDArray[np.float64], sample_size: int, *, rng: np.random.Generator) -> Rows:
    """``tsds_filter.py``'s sampling: ``multinomial(sample_size, p)``, each row repeated as
    often as drawn (the research's ``sample_size`` is 100 whatever the fraction)."""
    times = rng.multinomial(sample_size, p / p.sum())
    return np.repeat(np.arange(len(p)), times).astype(np.int64)


def distinct(rows: Sequence[int] | Rows) -> Rows:
    """The distinct rows of a with-replacement draw, sorted (what training on it sees)."""
    return np.unique(np.asarray(rows, dtype=np.int64))
