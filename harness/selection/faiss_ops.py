"""FAISS helpers for selection: cosine k-NN, spherical k-means, ranking. GPU when faiss has one.

    sims, ids = knn_cosine(queries, pool, k=50)            # (m, k) each, best first
    centroids = kmeans_cosine(pool, k=100, seed=0)         # trained on a sample of the pool
    centroids = kmeans_cosine(pool, k=1000, seed=0, spherical=False)   # L2 k-means (research)
    labels = assign_nearest(pool, centroids)               # (n,) nearest centroid per row
    scores = mean_cosine(pool, queries)                    # (n,) mean similarity to the queries
    rows = top_k(scores, 1000)                             # best rows, ties to the lower row id
    rows = sample_without_replacement(p, 1000, rng)        # distinct rows, probability ~ p

Large pools are processed in chunks of rows (normalised on the fly), so a memory-mapped
1M x 512 pool is never copied whole. Every function takes an optional ``progress`` callback
``(step, done, total)``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

ProgressFn = Callable[[str, int, int], None]
CHUNK_ROWS = 1 << 17
SMALL_POOL_ROWS = 50_000
# faiss's default database block (1024 rows) makes brute-force search with a few hundred
# queries several times slower than one large GEMM; 16k rows measured ~5x faster here.
_BLAS_DATABASE_ROWS = 16384


def _noop(step: str, done: int, total: int) -> None:
    del step, done, total


@cache
def gpu_count() -> int:
    """GPUs faiss can use (0 for faiss-cpu)."""
    import faiss

    get = getattr(faiss, "get_num_gpus", None)
    return int(get()) if get is not None else 0


@cache
def _gpu_resources() -> Any:
    import faiss

    return faiss.StandardGpuResources()


@contextmanager
def _blas_blocks() -> Iterator[None]:
    import faiss

    old = faiss.cvar.distance_compute_blas_database_bs
    faiss.cvar.distance_compute_blas_database_bs = _BLAS_DATABASE_ROWS
    try:
        yield
    finally:
        faiss.cvar.distance_compute_blas_database_bs = old


@contextmanager
def single_thread_if_small(n_rows: int, *, limit: int = SMALL_POOL_ROWS) -> Iterator[None]:
    """Run FAISS (OpenMP) and BLAS on one thread while a pool has at most ``limit`` rows.

    On small inputs thread start-up and spin-waiting cost more than the work: on a busy
    2-core machine k-means of 4,300 x 64 points took 1.27 s on two threads and 0.10 s on one.
    """
    if n_rows > limit:
        yield
        return
    import faiss
    from threadpoolctl import threadpool_limits

    old = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        faiss.omp_set_num_threads(old)


def normalize(x: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """Rows scaled to unit L2 norm, contiguous float32; zero rows stay zero.

    Rows already of unit norm (stored CLIP embeddings usually are) are returned without a
    copy when the input is contiguous float32, which saves a pass over large pools.
    """
    arr = np.ascontiguousarray(x, dtype=np.float32)
    norms = np.sqrt(np.einsum("ij,ij->i", arr, arr))
    if len(norms) and float(np.max(np.abs(norms - 1.0))) < 1e-4:
        return arr
    out = arr / np.where(norms > 0, norms, 1.0)[:, None]
    return out.astype(np.float32, copy=False)


def chunks(n: int, size: int = CHUNK_ROWS) -> Iterator[tuple[int, int]]:
    for start in range(0, n, size):
        yield start, min(start + size, n)


def _knn_block(
    xq: npt.NDArray[np.float32], xb: npt.NDArray[np.float32], k: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    import faiss

    if gpu_count() > 0:
        return faiss.knn_gpu(_gpu_resources(), xq, xb, k, metric=faiss.METRIC_INNER_PRODUCT)
    with _blas_blocks():
        return faiss.knn(xq, xb, k, metric=faiss.METRIC_INNER_PRODUCT)


def knn_cosine(
    queries: npt.ArrayLike,
    base: npt.NDArray[np.floating[Any]],
    *,
    k: int,
    chunk_rows: int = CHUNK_ROWS,
    progress: ProgressFn = _noop,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """Exact k nearest ``base`` rows of every query by cosine similarity, best first.

    Brute force over row chunks of ``base`` (merged with a faiss result heap): with a few
    hundred queries this costs one pass over the pool, cheaper than building any index.
    """
    import faiss

    xq = normalize(queries)
    n = len(base)
    k = min(k, n)
    heap = faiss.ResultHeap(len(xq), k, keep_max=True)
    total = -(-n // chunk_rows)
    progress("nearest neighbours", 0, total)
    for i, (lo, hi) in enumerate(chunks(n, chunk_rows)):
        sims, ids = _knn_block(xq, normalize(base[lo:hi]), min(k, hi - lo))
        if ids.shape[1] < k:  # a short last chunk: pad so the heap sees k columns
            pad = k - ids.shape[1]
            sims = np.pad(sims, ((0, 0), (0, pad)), constant_values=-np.inf)
            ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)
        heap.add_result(np.ascontiguousarray(sims), np.where(ids >= 0, ids + lo, -1))
        progress("nearest neighbours", i + 1, total)
    heap.finalize()
    return heap.D, heap.I


def kmeans_cosine(
    x: npt.NDArray[np.floating[Any]],
    *,
    k: int,
    seed: int,
    niter: int = 20,
    nredo: int = 1,
    max_points_per_centroid: int = 256,
    spherical: bool = True,
    progress: ProgressFn = _noop,
) -> npt.NDArray[np.float32]:
    """k-means centroids (k, d) of ``x``'s unit rows, trained on a seeded sample of them.

    ``spherical`` (default) keeps centroids on the unit sphere (cosine k-means);
    ``spherical=False`` is plain L2 k-means, as the research's ``image_clustering.py`` runs it:
    the centroids are means, not unit vectors, and ``assign_nearest`` then picks the largest
    inner product, as its ``get_centroid_ids_gpu`` does.

    ``nredo`` runs k-means that many times from different seeds and keeps the best objective.
    Identical centroids (k-means on fewer distinct points than k) are merged, so ties between
    them cannot split identical rows across clusters.

    faiss itself samples ``max_points_per_centroid * k`` rows; sampling here first means a
    memory-mapped pool is only read for those rows.
    """
    import faiss

    n = len(x)
    k = max(1, min(k, n))
    rng = np.random.default_rng(seed)
    cap = max_points_per_centroid * k
    rows = np.sort(rng.choice(n, size=cap, replace=False)) if n > cap else np.arange(n)
    sample = normalize(x[rows])
    progress("k-means", 0, 1)
    km = faiss.Kmeans(
        sample.shape[1],
        k,
        niter=niter,
        nredo=nredo,
        seed=seed,
        spherical=spherical,
        max_points_per_centroid=max_points_per_centroid,
        gpu=gpu_count() > 0,
        verbose=False,
    )
    km.train(sample)
    progress("k-means", 1, 1)
    centroids = np.asarray(km.centroids, dtype=np.float32)
    if spherical:
        centroids = normalize(centroids)
    _, first = np.unique(np.round(centroids, 4), axis=0, return_index=True)
    return centroids[np.sort(first)]


def assign_nearest(
    x: npt.NDArray[np.floating[Any]],
    centroids: npt.NDArray[np.float32],
    *,
    chunk_rows: int = CHUNK_ROWS,
    progress: ProgressFn = _noop,
) -> npt.NDArray[np.int64]:
    """For every row of ``x``, the centroid with the largest inner product with the unit row
    (the most cosine-similar one for unit centroids)."""
    labels = np.empty(len(x), dtype=np.int64)
    total = -(-len(x) // chunk_rows)
    progress("assign clusters", 0, total)
    for i, (lo, hi) in enumerate(chunks(len(x), chunk_rows)):
        _, nearest = _knn_block(normalize(x[lo:hi]), centroids, 1)
        labels[lo:hi] = nearest[:, 0]
        progress("assign clusters", i + 1, total)
    return labels


def mean_cosine(
    x: npt.NDArray[np.floating[Any]],
    queries: npt.ArrayLike,
    *,
    rows: npt.NDArray[np.int64] | None = None,
    chunk_rows: int = CHUNK_ROWS,
    progress: ProgressFn = _noop,
) -> npt.NDArray[np.float32]:
    """Mean cosine similarity of every row of ``x`` (or of ``x[rows]``) to the query rows.

    mean_j cos(x, q_j) = (x / |x|) . mean_j(q_j / |q_j|): one matrix-vector product per
    chunk instead of the (n, m) similarity matrix.
    """
    centre = normalize(queries).mean(axis=0)

    def score(block: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        norms = np.linalg.norm(block, axis=1)
        out: npt.NDArray[np.float32] = (block @ centre) / np.where(norms > 0, norms, 1.0)
        return out

    return _per_chunk(x, rows, score, "similarity to query set", chunk_rows, progress)


def max_cosine(
    x: npt.NDArray[np.floating[Any]],
    queries: npt.ArrayLike,
    *,
    rows: npt.NDArray[np.int64] | None = None,
    chunk_rows: int = CHUNK_ROWS,
    progress: ProgressFn = _noop,
) -> npt.NDArray[np.float32]:
    """Cosine similarity of every row of ``x`` (or of ``x[rows]``) to its nearest query row."""
    q = normalize(queries)

    def score(block: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        sims, _ = _knn_block(normalize(block), q, 1)
        return sims[:, 0]

    return _per_chunk(x, rows, score, "similarity to nearest query", chunk_rows, progress)


def rowwise_cosine(
    x: npt.NDArray[np.floating[Any]],
    rows: npt.NDArray[np.int64],
    centres: npt.NDArray[np.float32],
    which: npt.NDArray[np.int64],
    *,
    chunk_rows: int = CHUNK_ROWS,
) -> npt.NDArray[np.float32]:
    """cos(x[rows[i]], centres[which[i]]) for every i: one dot product per row, in chunks."""
    unit_centres = normalize(centres)
    out = np.empty(len(rows), dtype=np.float32)
    for lo, hi in chunks(len(rows), chunk_rows):
        a = normalize(x[rows[lo:hi]])
        out[lo:hi] = np.einsum("ij,ij->i", a, unit_centres[which[lo:hi]])
    return out


def _per_chunk(
    x: npt.NDArray[np.floating[Any]],
    rows: npt.NDArray[np.int64] | None,
    score: Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float32]],
    step: str,
    chunk_rows: int,
    progress: ProgressFn,
) -> npt.NDArray[np.float32]:
    """``score`` applied to row chunks of ``x`` (all rows, or ``rows`` in that order)."""
    n = len(x) if rows is None else len(rows)
    out = np.empty(n, dtype=np.float32)
    total = -(-n // chunk_rows)
    progress(step, 0, total)
    for i, (lo, hi) in enumerate(chunks(n, chunk_rows)):
        block = x[lo:hi] if rows is None else x[rows[lo:hi]]
        out[lo:hi] = score(np.asarray(block, dtype=np.float32))
        progress(step, i + 1, total)
    return out


def top_k(scores: npt.ArrayLike, k: int) -> npt.NDArray[np.int64]:
    """Rows of the ``k`` highest scores, sorted by row; ties go to the lower row id.

    NaN scores rank last. Linear time (a partition), deterministic.
    """
    s = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-np.inf)
    n = len(s)
    if k >= n:
        return np.arange(n, dtype=np.int64)
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    threshold = np.partition(s, n - k)[n - k]
    above = np.flatnonzero(s > threshold)
    tied = np.flatnonzero(s == threshold)[: k - len(above)]
    return np.sort(np.concatenate([above, tied])).astype(np.int64)


def rank_desc(scores: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """All positions by decreasing score, ties by position (a stable order)."""
    s = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-np.inf)
    return np.lexsort((np.arange(len(s)), -s)).astype(np.int64)


def sample_without_replacement(
    p: npt.NDArray[np.float64], k: int, rng: np.random.Generator
) -> npt.NDArray[np.int64]:
    """``k`` distinct indices drawn with probability proportional to ``p`` (Gumbel top-k)."""
    support = np.flatnonzero(p > 0)
    if len(support) <= k:
        return support.astype(np.int64)
    keys = np.log(p[support]) + rng.gumbel(size=len(support))
    return support[top_k(keys, k)].astype(np.int64)
