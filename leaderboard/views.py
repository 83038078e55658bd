"""What the pages show, as plain data: the server (or a report) fills these, templates read them.

    info = DatasetInfo(name="demo", task_type="classification", ..., leaders={0.1: entry})
    page = BoardPage(dataset=info, board=board, budget=430, recipes=(("linear_probe", "1"),))
    html = render_board(page=page, links=ServerLinks())     # leaderboard.render

Nothing here touches a database or HTTP; hidden-task data must already be left out by the
caller for public viewers (``hidden_tasks`` only names what was withheld).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from leaderboard.phases import Phase
from leaderboard.plots import Series
from leaderboard.ranking import Board, Entry
from leaderboard.rows import Kind


@dataclass(frozen=True)
class TaskInfo:
    name: str
    description: str
    phase: Phase


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    task_type: str
    description: str
    pool_size: int | None
    fractions: tuple[float, ...]
    tasks: tuple[TaskInfo, ...]
    primary_metric: str
    secondary_metric: str | None
    higher_is_better: bool
    default_recipe: str
    recipe_version: str
    n_entries: int = 0
    # Leader of the default recipe's dataset board per fraction (None: nobody ranked yet).
    leaders: Mapping[float, Entry | None] = field(default_factory=dict)

    def budget(self, fraction: float) -> int | None:
        import math

        return None if self.pool_size is None else math.floor(fraction * self.pool_size + 1e-9)


@dataclass(frozen=True)
class BoardPage:
    dataset: DatasetInfo
    board: Board
    budget: int | None
    recipes: tuple[tuple[str, str], ...]  # (recipe, version) pairs that have boards
    series: tuple[Series, ...] = ()  # score vs fraction, for the plot
    limit: int = 1_000_000  # rows shown (the server shows the top 100 first); exports hold all
    organizer: bool = False
    all_rows_href: str | None = None  # where the whole table is, when ``limit`` cuts it


@dataclass(frozen=True)
class EventView:
    at: datetime
    action: str
    from_state: str | None
    to_state: str
    actor: str | None  # None on public pages (workers and organizers are not named)
    reason: str | None


@dataclass(frozen=True)
class SeedScores:
    seed: int
    metrics: Mapping[str, float]


@dataclass(frozen=True)
class TaskScores:
    task: str
    test_size: int
    n_seeds: int
    mean: Mapping[str, float]
    std: Mapping[str, float]
    seeds: tuple[SeedScores, ...] = ()
    ci95: tuple[float, float] | None = None  # of the primary metric, when outcomes exist


@dataclass(frozen=True)
class SubmissionView:
    id: int
    team: str
    dataset: str
    fraction: float
    task: str | None
    recipe: str
    recipe_version: str | None
    kind: Kind
    method: str | None
    sha256: str
    size: int
    budget: int | None
    state: str
    hidden: bool
    disqualified: bool
    error: str | None
    created_at: datetime
    updated_at: datetime
    scored_at: datetime | None
    primary_metric: str
    higher_is_better: bool
    events: tuple[EventView, ...] = ()
    scores: tuple[TaskScores, ...] = ()
    hidden_tasks: tuple[str, ...] = ()  # scored but withheld from this viewer until reveal
    picked: bool = False  # a final pick for the hidden tests (shown to its team and organizers)
    manifest: Mapping[str, Any] | None = None
    # Reference values per task for the bar chart: label -> {task: primary mean}.
    references: Mapping[str, Mapping[str, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class SubmissionSummary:
    id: int
    dataset: str
    fraction: float
    task: str | None
    recipe: str
    kind: Kind
    method: str | None
    state: str
    size: int
    created_at: datetime
    disqualified: bool = False


@dataclass(frozen=True)
class Standing:
    """A team's line on one dataset board (default recipe)."""

    dataset: str
    fraction: float
    recipe: str
    recipe_version: str
    rank: int | None
    n_ranked: int
    score: float | None
    missing: tuple[str, ...]


@dataclass(frozen=True)
class TeamView:
    name: str
    created_at: datetime | None
    submissions: tuple[SubmissionSummary, ...]
    standings: tuple[Standing, ...] = ()
