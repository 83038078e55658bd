"""The one input type of the leaderboard: a scored submission's result on one task.

The server's board service turns database rows into :class:`ResultRow` objects; everything in
``leaderboard`` (ranking, plots, exports, pages) is a pure function of them::

    row = ResultRow(submission_id=7, team="owls", dataset="demo", fraction=0.1,
                    recipe="linear_probe", recipe_version="1", task="test1",
                    created_at=now, mean={"accuracy": 0.81}, std={"accuracy": 0.01}, n_seeds=3)
    mean, std = aggregate_seeds([{"accuracy": 0.8}, {"accuracy": 0.82}])

Rows are plain frozen dataclasses with ``slots`` (a board of 10k submissions holds ~40k of them,
so construction cost matters more than validation: the server validated the values on write).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

Kind = Literal["submission", "baseline", "oracle"]
KINDS: tuple[Kind, ...] = ("submission", "baseline", "oracle")


@dataclass(frozen=True, slots=True)
class ResultRow:
    """Scores of one submission on one task: mean and std over seeds of every metric.

    ``scope`` is the task the submission declared (``None`` for an all-task submission); a
    task-specific submission only ever counts for its own task. ``picked``: the team marked
    the submission as one of its final picks for the hidden tests (:mod:`leaderboard.picks`).
    """

    submission_id: int
    team: str
    dataset: str
    fraction: float
    recipe: str
    recipe_version: str
    task: str
    created_at: datetime
    mean: Mapping[str, float]
    std: Mapping[str, float] = field(default_factory=dict)
    n_seeds: int = 1
    scope: str | None = None
    kind: Kind = "submission"
    method: str | None = None
    subset_size: int | None = None
    picked: bool = False

    @property
    def reference(self) -> bool:
        """Baseline and oracle rows are references: shown and flagged, never given a rank."""
        return self.kind != "submission"

    def counts_for(self, task: str) -> bool:
        """Whether this row may score ``task`` (all-task submissions count for every task)."""
        return self.task == task and (self.scope is None or self.scope == task)


def aggregate_seeds(
    per_seed: Iterable[Mapping[str, float]],
) -> tuple[dict[str, float], dict[str, float], int]:
    """Mean, std (population, ddof=0, as ``numpy.std``) and count over seeds, per metric.

    A metric missing from some seeds is averaged over the seeds that have it.
    """
    values: dict[str, list[float]] = {}
    n = 0
    for metrics in per_seed:
        n += 1
        for name, v in metrics.items():
            values.setdefault(name, []).append(float(v))
    mean = {k: math.fsum(v) / len(v) for k, v in values.items()}
    std = {
        k: math.sqrt(math.fsum((x - mean[k]) ** 2 for x in v) / len(v)) for k, v in values.items()
    }
    return mean, std, n
