"""The values a metric may take: declared once, here, and checked where results are received.

    METRIC_RANGES["accuracy"]           # Range(low=0.0, high=1.0)
    metric_problems(result)             # [] when every value is finite and in its range

Every metric the harness computes (``harness.metrics``, the detection and re-identification
scorers) and every ``primary_metric`` / ``secondary_metric`` of ``configs/datasets.yaml`` is
declared (a test checks both). A value of an undeclared metric must still be finite.
Standard deviations lie in [0, high - low]; per-class values (recall, or AP@0.5 for
detection) in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from submissions.schemas import EvalResult, TaskResult


@dataclass(frozen=True)
class Range:
    """A closed interval; ``high`` may be infinite."""

    low: float = 0.0
    high: float = math.inf

    def __contains__(self, value: float) -> bool:
        return self.low <= value <= self.high

    def __str__(self) -> str:
        close = "]" if math.isfinite(self.high) else ")"
        return f"[{self.low:g}, {self.high:g}{close}"

    @property
    def spread(self) -> Range:
        """Where a standard deviation of values in this range lies."""
        return Range(0.0, self.high - self.low)


UNIT = Range(0.0, 1.0)
NON_NEGATIVE = Range(0.0, math.inf)
ANY = Range(-math.inf, math.inf)

METRIC_RANGES: Mapping[str, Range] = MappingProxyType(
    {
        # classification (harness.metrics.classification_scores)
        "accuracy": UNIT,
        "balanced_accuracy": UNIT,
        "macro_f1": UNIT,
        # regression (harness.metrics.regression_scores)
        "mse": NON_NEGATIVE,
        "mae": NON_NEGATIVE,
        # detection (harness.recipes.detection.detection_scores)
        "map50": UNIT,
        "map50_95": UNIT,
        # re-identification (harness.recipes.reid.reid_scores)
        "rank1": UNIT,
        "rank5": UNIT,
        "map": UNIT,
    }
)
PER_CLASS_RANGE = UNIT


def value_problem(name: str, value: float, allowed: Range) -> str | None:
    """Why ``value`` is not a valid value of metric ``name``; None when it is."""
    if not math.isfinite(value):
        return f"{name} is {value}, not a finite number"
    if value not in allowed:
        return f"{name} is {value:g}, outside {allowed}"
    return None


def metric_problems(result: EvalResult, *, limit: int = 20) -> list[str]:
    """The values of ``result`` that are not finite or outside their declared range, with
    where they are ("task test1 seed 0 metrics: accuracy is nan, not a finite number"): the
    first ``limit`` and a count of the rest; [] if none."""
    found = [
        f"task {task.task} {where}: {problem}"
        for task in result.tasks
        for where, values, spread in _value_groups(task)
        for name, value in values.items()
        if (problem := value_problem(name, value, _allowed(name, where, spread))) is not None
    ]
    more = [f"and {len(found) - limit} more"] if len(found) > limit else []
    return found[:limit] + more


def _allowed(name: str, where: str, spread: bool) -> Range:
    if where.endswith("per_class"):
        return PER_CLASS_RANGE
    allowed = METRIC_RANGES.get(name, ANY)
    return allowed.spread if spread else allowed


def _value_groups(task: TaskResult) -> Iterator[tuple[str, Mapping[str, float], bool]]:
    """(where, {name: value}, is a standard deviation) of every group of values in a task."""
    yield "mean", task.mean, False
    yield "std", task.std, True
    yield "query_mean", task.query_mean or {}, False
    for seed in task.seeds:
        yield f"seed {seed.seed} metrics", seed.metrics, False
        yield f"seed {seed.seed} query_metrics", seed.query_metrics or {}, False
        yield f"seed {seed.seed} per_class", seed.per_class, False
