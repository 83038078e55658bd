"""The centroid methods against a slow reference written from the research's procedure.

The research (``baselines/filters/image_based_filter.py`` with ``image_clustering.py``) runs
L2 k-means on the pool, gives every pool row and every query row the centroid with the largest
inner product, and keeps the pool rows whose centroid some query row chose. The reference below
does that with plain loops over the same centroids (k-means itself is checked separately, for
being Lloyd's L2 algorithm), and cuts to the budget as our docstring promises: shares of the
budget proportional to query votes (largest remainder, capacity-limited), rows nearest the mean
of the voting query points first.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from harness.selection import clusters, faiss_ops
from harness.selection.api import run_selector
from harness.selection.context import SelectionContext


def unit(a: np.ndarray) -> np.ndarray:
    return (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)


def nearest_by_inner_product(rows: np.ndarray, centroids: np.ndarray) -> list[int]:
    out = []
    for r in unit(rows):
        scores = [float(np.dot(r, c)) for c in centroids]
        out.append(max(range(len(scores)), key=lambda i: (scores[i], -i)))
    return out


def reference_shares(budget: int, votes: dict[int, int], size: dict[int, int]) -> dict[int, int]:
    share = dict.fromkeys(votes, 0)
    left = min(budget, sum(size.values()))
    while left > 0:
        open_ = [c for c in votes if share[c] < size[c]]
        exact = {c: left * votes[c] / sum(votes[o] for o in open_) for c in open_}
        whole = {c: int(np.floor(exact[c])) for c in open_}
        spare = left - sum(whole.values())
        for c in sorted(open_, key=lambda c: (-(exact[c] - whole[c]), c))[:spare]:
            whole[c] += 1
        for c in open_:
            take = min(whole[c], size[c] - share[c])
            share[c] += take
            left -= take
    return share


def reference_select(x: np.ndarray, q: np.ndarray, centroids: np.ndarray, budget: int) -> set[int]:
    pool_c = nearest_by_inner_product(x, centroids)
    query_c = nearest_by_inner_product(q, centroids)
    votes = {c: query_c.count(c) for c in set(query_c)}
    members = {c: [i for i, pc in enumerate(pool_c) if pc == c] for c in votes}
    candidates = {i for c in votes for i in members[c]}
    if len(candidates) <= budget:
        return candidates
    shares = reference_shares(budget, votes, {c: len(m) for c, m in members.items()})
    keep: set[int] = set()
    for c, rows in members.items():
        centre = unit(unit(q)[[j for j, qc in enumerate(query_c) if qc == c]].sum(0)[None])[0]
        sims = {i: float(np.dot(unit(x[i : i + 1])[0], centre)) for i in rows}
        keep |= set(sorted(rows, key=lambda i: (-sims[i], i))[: shares[c]])
    return keep


@pytest.fixture
def pool_and_query() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    centres = unit(rng.standard_normal((12, 16)))
    x = unit(centres[rng.integers(0, 12, 900)] + 0.3 * rng.standard_normal((900, 16)))
    q = unit(centres[rng.integers(0, 4, 40)] + 0.3 * rng.standard_normal((40, 16)))
    return x, q


@pytest.fixture
def fixed_centroids(monkeypatch: pytest.MonkeyPatch) -> np.ndarray:
    """k-means replaced by given, deliberately non-unit centroids (L2 k-means yields means)."""
    rng = np.random.default_rng(5)
    centroids = (unit(rng.standard_normal((10, 16))) * rng.uniform(0.5, 1, (10, 1))).astype(
        np.float32
    )

    def fake_kmeans(x: np.ndarray, *, k: int, **_: Any) -> np.ndarray:
        assert k == 10  # the cap: 900 rows // 39 = 23 >= 10 asked
        return centroids

    monkeypatch.setattr(clusters.faiss_ops, "kmeans_cosine", fake_kmeans)
    return centroids


@pytest.mark.parametrize("budget", [60, 200, 900])
def test_image_based_equals_the_reference(
    pool_and_query: tuple[np.ndarray, np.ndarray], fixed_centroids: np.ndarray, budget: int
) -> None:
    x, q = pool_and_query
    ctx = SelectionContext.from_arrays(pool={"image": x}, query={"image": q})
    out = run_selector(ctx, "image_based", budget, seed=0, params={"n_clusters": 10})
    want = reference_select(x, q, fixed_centroids, budget)
    assert set(out.rows.tolist()) == want
    assert len(want) == min(budget, out.metadata["natural_size"])


def test_text_based_clusters_the_caption_embeddings(
    pool_and_query: tuple[np.ndarray, np.ndarray], fixed_centroids: np.ndarray
) -> None:
    x, q = pool_and_query
    rng = np.random.default_rng(0)
    images = unit(rng.standard_normal(x.shape))
    ctx = SelectionContext.from_arrays(
        pool={"image": images, "text_nolabel": x}, query={"image": images[:40], "text_nolabel": q}
    )
    out = run_selector(ctx, "text_based", 200, seed=0, params={"n_clusters": 10})
    assert set(out.rows.tolist()) == reference_select(x, q, fixed_centroids, 200)


def test_kmeans_is_lloyd_l2_and_k_is_capped(pool_and_query: tuple[np.ndarray, np.ndarray]) -> None:
    x, q = pool_and_query
    centroids = faiss_ops.kmeans_cosine(x, k=12, seed=0, niter=60, spherical=False)
    nearest = np.argmin(((x[:, None, :] - centroids[None]) ** 2).sum(-1), axis=1)
    for c in range(len(centroids)):  # a fixed point of Lloyd's algorithm: each centroid is
        np.testing.assert_allclose(centroids[c], x[nearest == c].mean(0), atol=1e-5)  # a mean
    assert np.linalg.norm(centroids, axis=1).max() < 0.999  # not projected to the sphere
    ctx = SelectionContext.from_arrays(pool={"image": x}, query={"image": q})
    out = run_selector(ctx, "image_based", 90, seed=0, params={})
    assert (out.metadata["n_clusters"], out.metadata["n_clusters_asked"]) == (900 // 39, 1000)
