"""Ranking stability statistics (submissions.rank_stability): Kendall tau, row by row."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import kendalltau

from submissions.rank_stability import bootstrap_taus, kendall_tau, per_seed_scores, seed_taus
from submissions.significance import bootstrap


def test_kendall_tau_is_scipys_tau_b_row_by_row() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 4, size=7).astype(float)  # ties on both sides
    ys = rng.integers(0, 4, size=(20, 7)).astype(float)
    want = [kendalltau(x, y).statistic for y in ys]
    assert kendall_tau(x, ys) == pytest.approx(np.array(want), nan_ok=True)
    assert kendall_tau([1, 2, 3], [1, 2, 3])[0] == 1.0
    assert kendall_tau([1, 2, 3], [3, 2, 1])[0] == -1.0
    assert np.isnan(kendall_tau([1, 1, 1], [1, 2, 3])[0])


def test_nan_scores_are_dropped_like_scipys_omit() -> None:
    x = np.array([0.1, np.nan, 0.3, 0.2, 0.5])
    y = np.array([0.2, 0.9, np.nan, 0.1, 0.4])
    keep = ~(np.isnan(x) | np.isnan(y))
    assert kendall_tau(x, y)[0] == pytest.approx(kendalltau(x[keep], y[keep]).statistic)


def test_rank_stability_taus() -> None:
    rng = np.random.default_rng(11)
    outcomes = {
        f"e{i}": {"t": (rng.random((3, 500)) < 0.3 + 0.05 * i).astype(np.float32)} for i in range(8)
    }
    reps = bootstrap(outcomes, tasks=("t",), resamples=200)
    taus = bootstrap_taus(reps)
    assert taus.shape == (200,) and np.median(taus) > 0.7
    entries, seeds = per_seed_scores(outcomes, tasks=("t",))
    assert entries == tuple(sorted(outcomes)) and seeds.shape == (3, 8)
    assert seed_taus(seeds).shape == (3,) and seed_taus(seeds).min() > 0.5
    assert seed_taus(np.stack([seeds[0], seeds[0]]))[0] == pytest.approx(1.0)
