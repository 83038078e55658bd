"""ZCore and PRISM against slow, obviously correct implementations of their definitions."""

from __future__ import annotations

import numpy as np
import pytest

from harness.selection.api import run_selector
from harness.selection.context import SelectionContext
from harness.selection.prism import flmi_greedy
from harness.selection.zcore import draw_samples, zcore_scores
from submissions.errors import ConfigError


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture
def pool() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    x = unit(rng.normal(size=(300, 8)))
    x[7] = x[3]  # an exact duplicate: the reference's "-1" branch
    return x, unit(x[:12] + 0.2 * rng.normal(size=(12, 8)))


def zcore_reference(x: np.ndarray, *, n_sample: int, seed: int) -> np.ndarray:
    """The published loop: one sample at a time, full argsort, numpy only."""
    rng = np.random.default_rng(seed)
    dims, points = draw_samples(x.min(0), np.median(x, 0), x.max(0), n_sample=n_sample,
                                sample_dim=2, rng=rng)  # fmt: skip
    scores = rng.uniform(0, 1, len(x))
    for d, p in zip(dims, points, strict=True):
        idx = int(np.argmin(np.abs(x[:, d] - p).sum(axis=1)))
        scores[idx] += 1
        nn_dist = np.abs(x[:, d] - x[idx, d]).sum(axis=1)
        order = np.argsort(nn_dist, kind="stable")
        nn = order[order != idx][:50]
        if nn_dist[nn[0]] == 0:
            scores[nn[0]] -= 1
        else:
            w = 1 / nn_dist[nn] ** 4
            scores[nn] -= w / w.sum()
    return (scores - scores.min()) / (scores.max() - scores.min())


def test_zcore_equals_the_published_loop(pool: tuple[np.ndarray, np.ndarray]) -> None:
    x, _ = pool
    ours = zcore_scores(x, n_sample=200, sample_dim=2, redund_nn=50, redund_exp=4.0,
                        rand_init=True, rng=np.random.default_rng(5))  # fmt: skip
    np.testing.assert_allclose(ours, zcore_reference(x, n_sample=200, seed=5), atol=1e-6)


def test_zcore_budget_and_seed(pool: tuple[np.ndarray, np.ndarray]) -> None:
    x, _ = pool
    ctx = SelectionContext.from_arrays(pool={"image": x})
    runs = [run_selector(ctx, "zcore", 30, seed=s, params={"n_sample": 100}) for s in (0, 0, 1)]
    assert all(r.size == 30 and len(np.unique(r.rows)) == 30 for r in runs)
    assert np.array_equal(runs[0].rows, runs[1].rows)
    assert not np.array_equal(runs[0].rows, runs[2].rows)
    ref = zcore_reference(x, n_sample=100, seed=0)  # redund_nn 1000 > pool: all neighbours
    assert set(runs[0].rows) >= set(np.argsort(-ref, kind="stable")[:25])


def flmi_reference(s: np.ndarray, nearest: np.ndarray, budget: int, eta: float) -> list[int]:
    """Plain greedy on the dense objective: every gain recomputed every step."""
    picked: list[int] = []

    def value(a: list[int]) -> float:
        cover = s[:, a].max(axis=1).sum() if a else 0.0
        return float(cover + eta * nearest[a].sum())

    for _ in range(budget):
        gains = [(value([*picked, j]) - value(picked), -j) for j in range(s.shape[1])
                 if j not in picked]  # fmt: skip
        picked.append(-max(gains)[1])
    return picked


def test_flmi_greedy_is_the_greedy_of_the_objective(pool: tuple[np.ndarray, np.ndarray]) -> None:
    x, q = pool
    cos = q @ x.T
    ids = np.argsort(-cos, axis=1, kind="stable")  # knn = the whole pool: no truncation
    sims = np.take_along_axis(cos, ids, axis=1)
    picked, objective = flmi_greedy(sims, ids, cos.max(axis=0), budget=25, eta=0.5)
    s = (1 + cos.astype(np.float64)) / 2
    want = flmi_reference(s, (1 + cos.max(axis=0).astype(np.float64)) / 2, 25, 0.5)
    assert picked.tolist() == want
    cover = s[:, want].max(axis=1).sum() + 0.5 * ((1 + cos.max(axis=0)) / 2)[want].sum()
    assert objective == pytest.approx(cover, rel=1e-6)


def test_prism_budget_query_and_gcmi(pool: tuple[np.ndarray, np.ndarray]) -> None:
    x, q = pool
    ctx = SelectionContext.from_arrays(pool={"image": x}, query={"image": q})
    out = run_selector(ctx, "prism", 40, seed=0, params={"knn": 20})
    assert out.size == 40 and out.metadata["mi"] == "flmi"
    cos = q @ x.T
    best = cos.max(axis=1)
    assert (cos[:, out.rows].max(axis=1) >= best - 0.02).all()  # every query is covered
    gc = run_selector(ctx, "prism", 40, seed=0, params={"mi": "gcmi"})
    align = run_selector(ctx, "image_alignment", 40, seed=0, params={})
    assert np.array_equal(gc.rows, align.rows)  # graph-cut MI is modular: mean similarity
    with pytest.raises(ConfigError, match="query set"):
        run_selector(SelectionContext.from_arrays(pool={"image": x}), "prism", 5, seed=0,
                     params={})  # fmt: skip
