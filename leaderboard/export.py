"""Exports of a board: JSON (pydantic models, also the API's response schema) and CSV.

    public = board_public(board, budget=430)      # BoardPublic; .model_dump_json()
    text = board_csv(board, budget=430)           # one line per entry, per-task columns
    text = boards_csv([(board_5, 215), (board_10, 430)])   # several boards, one table

Both carry exactly what the HTML shows: rank (empty for references and incomplete entries),
the entry's kind, the score ± std, per-task mean ± std, missing tasks, subset size vs budget,
date and the submissions the entry is built from. CSV cells that a spreadsheet would run as a
formula (leading ``= + - @``) are prefixed with a quote, since team names are user input.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from leaderboard.intervals import rank_label
from leaderboard.ranking import Board, Entry
from leaderboard.rows import Kind


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Interval = tuple[float, float]


class TaskCellPublic(_Out):
    mean: float
    std: float
    secondary: float | None
    n_seeds: int
    submission_id: int
    ci95: Interval | None = None  # [low, high]: bootstrap over test examples (and seeds)


class EntryPublic(_Out):
    rank: int | None
    label: str
    team: str
    kind: Kind
    method: str | None
    score: float | None
    score_std: float | None
    score_ci95: Interval | None = None
    # Entries sharing a group are not distinguishable at 95% (the strict rank of its first).
    group: int | None = None
    rank_label: str = ""  # "1", "=1", "3": the rank, "=k" inside a tied group
    secondary: float | None
    tasks: dict[str, TaskCellPublic]
    missing_tasks: list[str]
    subset_size: int | None
    submitted_at: datetime
    submission_ids: list[int]


class BoardPublic(_Out):
    """A ranked board as served by ``GET /api/leaderboard/{dataset}`` and written by reports."""

    dataset: str
    fraction: float
    recipe: str
    recipe_version: str
    task: str | None
    tasks: list[str]
    primary_metric: str
    secondary_metric: str | None
    higher_is_better: bool
    all_entries: bool
    budget: int | None
    entries: list[EntryPublic]


def entry_public(e: Entry) -> EntryPublic:
    return EntryPublic(
        rank=e.rank,
        label=e.label,
        team=e.team,
        kind=e.kind,
        method=e.method,
        score=e.score,
        score_std=e.score_std,
        score_ci95=e.score_ci95,
        group=e.group,
        rank_label=rank_label(e),
        secondary=e.secondary,
        tasks={
            t: TaskCellPublic(
                mean=c.mean,
                std=c.std,
                secondary=c.secondary,
                n_seeds=c.n_seeds,
                submission_id=c.submission_id,
                ci95=c.ci95,
            )
            for t, c in e.cells.items()
        },
        missing_tasks=list(e.missing),
        subset_size=e.subset_size,
        submitted_at=e.submitted_at,
        submission_ids=list(e.submission_ids),
    )


def board_public(board: Board, *, budget: int | None = None) -> BoardPublic:
    k, r = board.key, board.rule
    return BoardPublic(
        dataset=k.dataset,
        fraction=k.fraction,
        recipe=k.recipe,
        recipe_version=k.recipe_version,
        task=k.task,
        tasks=list(board.tasks),
        primary_metric=r.primary,
        secondary_metric=r.secondary,
        higher_is_better=r.higher_is_better,
        all_entries=board.all_entries,
        budget=budget,
        entries=[entry_public(e) for e in board.entries],
    )


class LeaderboardPublic(_Out):
    """The boards of one dataset that a request selected (one per fraction by default)."""

    dataset: str
    generated_at: datetime
    boards: list[BoardPublic]


def csv_header(board: Board) -> list[str]:
    r = board.rule
    per_task = [c for t in board.tasks for c in (t, f"{t}_std", f"{t}_ci95_low", f"{t}_ci95_high")]
    return [
        "dataset",
        "fraction",
        "recipe",
        "recipe_version",
        "board",
        "rank",
        "group",
        "label",
        "team",
        "kind",
        "method",
        r.primary,
        f"{r.primary}_std",
        f"{r.primary}_ci95_low",
        f"{r.primary}_ci95_high",
        r.secondary or "secondary",
        *per_task,
        "missing_tasks",
        "subset_size",
        "budget",
        "submitted_at",
        "submission_ids",
    ]


def csv_rows(board: Board, *, budget: int | None = None) -> Iterable[list[object]]:
    k = board.key
    ident: list[object] = [k.dataset, k.fraction, k.recipe, k.recipe_version, k.task or "all"]
    for e in board.entries:
        cells: list[object] = []
        for t in board.tasks:
            c = e.cells.get(t)
            cells += [c.mean, c.std, *_interval(c.ci95)] if c else ["", "", "", ""]
        yield [
            *ident,
            _opt(e.rank),
            _opt(e.group),
            _safe(e.label),
            _safe(e.team),
            e.kind,
            _safe(e.method or ""),
            _opt(e.score),
            _opt(e.score_std),
            *_interval(e.score_ci95),
            _opt(e.secondary),
            *cells,
            ";".join(e.missing),
            _opt(e.subset_size),
            _opt(budget),
            e.submitted_at.isoformat(),
            ";".join(str(i) for i in e.submission_ids),
        ]


def board_csv(board: Board, *, budget: int | None = None) -> str:
    return boards_csv([(board, budget)])


def boards_csv(boards: Sequence[tuple[Board, int | None]]) -> str:
    """Boards with the same tasks (e.g. every fraction of one dataset) as one CSV table."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if boards:
        w.writerow(csv_header(boards[0][0]))
    for board, budget in boards:
        w.writerows(csv_rows(board, budget=budget))
    return buf.getvalue()


def _interval(ci: Interval | None) -> list[object]:
    return ["", ""] if ci is None else [ci[0], ci[1]]


def _opt(v: object) -> object:
    return "" if v is None else v


def _safe(text: str) -> str:
    """Defuse spreadsheet formulas in user-controlled text."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
