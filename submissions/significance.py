"""Confidence intervals and statistically tied groups: a paired bootstrap over test examples.

    outcomes = {"team-a": {"test1": a1, "test2": a2}, "team-b": {"test1": b1, "test2": None}}
    sig = significance(outcomes, tasks=("test1", "test2"), order=("team-a",))
    sig.task_ci["team-a"]["test1"], sig.score_ci["team-a"], sig.group["team-a"]
    group_label(rank=2, group=sig.group["team-b"])        # "=1" when tied with the entry above

``outcomes[entry][task]`` is an array of shape ``(n_seeds, n_examples)`` (a 1-d array is one
seed) whose mean over examples is that seed's task score: 0/1 correctness for accuracy, rank-1
hit for ReID, squared error for MSE; or, for a score that is no such mean (detection mAP), a
:class:`Resampled` that scores each resample itself (``submissions.detection_map.MapOutcomes``).
``None`` (or a missing key) means the entry has no recorded outcomes. A :class:`TaskStat` with
per-example ``classes`` scores the task as balanced accuracy (the mean over classes of the
per-class mean) instead of the plain mean. The dataset score is the mean over tasks of the
task scores. A "seed" is whatever the entry's reported spread is over: a submission's
training seeds, or a reference row's selection seeds (each the mean over its training seeds).

Design, and why:

- **One index matrix per task, shared by every entry** (``submissions.resampling``, seeded by the
  fixed :data:`SEED`, the task name and the test size). Replicate ``b`` of every entry scores
  the same resampled test set, so the difference of two entries' replicates is a *paired*
  bootstrap of their difference: examples both get right or both get wrong cancel, which is
  what makes two near-identical entries indistinguishable and two that differ on many examples
  distinguishable even when both intervals are wide.
- **Counts, not gathers.** A replicate's mean is ``counts[b] @ values`` where ``counts[b, i]``
  is how often example ``i`` was drawn. The (B, n) count matrix is built once per task (one
  ``bincount``, kept in a small cache as uint8 between board changes) and all entries are
  scored by one float64 matmul (B, n) @ (n, E) -> (B, E) of the counts and the per-example
  seed *sums*: no (E, B, n) array is ever built, and a board of 500 entries, 4 tasks of 1,600
  examples, 3 seeds and 1,000 resamples takes 0.6-0.7 s on 2 busy CPUs, ~100x less than a
  per-entry loop (``benchmarks/significance.py``). Counts and 0/1 seed sums are integers, so
  those replicate sums are exact: examples two entries share cancel exactly in their
  difference. Balanced accuracy is the same matmul with weights ``counts[b, i] / (K_b *
  count of i's class in b)`` (``K_b`` the classes present in replicate ``b``).
- **Seeds.** The seed-mean outcome per example is bootstrapped over examples (the seed-mean
  score is then exactly the board's mean over seeds); training randomness is added by
  resampling the *seeds* in each replicate, the crossed ("pigeonhole") bootstrap of Owen
  (2007) restricted to its main effects: replicate ``b`` adds ``sum_s (m[b, s] - 1) / S *
  score_s`` where ``m`` are seed multiplicities and ``score_s`` the seeds' full-test scores,
  scaled by ``sqrt(S / (S - 1))`` so its variance is the unbiased between-seed variance over
  ``S`` (a plain bootstrap of 3 seeds under-states it by a third). The seed x example
  interaction term is dropped: it is second order (``O(1 / (S n))``) and would cost one matmul
  per seed. Seed multiplicities depend only on ``S`` and :data:`SEED`, the same for every
  entry and every task: seed ``s`` is the same initialisation and data order for everyone and
  one model for all tasks of an all-task submission, so pairing by seed index is right (and
  two identical subsets trained with the same seeds stay indistinguishable).
- **Percentile intervals** (2.5 %, 97.5 %) of the replicates. A dataset replicate is the mean
  over tasks of the task replicates with the same index ``b``.
- **Groups.** Walking down the strict ranking (the caller's order: today's tie-break chain,
  unchanged), an entry joins the group of the entry directly above when the 95 % interval of
  their paired replicate difference (of the board's ranking score) contains 0; the group number
  is the strict rank of the group's first entry ("1", "=1", "3"). Groups chain: A ~ B and
  B ~ C put A, B and C together even if A and C differ. An entry without outcomes (or with a
  task lacking them) has no interval and starts its own group, and so does the entry below
  it. References get intervals and no group; the caller leaves them out of ``order``.
- **Determinism.** Entries are scored in sorted id order whatever order they come in, with a
  fixed seed, so reordering or re-running gives bit-identical intervals.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from submissions.resampling import (
    LEVEL,
    RESAMPLES,
    SEED,
    percentile_interval,
    seed_weights,
    task_counts,
)

GROUP_NOTE = (
    "\u201c=k\u201d: not distinguishable at 95% from the entry above (paired bootstrap over"
    " test examples and seeds); k is the rank of the first entry of its group."
)
# Replicate differences are exact for 0/1 outcomes; other values carry float64 rounding.
_TOL = 1e-12

Interval = tuple[float, float]
Array = npt.NDArray[np.float64]


@runtime_checkable
class Resampled(Protocol):
    """Outcomes whose score is not a mean over examples (detection mAP): they score any
    resample themselves. ``n`` examples (the test size), S seeds."""

    @property
    def n(self) -> int: ...

    def points(self) -> Array:
        """(S,) each seed's full-test score."""
        ...

    def replicates(self, counts: npt.NDArray[np.unsignedinteger]) -> Array:
        """(B, S) each seed's score on each resample (row ``b`` of ``counts``: how often
        each example is drawn)."""
        ...


Outcomes = npt.ArrayLike | Resampled | None


@dataclass(frozen=True)
class TaskStat:
    """How a task's score is made from its outcomes: the mean, or balanced by ``classes``."""

    name: str
    classes: npt.ArrayLike | None = None


@dataclass(frozen=True)
class Replicates:
    """Bootstrap replicates of every entry's task and dataset scores (columns: ``entries``).

    ``task[t]`` is (B, E), NaN in the columns of entries without outcomes for ``t``; ``score``
    is the dataset replicate, NaN unless the entry has outcomes for every task.
    """

    entries: tuple[str, ...]
    tasks: tuple[str, ...]
    task_point: Mapping[str, Array]
    task: Mapping[str, Array]
    score_point: Array
    score: Array

    def column(self, entry: str) -> int:
        return self.entries.index(entry)


@dataclass(frozen=True)
class Significance:
    """Intervals per entry and task, per entry score, and the tied group of ranked entries."""

    task_ci: Mapping[str, Mapping[str, Interval]]
    score_ci: Mapping[str, Interval]
    group: Mapping[str, int]
    replicates: Replicates


def bootstrap(
    outcomes: Mapping[str, Mapping[str, Outcomes]],
    *,
    tasks: Sequence[TaskStat | str],
    resamples: int = RESAMPLES,
    seed: int = SEED,
    seed_variation: bool = True,
) -> Replicates:
    """Replicates of every entry's task scores and dataset score (see the module docstring);
    ``seed_variation=False`` resamples test examples only (the seed-mean outcomes)."""
    stats = [t if isinstance(t, TaskStat) else TaskStat(t) for t in tasks]
    entries = tuple(sorted(outcomes))
    column = {k: j for j, k in enumerate(entries)}
    e = len(entries)
    point: dict[str, Array] = {}
    reps: dict[str, Array] = {}
    for stat in stats:
        found = {k: _values(outcomes[k].get(stat.name), k, stat) for k in entries}
        have = {k: v for k, v in found.items() if v is not None}
        point[stat.name] = np.full(e, np.nan)
        reps[stat.name] = np.full((resamples, e), np.nan)
        if have:
            cols = [column[k] for k in have]
            p, r = _task(stat, list(have.values()), resamples=resamples, seed=seed,
                         seed_variation=seed_variation)  # fmt: skip
            point[stat.name][cols] = p
            reps[stat.name][:, cols] = r
    names = tuple(s.name for s in stats)
    score_point = np.mean([point[t] for t in names], axis=0) if names else np.full(e, np.nan)
    score = np.mean([reps[t] for t in names], axis=0) if names else np.full((resamples, e), np.nan)
    return Replicates(entries, names, point, reps, score_point, score)


def _values(raw: Outcomes, entry: str, stat: TaskStat) -> Array | Resampled | None:
    """(seeds, examples) per-example values, a :class:`Resampled`, or None (no outcomes)."""
    # ndarray first: a protocol isinstance is ~10 us, and a board makes ~20,000 of these calls.
    if raw is None or (not isinstance(raw, np.ndarray) and isinstance(raw, Resampled)):
        return raw
    a = np.asarray(raw)
    if a.dtype.kind not in "biuf":
        a = a.astype(np.float64)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2:
        raise ValueError(f"outcomes of {entry!r} on {stat.name!r}: want (seeds, examples), "
                         f"{a.shape}")  # fmt: skip
    return a if a.size else None


def _task(
    stat: TaskStat,
    values: list[Array | Resampled],
    *,
    resamples: int,
    seed: int,
    seed_variation: bool = True,
) -> tuple[Array, Array]:
    """Point scores (E,) and replicates (B, E) of the entries that have outcomes on a task."""
    sizes = sorted({v.shape[1] if isinstance(v, np.ndarray) else v.n for v in values})
    if len(sizes) != 1:
        raise ValueError(f"task {stat.name!r}: entries disagree on the test size {sizes}")
    counts = task_counts(sizes[0], resamples=resamples, seed=seed, stream=stat.name)
    point = np.empty(len(values))
    reps = np.empty((resamples, len(values)))
    linear = [j for j, v in enumerate(values) if isinstance(v, np.ndarray)]
    if linear:
        arrays = [np.asarray(values[j]) for j in linear]
        point[linear], reps[:, linear], seed_scores_ = _linear(stat, arrays, counts)
    per_seed: dict[int, Array] = dict(zip(linear, seed_scores_, strict=True)) if linear else {}
    for j, v in enumerate(values):
        if not isinstance(v, np.ndarray):
            per_seed[j] = v.points()
            reps[:, j] = v.replicates(counts).mean(axis=1)
            point[j] = per_seed[j].mean()
    if seed_variation:
        _add_seed_variation(reps, per_seed, resamples=resamples, seed=seed)
    return point, reps


def _linear(
    stat: TaskStat, values: list[Array], compact: npt.NDArray[np.unsignedinteger]
) -> tuple[Array, Array, list[Array]]:
    """Means over examples: point (E,), replicates (B, E) by one matmul, per-seed scores."""
    n = values[0].shape[1]
    # Seed sums, not means: integers for 0/1 outcomes, so the plain-mean matmul is exact.
    sums = np.stack([v.sum(axis=0, dtype=np.float64) for v in values], axis=1)  # (n, E)
    n_seeds = np.array([v.shape[0] for v in values], dtype=np.float64)
    if stat.classes is None:
        w0 = np.full(n, 1.0 / n)
        reps = _count_sums(compact, sums) / (n * n_seeds)
        point = sums.sum(axis=0) / (n * n_seeds)
    else:
        w0, weights = _balanced(np.asarray(stat.classes), compact.astype(np.float64), stat.name)
        reps = weights @ sums / n_seeds
        point = w0 @ sums / n_seeds
    return point, reps, [np.asarray(np.dot(v, w0), dtype=np.float64) for v in values]


def _count_sums(compact: npt.NDArray[np.unsignedinteger], sums: Array) -> Array:
    """``counts @ sums`` (B, E). Integer seed sums (0/1 outcomes) take a float32 matmul, twice
    as fast and still exact: every partial sum is an integer below 2**24 (each replicate's
    total is at most n * max(sums)), which float32 holds exactly in any summation order."""
    if float(sums.max(initial=0.0)) * compact.shape[1] < 2**24 and np.all(sums == np.rint(sums)):
        small = compact.astype(np.float32) @ sums.astype(np.float32)
        return np.asarray(small, dtype=np.float64)
    return np.asarray(compact.astype(np.float64) @ sums)


def _add_seed_variation(
    reps: Array, per_seed: Mapping[int, Array], *, resamples: int, seed: int
) -> None:
    """Add each replicate's seed deviation (the crossed bootstrap's seed main effect)."""
    by_seeds: dict[int, list[int]] = {}
    for j, scores in per_seed.items():
        by_seeds.setdefault(len(scores), []).append(j)
    for s, cols in by_seeds.items():
        if s > 1:
            scores = np.stack([per_seed[j] for j in cols], axis=1)  # (S, E_s)
            reps[:, cols] += seed_weights(s, resamples=resamples, seed=seed) @ scores


def seed_scores(values: Outcomes, stat: TaskStat | str) -> Array:
    """(S,) each seed's full-test score on one task (the mean, or balanced by classes)."""
    stat = stat if isinstance(stat, TaskStat) else TaskStat(stat)
    v = _values(values, "", stat)
    if v is None:
        raise ValueError(f"no outcomes on {stat.name!r}")
    if not isinstance(v, np.ndarray):
        return v.points()
    w0 = np.full(v.shape[1], 1.0 / v.shape[1])
    if stat.classes is not None:
        w0 = _balanced(np.asarray(stat.classes), np.ones((1, v.shape[1])), stat.name)[0]
    return np.asarray(np.dot(v, w0), dtype=np.float64)


def _balanced(classes: npt.NDArray[np.generic], counts: Array, task: str) -> tuple[Array, Array]:
    """Weights of balanced accuracy: full test (n,) and per replicate (B, n)."""
    if classes.shape != (counts.shape[1],):
        raise ValueError(f"task {task!r}: {classes.shape} classes for {counts.shape[1]} examples")
    _, codes = np.unique(classes, return_inverse=True)
    k = int(codes.max()) + 1
    onehot = np.zeros((codes.size, k))
    onehot[np.arange(codes.size), codes] = 1.0
    full = onehot.sum(axis=0)
    w0 = 1.0 / (k * full[codes])
    per_class = counts @ onehot  # (B, K): examples of each class in each replicate
    present = (per_class > 0).sum(axis=1, keepdims=True)
    denom = present * per_class[:, codes]  # (B, n); zero only where counts is zero
    weights = np.divide(counts, denom, out=np.zeros_like(counts), where=denom > 0)
    return w0, weights


def significance(
    outcomes: Mapping[str, Mapping[str, Outcomes]],
    *,
    tasks: Sequence[TaskStat | str],
    order: Sequence[str],
    ranks: Mapping[str, int] | None = None,
    higher_is_better: bool = True,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> Significance:
    """Intervals of every entry in ``outcomes``, groups of the ranked entries in ``order``.

    ``order`` lists the ranked entries best first (the board's strict order); ``ranks`` their
    strict ranks (default: position + 1). Entries of ``order`` absent from ``outcomes`` are
    ranked entries without outcomes: no interval, a group of their own.
    """
    reps = bootstrap(outcomes, tasks=tasks, resamples=resamples, seed=seed)
    task_ci: dict[str, dict[str, Interval]] = {}
    for t in reps.tasks:
        bounds = percentile_interval(reps.task[t])
        for j, k in enumerate(reps.entries):
            if not math.isnan(reps.task_point[t][j]):
                task_ci.setdefault(k, {})[t] = (float(bounds[0, j]), float(bounds[1, j]))
    bounds = percentile_interval(reps.score)
    score_ci = {
        k: (float(bounds[0, j]), float(bounds[1, j]))
        for j, k in enumerate(reps.entries)
        if not math.isnan(reps.score_point[j])
    }
    group = tied_groups(reps, order=order, ranks=ranks, higher_is_better=higher_is_better)
    return Significance(task_ci, score_ci, group, reps)


def tied_groups(
    reps: Replicates,
    *,
    order: Sequence[str],
    ranks: Mapping[str, int] | None = None,
    higher_is_better: bool = True,
    level: float = LEVEL,
) -> dict[str, int]:
    """Group (the strict rank of its first entry) of each entry of ``order``, walking down."""
    cols = {k: j for j, k in enumerate(reps.entries) if not math.isnan(reps.score_point[j])}
    pairs = [
        (i, cols[order[i - 1]], cols[k])
        for i, k in enumerate(order)
        if i and k in cols and order[i - 1] in cols
    ]
    tied: set[int] = set()
    if pairs:  # every adjacent pair's paired difference, in one percentile call
        above = reps.score[:, [a for _, a, _ in pairs]]
        below = reps.score[:, [b for _, _, b in pairs]]
        sign = 1.0 if higher_is_better else -1.0
        lo, hi = percentile_interval(sign * (above - below), level)
        tied = {
            i
            for (i, _, _), low, high in zip(pairs, lo, hi, strict=True)
            if low <= _TOL and high >= -_TOL
        }
    group: dict[str, int] = {}
    for i, entry in enumerate(order):
        rank = ranks[entry] if ranks is not None else i + 1
        group[entry] = group[order[i - 1]] if i in tied else rank
    return group


def paired_difference(reps: Replicates, a: str, b: str, *, level: float = LEVEL) -> Interval:
    """Interval of score(a) - score(b) from the paired replicates."""
    lo, hi = percentile_interval(
        reps.score[:, reps.column(a)] - reps.score[:, reps.column(b)], level
    )
    return float(lo), float(hi)


def group_label(*, rank: int, group: int | None) -> str:
    """What a board shows: "3" for the first of a group (or no group), "=1" for the rest."""
    return str(rank) if group is None or group == rank else f"={group}"
