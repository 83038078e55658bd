"""How stable a ranking is: Kendall's tau between the full-test ranking and each bootstrap
resample's, and between the rankings of every pair of training seeds.

    reps = bootstrap(outcomes, tasks=("test1",), seed_variation=False)  # submissions.significance
    bootstrap_taus(reps)                   # (B,) tau of each resample's order vs the full test
    entries, scores = per_seed_scores(outcomes, tasks=("test1",))      # (S, E) per-seed scores
    seed_taus(scores)                      # tau of every pair of seeds
    kendall_tau([1, 2, 3], [[1, 2, 3], [3, 2, 1]])                     # array([ 1., -1.])

Used by ``tdc-harness report stability`` (``harness.stability``) on the same resamples the
boards draw (``submissions.significance.resample_indices``), so the report describes the
intervals a participant sees.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations

import numpy as np
import numpy.typing as npt

from submissions.significance import Outcomes, Replicates, TaskStat, seed_scores

Array = npt.NDArray[np.float64]


def kendall_tau(x: npt.ArrayLike, y: npt.ArrayLike) -> Array:
    """Kendall's tau-b between score vector ``x`` (E,) and each row of ``y`` (B, E) or (E,):
    1 for the same order (ties included), -1 for the reverse; NaN where one side is all tied.
    NaN scores are dropped pairwise. Vectorised over rows (scipy's ``kendalltau`` is one pair
    per call: 1,000 resamples cost 1,000 calls)."""
    a = np.asarray(x, dtype=np.float64)
    b = np.atleast_2d(np.asarray(y, dtype=np.float64))
    i, j = np.triu_indices(a.size, k=1)
    with np.errstate(invalid="ignore"):
        dx = np.nan_to_num(np.sign(a[i] - a[j]))
        dy = np.nan_to_num(np.sign(b[:, i] - b[:, j]))
    known = ~(np.isnan(a[i]) | np.isnan(a[j]))[None, :] & ~(np.isnan(b[:, i]) | np.isnan(b[:, j]))
    dx, dy = dx * known, dy * known
    denom = np.sqrt(np.sum(dx != 0, axis=1) * np.sum(dy != 0, axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(np.where(denom > 0, np.sum(dx * dy, axis=1) / denom, np.nan))


def bootstrap_taus(reps: Replicates, *, task: str | None = None) -> Array:
    """Tau between the full-test ranking and each resample's ranking (the dataset score, or
    one task's): how stable the order is under another draw of the test set."""
    point = reps.score_point if task is None else reps.task_point[task]
    rows = reps.score if task is None else reps.task[task]
    return kendall_tau(point, rows)


def seed_taus(scores: npt.ArrayLike) -> Array:
    """Tau between the rankings of every pair of seeds; ``scores`` is (S, entries)."""
    s = np.asarray(scores, dtype=np.float64)
    pairs = list(combinations(range(s.shape[0]), 2))
    return np.array([kendall_tau(s[p], s[q])[0] for p, q in pairs])


def per_seed_scores(
    outcomes: Mapping[str, Mapping[str, Outcomes]], *, tasks: Sequence[TaskStat | str]
) -> tuple[tuple[str, ...], Array]:
    """Entries with the same number of seeds on every task, and their (S, E) per-seed dataset
    scores (the mean over tasks); ``((), empty)`` when the entries' seed counts differ."""
    stats = [t if isinstance(t, TaskStat) else TaskStat(t) for t in tasks]
    rows: dict[str, list[Array]] = {}
    for k in sorted(outcomes):
        per_task = [outcomes[k].get(s.name) for s in stats]
        if per_task and all(p is not None for p in per_task):
            rows[k] = [seed_scores(p, s) for p, s in zip(per_task, stats, strict=True)]
    n_seeds = {p.shape[0] for ps in rows.values() for p in ps}
    if not rows or len(n_seeds) != 1:
        return (), np.zeros((0, 0))
    return tuple(rows), np.stack([np.mean(ps, axis=0) for ps in rows.values()], axis=1)
