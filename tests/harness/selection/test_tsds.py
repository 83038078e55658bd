"""TSDS against a slow, obviously correct implementation of the published procedure.

The reference below follows the research code's algorithm step by step with plain loops:
all distances by brute force, the density as a sum over each point's nearest points in the
union, the water-filling level raised by scanning every query for the smallest next count
(no heap), the probabilities accumulated one neighbour at a time.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.selection import faiss_ops
from harness.selection.api import run_selector
from harness.selection.context import SelectionContext
from harness.selection.kde import KernelDensity


def reference_probabilities(
    x: np.ndarray, q: np.ndarray, *, alpha: float, C: float, sigma: float, max_k: int, kde_k: int,
    beyond: list[int] | None = None,
) -> np.ndarray:  # fmt: skip
    """The probabilities; ``beyond`` (if given) receives the rows a level raised past the
    stopping point reaches, in order."""
    n, m = len(x), len(q)
    k = max(2, min(max_k, n // 10))
    d_all = np.sqrt(np.clip(((q[:, None, :] - x[None, :, :]) ** 2).sum(-1), 0, None))
    order = np.argsort(d_all, axis=1, kind="stable")[:, :k]
    dist = np.take_along_axis(d_all, order, 1)
    union = sorted(set(order.ravel().tolist()))
    kde = {}
    for u in union:
        d2 = sorted(float(((x[u] - x[v]) ** 2).sum()) for v in union)[: min(kde_k, n // 10)]
        kde[u] = sum(max(0.0, 1 - t / sigma**2) for t in d2)
    dens = np.array([[kde[int(i)] for i in row] for row in order])
    count = [1 / dens[j][0] for j in range(m)]
    weighted = [dist[j][0] / dens[j][0] for j in range(m)]
    at, last, cost = [0] * m, [0] * m, [0.0] * m
    active, s, total = set(range(m)), 0.0, 0.0
    while active:
        j = min(active, key=lambda i: (count[i], at[i], i))  # the smallest next level
        s, kk = count[j], at[j]
        total -= cost[j]
        cost[j] = dist[j][kk + 1] * s - weighted[j]
        total += cost[j]
        if alpha / C * total >= (1 - alpha) * m:
            _continue(beyond, active, count, at, dens, order, k)
            break
        last[j] = kk
        if kk < k - 2:
            at[j] = kk + 1
            count[j] += 1 / dens[j][kk + 1]
            weighted[j] += dist[j][kk + 1] / dens[j][kk + 1]
        else:
            active.remove(j)
    p = np.zeros(n)
    for j in range(m):
        spent = 0.0
        for kk in range(last[j] + 1):
            p[order[j][kk]] += 1 / m / s / dens[j][kk]
            spent += 1 / m / s / dens[j][kk]
        p[order[j][last[j] + 1]] += max(1 / m - spent, 0.0)
    return p


def _continue(
    out: list[int] | None, active: set[int], count: list[float], at: list[int],
    dens: np.ndarray, order: np.ndarray, k: int,
) -> None:  # fmt: skip
    """The level search without its stopping test: each step reaches one more neighbour."""
    while out is not None and active:
        j = min(active, key=lambda i: (count[i], at[i], i))
        if at[j] + 1 < k:
            out.append(int(order[j][at[j] + 1]))
        if at[j] < k - 2:
            at[j] += 1
            count[j] += 1 / dens[j][at[j]]
        else:
            active.remove(j)


@pytest.fixture
def clustered() -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors around a few centres (so densities differ) and queries near two of them."""
    rng = np.random.default_rng(11)
    centres = rng.normal(size=(6, 8))
    x = centres[rng.integers(0, 6, 400)] + 0.35 * rng.normal(size=(400, 8))
    q = centres[rng.integers(0, 2, 12)] + 0.35 * rng.normal(size=(12, 8))
    unit = lambda a: (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)  # noqa: E731
    return unit(x), unit(q)


@pytest.mark.parametrize(
    "params",
    [
        {},  # the research's config: alpha 0.5, C 5, sigma 0.75, max_k 5000, kde_k 1000
        {"alpha": 0.2, "C": 1.0, "sigma": 0.4, "max_k": 30, "kde_k": 7},
        {"alpha": 0.9, "sigma": 0.0},  # no density term
    ],
)
def test_probabilities_equal_the_reference(
    clustered: tuple[np.ndarray, np.ndarray], params: dict[str, float]
) -> None:
    from harness.selection.tsds import tsds_probabilities

    x, q = clustered
    full = {"alpha": 0.5, "C": 5.0, "sigma": 0.75, "max_k": 5000, "kde_k": 1000} | params
    ctx = SelectionContext.from_arrays(pool={"image": x}, query={"image": q})
    ours, _, info = tsds_probabilities(
        x, q, kernel="epanechnikov", exact_limit=50_000, nprobe=2, ctx=ctx, **full
    )  # type: ignore[arg-type]
    if full["sigma"] == 0:  # the reference's KDE with sigma 0 is "off": all densities 1
        ref = reference_probabilities(x, q, **{**full, "sigma": 1e-9})
    else:
        ref = reference_probabilities(x, q, **full)
    assert info["density"] == ("off" if full["sigma"] == 0 else "exact")
    np.testing.assert_allclose(ours, ref, atol=1e-6)
    assert ours.sum() == pytest.approx(1.0)


def test_the_draw_is_the_reference_draw(clustered: tuple[np.ndarray, np.ndarray]) -> None:
    """Exactly the budget, distinct, the same rows as Gumbel top-k on the reference p."""
    x, q = clustered
    ctx = SelectionContext.from_arrays(pool={"image": x}, query={"image": q})
    out = run_selector(ctx, "tsds", 25, seed=3, params={})
    p = reference_probabilities(x, q, alpha=0.5, C=5.0, sigma=0.75, max_k=5000, kde_k=1000)
    support = np.flatnonzero(p > 0)
    keys = np.log(p[support]) + np.random.default_rng(3).gumbel(size=len(support))
    want = np.sort(support[np.argsort(-keys, kind="stable")[:25]])
    assert out.size == 25 and np.array_equal(out.rows, want)
    assert out.metadata["knn"] == "exact" and out.metadata["natural_size"] == len(support)
    again = run_selector(ctx, "tsds", 25, seed=3, params={})
    assert np.array_equal(again.rows, out.rows)


def test_the_inverted_file_probing_every_cell_is_exact() -> None:
    rng = np.random.default_rng(12)
    centres = rng.normal(size=(20, 16))
    z = faiss_ops.normalize(centres[rng.integers(0, 20, 3000)] + 0.25 * rng.normal(size=(3000, 16)))
    rows = np.arange(3000)

    def densities(**kw: int) -> tuple[np.ndarray, KernelDensity]:
        kde = KernelDensity(z, k=40, sigma=0.75, kernel="epanechnikov", **kw)
        kde.compute(rows)
        return kde.values, kde

    exact, how = densities(exact_limit=10_000, nprobe=2)
    brute = np.clip(1 - np.clip(2 - 2 * z @ z.T, 0, None) / 0.75**2, 0, None)
    np.testing.assert_allclose(exact, -np.sort(-brute, axis=1)[:, :40].sum(1), rtol=1e-5)
    every, how = densities(exact_limit=100, nprobe=10_000)
    assert how.method == f"ivf(nlist={how.nlist}, nprobe={how.nlist})" and how.nlist >= 54
    np.testing.assert_allclose(every, exact, rtol=1e-4)
    cheap, _ = densities(exact_limit=100, nprobe=2)
    assert (cheap <= exact + 1e-4).all() and np.median(cheap / exact) > 0.95
    some = KernelDensity(z, k=40, sigma=0.75, kernel="epanechnikov", exact_limit=100, nprobe=2)
    some.compute(rows[:10])  # on demand: only what is asked for
    assert np.isnan(some.values[10:]).all() and np.allclose(some.values[:10], cheap[:10])


def test_a_short_support_is_filled_by_raising_the_level(
    clustered: tuple[np.ndarray, np.ndarray],
) -> None:
    x, q = clustered
    params = {"alpha": 0.5, "C": 1e-4, "sigma": 0.75, "max_k": 5000, "kde_k": 1000}
    beyond: list[int] = []
    p = reference_probabilities(x, q, beyond=beyond, **params)
    support = set(np.flatnonzero(p > 0).tolist())
    assert len(support) < 30
    ctx = SelectionContext.from_arrays(pool={"image": x}, query={"image": q})
    out = run_selector(ctx, "tsds", 30, seed=0, params=params)
    extra = [r for r in dict.fromkeys(beyond) if r not in support][: 30 - len(support)]
    assert set(out.rows.tolist()) == support | set(extra) and out.size == 30
    assert out.metadata["natural_size"] == len(support)
    assert out.metadata["filled"] == 30 - len(support)


def test_filling_past_the_first_neighbours_matches_the_reference() -> None:
    """K = 100 > the 64 neighbours a search starts with: the fill needs more of each list."""
    rng = np.random.default_rng(4)
    centres = rng.normal(size=(6, 8))
    x = faiss_ops.normalize(centres[rng.integers(0, 6, 1000)] + 0.35 * rng.normal(size=(1000, 8)))
    q = faiss_ops.normalize(centres[np.arange(10) % 6] + 0.35 * rng.normal(size=(10, 8)))
    params = {"alpha": 0.5, "C": 1e-4, "sigma": 0.75, "max_k": 5000, "kde_k": 1000}
    beyond: list[int] = []
    p = reference_probabilities(x, q, beyond=beyond, **params)
    support = set(np.flatnonzero(p > 0).tolist())
    extra = [r for r in dict.fromkeys(beyond) if r not in support][: 700 - len(support)]
    assert len(support) < 20 and len(extra) == 700 - len(support)  # 70 rows a query > 64
    ctx = SelectionContext.from_arrays(pool={"image": x}, query={"image": q})
    out = run_selector(ctx, "tsds", 700, seed=0, params=params)
    assert set(out.rows.tolist()) == support | set(extra) and out.size == 700
    assert out.metadata["neighbours_used"] == 100  # 64 ran out while filling: doubled


def test_crowded_cells_are_split() -> None:
    """One centroid far from the data but one holding half of it: the crowded cell is split
    into cells of about the mean size, the others are kept as they are."""
    from harness.selection.kde import split_crowded

    rng = np.random.default_rng(2)
    spread = faiss_ops.normalize(rng.normal(size=(400, 8)))
    lump = faiss_ops.normalize(np.eye(8)[0] + 0.3 * rng.normal(size=(400, 8)))
    sample = np.concatenate([spread, lump]).astype(np.float32)
    centroids = np.concatenate([faiss_ops.normalize(rng.normal(size=(9, 8))), np.eye(8)[:1]])
    out = split_crowded(sample, centroids.astype(np.float32))
    sizes = np.bincount(np.argmin(((sample[:, None] - out[None]) ** 2).sum(-1), 1))
    assert len(out) > len(centroids) and sizes.max() <= 3 * len(sample) / len(centroids)
    kept = [c for c in centroids if np.isclose(out, c).all(axis=1).any()]
    assert 8 <= len(kept) <= 9  # only the crowded ones were replaced
