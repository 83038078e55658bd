"""Label matching with the query set's labels: ``match_label``, ``match_dist``.

``match_label`` keeps pool rows whose label occurs in the query set; when there are more than
the budget it keeps a seeded uniform sample of them, so the subset stays an unbiased draw of
the matching rows. ``match_dist`` draws, per class, a seeded uniform sample whose sizes follow
the query set's label distribution (largest-remainder rounding); a class with too few pool rows
gives all it has and its shortfall is shared among the other query classes in proportion
(water filling), so the budget is filled while only query classes are ever chosen.

    out = selector("match_dist")(ctx, 430, rng=rng)
    out.metadata["class_counts"]     # {"0": 215, "1": 215}
    labels = ClassIndex.of(ctx)      # labels as indices into the pool's classes (GradMatch)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from harness.selection.context import SelectionContext
from harness.selection.registry import SELECTORS, SelectionOutput, output


@dataclass(frozen=True)
class ClassIndex:
    """Labels as indices into the pool's sorted classes (a model's outputs)."""

    classes: npt.NDArray[Any]
    pool: npt.NDArray[np.int64]
    query: npt.NDArray[np.int64]  # the query rows whose class occurs in the pool
    known: npt.NDArray[np.bool_]  # which query rows those are

    @classmethod
    def of(cls, ctx: SelectionContext) -> ClassIndex:
        classes, y = np.unique(np.asarray(ctx.pool("label")), return_inverse=True)
        yq = np.asarray(ctx.query("label"))
        known = np.isin(yq, classes)  # a query class absent from the pool cannot be matched
        query = np.searchsorted(classes, yq[known]).astype(np.int64)
        return cls(classes=classes, pool=y.astype(np.int64), query=query, known=known)


@SELECTORS.register("match_label")
def match_label(ctx: SelectionContext, budget: int, *, rng: np.random.Generator) -> SelectionOutput:
    """Pool rows whose label is one of the query set's labels (seeded sample to the budget)."""
    ctx.require_classification("match_label")
    y = np.asarray(ctx.pool("label"))
    wanted = np.unique(np.asarray(ctx.query("label")))
    candidates = np.flatnonzero(np.isin(y, wanted))
    rows = candidates
    if len(candidates) > budget:
        rows = rng.choice(candidates, size=budget, replace=False)
    note = "matching rows" if len(candidates) <= budget else "uniform sample of matching rows"
    return output(
        rows, natural_size=len(candidates), note=note, query_labels=[str(v) for v in wanted]
    )


def allocate(
    budget: int, weights: npt.NDArray[np.float64], capacity: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """Integer counts <= capacity summing to min(budget, capacity.sum()), proportional to weights.

    Largest-remainder rounding; classes that hit their capacity are fixed and the rest of the
    budget is re-shared among the others (water filling).
    """
    counts = np.zeros(len(weights), dtype=np.int64)
    open_ = (weights > 0) & (capacity > 0)
    remaining = min(budget, int(capacity[open_].sum()))
    while remaining > 0 and open_.any():
        share = remaining * weights * open_ / weights[open_].sum()
        base = np.floor(share).astype(np.int64)
        order = np.lexsort((np.arange(len(share)), -(share - base)))  # largest remainder first
        extra = remaining - int(base.sum())
        base[order[:extra]] += 1
        take = np.minimum(base, capacity - counts)
        counts += take
        remaining -= int(take.sum())
        open_ &= counts < capacity
    return counts


@SELECTORS.register("match_dist")
def match_dist(ctx: SelectionContext, budget: int, *, rng: np.random.Generator) -> SelectionOutput:
    """A per-class sample of the pool whose label distribution matches the query set's."""
    ctx.require_classification("match_dist")
    y = np.asarray(ctx.pool("label"))
    classes, query_counts = np.unique(np.asarray(ctx.query("label")), return_counts=True)
    capacity = np.array([np.count_nonzero(y == c) for c in classes], dtype=np.int64)
    counts = allocate(budget, query_counts.astype(np.float64), capacity)
    parts = [
        rng.choice(np.flatnonzero(y == c), size=int(k), replace=False)
        for c, k in zip(classes, counts, strict=True)
        if k > 0
    ]
    rows = np.concatenate(parts) if parts else np.empty(0, np.int64)
    natural = int(capacity.sum())
    note = "per-class samples in the query set's proportions"
    if natural < budget:
        note = f"only {natural} pool rows have a query label: fewer than the budget {budget}"
    return output(
        rows,
        natural_size=min(natural, budget),
        note=note,
        class_counts={str(c): int(k) for c, k in zip(classes, counts, strict=True)},
    )
