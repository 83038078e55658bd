"""Intervals and tied groups: the paired bootstrap over test examples and seeds."""

from __future__ import annotations

import numpy as np
import pytest

from submissions.resampling import RESAMPLES, resample_counts, resample_indices, task_counts
from submissions.significance import (
    TaskStat,
    _count_sums,
    bootstrap,
    group_label,
    paired_difference,
    significance,
)


def correct(n: int, right: int) -> np.ndarray:
    """0/1 outcomes of one seed: the first ``right`` examples correct."""
    out = np.zeros(n, dtype=np.float32)
    out[:right] = 1.0
    return out


def test_index_matrix_is_shared_and_counts_match() -> None:
    idx = resample_indices(50, stream="test1")
    assert idx.shape == (RESAMPLES, 50) and idx.max() < 50
    assert np.array_equal(idx, resample_indices(50, stream="test1"))
    assert not np.array_equal(idx, resample_indices(50, stream="test2"))
    counts = resample_counts(idx)
    assert np.array_equal(counts.sum(axis=1), np.full(RESAMPLES, 50.0))
    assert np.array_equal(counts[7], np.bincount(idx[7], minlength=50))


def test_differing_on_one_of_a_thousand_is_tied() -> None:
    a = correct(1000, 800)
    b = a.copy()
    b[0] = 0.0  # one example apart
    sig = significance({"a": {"t": a}, "b": {"t": b}}, tasks=("t",), order=("a", "b"))
    assert sig.group == {"a": 1, "b": 1}
    assert [group_label(rank=r, group=sig.group[k]) for r, k in ((1, "a"), (2, "b"))] == [
        "1",
        "=1",
    ]
    lo, hi = paired_difference(sig.replicates, "a", "b")
    assert lo == 0.0 and 0.0 < hi <= 0.005  # paired: only example 0 can differ


def test_differing_on_two_hundred_of_a_thousand_is_not() -> None:
    a = correct(1000, 700)
    b = a.copy()
    b[500:700] = 0.0  # a is right on 200 examples where b is wrong
    sig = significance({"a": {"t": a}, "b": {"t": b}}, tasks=("t",), order=("a", "b"))
    assert sig.group == {"a": 1, "b": 2}
    # Unpaired, the two intervals would nearly touch; paired, the difference is far from 0.
    lo, _ = paired_difference(sig.replicates, "a", "b")
    assert lo > 0.15


def test_intervals_cover_the_true_accuracy() -> None:
    rng = np.random.default_rng(7)
    p = 0.7
    draws = {f"draw{i:03d}": {"t": (rng.random(1000) < p).astype(np.float32)} for i in range(200)}
    sig = significance(draws, tasks=("t",), order=())
    covered = sum(lo <= p <= hi for lo, hi in sig.score_ci.values())
    assert covered >= 186, covered  # >= 93% of 200 (this draw: 191)
    assert all(sig.task_ci[k]["t"] == sig.score_ci[k] for k in draws)


def test_reordering_and_rerunning_give_identical_results() -> None:
    rng = np.random.default_rng(3)
    outcomes = {
        f"e{i}": {t: rng.random((3, 300)) for t in ("t1", "t2")} for i in range(12)
    }  # MSE-like floats, 3 seeds: no exact sums to hide behind
    order = sorted(outcomes, key=lambda k: float(np.mean([outcomes[k][t] for t in ("t1", "t2")])))
    first = significance(outcomes, tasks=("t1", "t2"), order=order, higher_is_better=False)
    shuffled = dict(reversed(list(outcomes.items())))
    again = significance(shuffled, tasks=("t2", "t1"), order=order, higher_is_better=False)
    assert first.score_ci == again.score_ci
    assert first.task_ci == again.task_ci
    assert first.group == again.group
    other = significance(outcomes, tasks=("t1", "t2"), order=order, seed=1)
    assert other.score_ci != first.score_ci


def test_balanced_accuracy_weights_classes_equally() -> None:
    classes = np.array([0] * 900 + [1] * 100)
    out = np.concatenate([np.ones(900), np.zeros(50), np.ones(50)]).astype(np.float32)
    task = TaskStat("t", classes=classes)
    sig = significance({"a": {"t": out}}, tasks=(task,), order=("a",))
    reps = sig.replicates
    assert reps.score_point[0] == pytest.approx((1.0 + 0.5) / 2)  # plain accuracy would be 0.95
    lo, hi = sig.score_ci["a"]
    plain = significance({"a": {"t": out}}, tasks=("t",), order=("a",)).score_ci["a"]
    assert lo < 0.75 < hi and hi - lo > 3 * (plain[1] - plain[0])  # the small class dominates
    counts = resample_counts(resample_indices(1000, stream="t"))[0]
    minority = counts[900:]
    expect = (1.0 + minority[50:].sum() / minority.sum()) / 2
    assert reps.score[0, 0] == pytest.approx(expect)


def test_lower_is_better_mse() -> None:
    rng = np.random.default_rng(5)
    good = rng.exponential(1.0, size=(2, 800))
    close = good.copy()
    close[:, 0] += 0.5  # one example slightly worse
    bad = good * 1.5
    outcomes = {"good": {"t": good}, "close": {"t": close}, "bad": {"t": bad}}
    sig = significance(
        outcomes, tasks=("t",), order=("good", "close", "bad"), higher_is_better=False
    )
    assert sig.group == {"good": 1, "close": 1, "bad": 3}
    for k, v in outcomes.items():
        lo, hi = sig.score_ci[k]
        assert lo < v["t"].mean() < hi
    # The oriented difference (above minus below, "better" positive) is what the walk uses.
    lo, hi = paired_difference(sig.replicates, "bad", "good")
    assert lo > 0  # raw difference: bad has the larger error


def test_entries_without_outcomes_never_break_a_board() -> None:
    a, b = correct(500, 400), correct(500, 399)
    outcomes: dict[str, dict[str, np.ndarray | None]] = {
        "a": {"t1": a, "t2": a},
        "legacy": {"t1": None, "t2": None},
        "partial": {"t1": b},
        "b": {"t1": b, "t2": b},
        "baseline": {"t1": a, "t2": a},
    }
    order = ("a", "legacy", "partial", "gone", "b")
    sig = significance(outcomes, tasks=("t1", "t2"), order=order)
    assert "legacy" not in sig.task_ci and "legacy" not in sig.score_ci
    assert set(sig.task_ci["partial"]) == {"t1"} and "partial" not in sig.score_ci
    # Each entry without a full set of outcomes starts its own group, and so does the next.
    assert sig.group == {"a": 1, "legacy": 2, "partial": 3, "gone": 4, "b": 5}
    assert "baseline" in sig.score_ci and "baseline" not in sig.group  # references: unranked
    assert significance({}, tasks=("t1",), order=("x",)).group == {"x": 1}


def test_groups_chain_and_use_the_strict_rank_of_their_first_entry() -> None:
    base = correct(1000, 800)
    outcomes: dict[str, dict[str, np.ndarray]] = {}
    for k in range(4):  # each 3 examples below the one before: neighbours tied, ends apart
        s = base.copy()
        s[800 - 3 * k : 800] = 0.0
        outcomes[f"e{k}"] = {"t": s}
    outcomes["far"] = {"t": correct(1000, 700)}
    order = tuple(outcomes)
    ranks = {"e0": 1, "e1": 1, "e2": 3, "e3": 4, "far": 5}  # e0 and e1 equal on the chain
    sig = significance(outcomes, tasks=("t",), order=order, ranks=ranks)
    assert [sig.group[k] for k in order] == [1, 1, 1, 1, 5]
    labels = [group_label(rank=ranks[k], group=sig.group[k]) for k in order]
    assert labels == ["1", "1", "=1", "=1", "5"]
    lo, _ = paired_difference(sig.replicates, "e0", "e3")
    assert lo > 0  # 9 examples apart: one group only through the chain of neighbours


def test_seed_variation_widens_intervals() -> None:
    one = correct(1000, 800)
    same = np.stack([one, one, one])
    shifted = np.stack([one, one, one])
    shifted[0, 800:830] = 1.0  # seed 0 is better by 3 points, seed 2 worse by 3
    shifted[2, 770:800] = 0.0
    sig = significance(
        {"single": {"t": one}, "same": {"t": same}, "noisy": {"t": shifted}},
        tasks=("t",),
        order=(),
    )
    assert sig.score_ci["single"] == sig.score_ci["same"]  # no seed variation, nothing added
    width = {k: hi - lo for k, (lo, hi) in sig.score_ci.items()}
    assert width["noisy"] > width["same"] * 1.1
    assert sig.replicates.score_point[sig.replicates.column("noisy")] == pytest.approx(0.8)


def test_dataset_replicate_is_the_mean_of_task_replicates() -> None:
    a1, a2 = correct(300, 200), correct(200, 150)
    reps = bootstrap({"a": {"t1": a1, "t2": a2}}, tasks=("t1", "t2"))
    assert np.allclose(reps.score[:, 0], (reps.task["t1"][:, 0] + reps.task["t2"][:, 0]) / 2)
    assert reps.score_point[0] == pytest.approx((200 / 300 + 150 / 200) / 2)


def test_test_size_mismatch_is_refused() -> None:
    with pytest.raises(ValueError, match="test size"):
        bootstrap({"a": {"t": correct(10, 5)}, "b": {"t": correct(11, 5)}}, tasks=("t",))


def test_interval_width_shrinks_with_the_square_root_of_the_test_size() -> None:
    small = significance({"a": {"t": correct(1000, 700)}}, tasks=("t",), order=())
    large = significance({"a": {"t": correct(4000, 2800)}}, tasks=("t",), order=())
    (lo1, hi1), (lo4, hi4) = small.score_ci["a"], large.score_ci["a"]
    assert 0.4 < (hi4 - lo4) / (hi1 - lo1) < 0.6


def test_the_float32_matmul_of_integer_sums_is_exact() -> None:
    rng = np.random.default_rng(12)
    compact = task_counts(1600, resamples=RESAMPLES, seed=1, stream="exact")
    sums = rng.integers(0, 4, size=(1600, 50)).astype(np.float64)  # 3 seeds of 0/1 outcomes
    assert np.array_equal(_count_sums(compact, sums), compact.astype(np.float64) @ sums)
    means = sums / 3.0  # not integers: the float64 path
    assert np.array_equal(_count_sums(compact, means), compact.astype(np.float64) @ means)
