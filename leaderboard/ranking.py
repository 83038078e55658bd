"""Ranking: pure functions from :class:`ResultRow` lists to ranked boards.

    rule = RankingRule(primary="accuracy", secondary="balanced_accuracy")
    key = BoardKey(dataset="demo", fraction=0.1, recipe="linear_probe", recipe_version="1")
    board = rank_dataset_board(rows, key=key, tasks=("test1", "test2", "test3"), rule=rule)
    board.entries[0].rank, board.entries[0].team, board.entries[0].score

The rules (docs: DESIGN.md "Submissions, tasks and boards"):

- A board is (dataset, fraction, recipe, recipe version[, task]); rows of any other recipe
  version are never ranked together with these.
- Each task's value is the mean over seeds (± std over seeds). A dataset board scores an entry
  by the primary metric averaged over the board's tasks.
- Tie-break chain: primary metric -> secondary metric -> earlier submission. An entry built
  from several submissions dates from the latest of them (when its score became reachable).
  Entries equal on the whole chain share a rank.
- By default one entry per team: on each task the team's best row (same chain), from
  task-specific or all-task submissions. ``all_entries=True`` lists every submission instead.
- A team with no score on some board task is listed unranked, its missing tasks named.
- Baseline and oracle rows ("references") are always listed, one entry per method, placed in
  score order among the participants but flagged and given no rank: a participant's rank
  counts participants only, and a baseline never pushes a team down.
- ``higher_is_better=False`` (MSE boards) sorts ascending; the secondary metric is assumed to
  point the same way as the primary (true for every dataset in configs/datasets.yaml).

Which tasks a board covers (the public tasks while a test is hidden) is decided by the caller,
see :mod:`leaderboard.phases`; so is which rows count on a hidden task (each team's final
picks, see :mod:`leaderboard.picks`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

from leaderboard.rows import Kind, ResultRow

# Scores are means of floats: two equal results may differ in the last bits depending on the
# order of summation. Compare on a grid far finer than any metric's meaningful precision.
_PRECISION = 9


class SpecLike(Protocol):
    """What ranking needs from a dataset spec (``harness.specs.DatasetSpec`` fits)."""

    @property
    def primary_metric(self) -> str: ...
    @property
    def secondary_metric(self) -> str | None: ...
    @property
    def higher_is_better(self) -> bool: ...


@dataclass(frozen=True)
class RankingRule:
    """Which metrics decide, and in which direction."""

    primary: str
    secondary: str | None = None
    higher_is_better: bool = True

    @classmethod
    def of(cls, spec: SpecLike) -> RankingRule:
        return cls(spec.primary_metric, spec.secondary_metric, spec.higher_is_better)

    def sign(self) -> float:
        """Multiplier that turns "better" into "smaller" for sorting."""
        return -1.0 if self.higher_is_better else 1.0


@dataclass(frozen=True)
class BoardKey:
    """Identity of one board; ``task=None`` is the dataset board."""

    dataset: str
    fraction: float
    recipe: str
    recipe_version: str
    task: str | None = None

    def matches(self, row: ResultRow) -> bool:
        return (
            row.dataset == self.dataset
            and row.recipe == self.recipe
            and row.recipe_version == self.recipe_version
            and math.isclose(row.fraction, self.fraction, abs_tol=1e-9)
        )


@dataclass(frozen=True)
class TaskCell:
    """An entry's value on one task: primary mean ± std over seeds, and where it came from."""

    mean: float
    std: float
    secondary: float | None
    n_seeds: int
    submission_id: int
    created_at: datetime
    ci95: tuple[float, float] | None = None  # bootstrap interval (leaderboard.intervals)


@dataclass(frozen=True)
class Entry:
    """One line of a board. ``rank`` is None for references and for incomplete entries."""

    rank: int | None
    team: str
    kind: Kind
    method: str | None
    score: float | None
    score_std: float | None
    secondary: float | None
    cells: Mapping[str, TaskCell]
    missing: tuple[str, ...]
    submission_ids: tuple[int, ...]
    submitted_at: datetime
    subset_size: int | None
    # Set by leaderboard.intervals when the rows carry per-example outcomes: the score's 95%
    # interval, and for ranked entries the strict rank of the first entry of its tied group.
    score_ci95: tuple[float, float] | None = None
    group: int | None = None

    @property
    def reference(self) -> bool:
        return self.kind != "submission"

    @property
    def complete(self) -> bool:
        return not self.missing

    @property
    def label(self) -> str:
        """What a person calls this line: the method for references, else the team."""
        if self.reference:
            return self.method or self.team
        return self.team


@dataclass(frozen=True)
class Board:
    key: BoardKey
    rule: RankingRule
    tasks: tuple[str, ...]
    entries: tuple[Entry, ...]
    all_entries: bool = False

    @property
    def ranked(self) -> tuple[Entry, ...]:
        return tuple(e for e in self.entries if e.rank is not None)

    def leader(self) -> Entry | None:
        """The first-ranked participant, if any."""
        return next((e for e in self.entries if e.rank == 1), None)


def rank_dataset_board(
    rows: Iterable[ResultRow],
    *,
    key: BoardKey,
    tasks: Sequence[str],
    rule: RankingRule,
    all_entries: bool = False,
) -> Board:
    """The dataset board over ``tasks`` (pass only the tasks the viewer may see)."""
    task_set = set(tasks)
    usable = [r for r in rows if r.task in task_set and r.counts_for(r.task) and key.matches(r)]
    groups = _group(usable, all_entries=all_entries)
    entries = [_combine(members, tasks=tuple(tasks), rule=rule) for members in groups.values()]
    return Board(key, rule, tuple(tasks), _order(entries, rule), all_entries)


def rank_task_board(
    rows: Iterable[ResultRow],
    *,
    key: BoardKey,
    rule: RankingRule,
    all_entries: bool = False,
) -> Board:
    """The board of one task (``key.task``): every scored submission that covers it."""
    if key.task is None:
        raise ValueError("a task board needs key.task")
    return rank_dataset_board(rows, key=key, tasks=(key.task,), rule=rule, all_entries=all_entries)


def _group(
    rows: Sequence[ResultRow], *, all_entries: bool
) -> dict[tuple[object, ...], list[ResultRow]]:
    """Rows per entry: per submission, or per team (references: per method)."""
    groups: dict[tuple[object, ...], list[ResultRow]] = {}
    for r in rows:
        if all_entries:
            k: tuple[object, ...] = ("sub", r.submission_id)
        elif r.reference:
            k = (r.kind, r.method or r.team)
        else:
            k = ("team", r.team)
        groups.setdefault(k, []).append(r)
    return groups


def _row_key(r: ResultRow, rule: RankingRule) -> tuple[float, float, datetime, int]:
    """Sort key of a row under the chain: primary, secondary, earlier, then id for stability."""
    sign = rule.sign()
    primary = r.mean.get(rule.primary, math.nan)
    secondary = r.mean.get(rule.secondary, math.nan) if rule.secondary else math.nan
    return (_num(sign * primary), _num(sign * secondary), r.created_at, r.submission_id)


def _num(x: float) -> float:
    """NaN (a metric the row lacks) sorts after every real value."""
    return math.inf if math.isnan(x) else round(x, _PRECISION)


def _combine(members: Sequence[ResultRow], *, tasks: tuple[str, ...], rule: RankingRule) -> Entry:
    """One entry: the best row per task, averaged over the tasks."""
    best: dict[str, tuple[tuple[float, float, datetime, int], ResultRow]] = {}
    for r in members:
        if rule.primary not in r.mean:
            continue  # a row without the primary metric cannot score the task
        k = _row_key(r, rule)
        cur = best.get(r.task)
        if cur is None or k < cur[0]:
            best[r.task] = (k, r)
    chosen_rows = {t: r for t, (_, r) in best.items()}
    cells = {t: _cell(chosen_rows[t], rule) for t in tasks if t in chosen_rows}
    missing = tuple(t for t in tasks if t not in cells)
    chosen = list(chosen_rows.values()) or list(members)
    # Named after the rows it shows (the earliest of them), not a try whose scores it does not.
    first = min(chosen, key=lambda r: r.submission_id)
    score = score_std = secondary = None
    if not missing:
        score = math.fsum(c.mean for c in cells.values()) / len(cells)
        # Std of the mean over tasks, seeds of different tasks being independent runs.
        score_std = math.sqrt(math.fsum(c.std**2 for c in cells.values())) / len(cells)
        secs = [c.secondary for c in cells.values()]
        if all(s is not None for s in secs):
            secondary = math.fsum(s for s in secs if s is not None) / len(secs)
    sizes = [r.subset_size for r in chosen if r.subset_size is not None]
    return Entry(
        rank=None,
        team=first.team,
        kind=first.kind,
        method=first.method,
        score=score,
        score_std=score_std,
        secondary=secondary,
        cells=cells,
        missing=missing,
        submission_ids=tuple(sorted({r.submission_id for r in chosen})),
        submitted_at=max(r.created_at for r in chosen),
        subset_size=max(sizes) if sizes else None,
    )


def _cell(r: ResultRow, rule: RankingRule) -> TaskCell:
    return TaskCell(
        mean=r.mean[rule.primary],
        std=r.std.get(rule.primary, 0.0),
        secondary=r.mean.get(rule.secondary) if rule.secondary else None,
        n_seeds=r.n_seeds,
        submission_id=r.submission_id,
        created_at=r.created_at,
    )


def _entry_chain(e: Entry, rule: RankingRule) -> tuple[float, float, datetime]:
    sign = rule.sign()
    assert e.score is not None  # only complete entries are ranked
    sec = math.nan if e.secondary is None else sign * e.secondary
    return (_num(sign * e.score), _num(sec), e.submitted_at)


def _order(entries: list[Entry], rule: RankingRule) -> tuple[Entry, ...]:
    """Complete entries in chain order with participant ranks; then incomplete ones."""
    complete = sorted(
        (e for e in entries if e.complete),
        key=lambda e: (*_entry_chain(e, rule), e.label, e.submission_ids),
    )
    out: list[Entry] = []
    rank, prev = 0, None
    seen = 0
    for e in complete:
        if e.reference:
            out.append(e)
            continue
        seen += 1
        chain = _entry_chain(e, rule)
        if chain != prev:
            rank, prev = seen, chain
        out.append(_with_rank(e, rank))
    incomplete = sorted(
        (e for e in entries if not e.complete),
        key=lambda e: (len(e.missing), e.reference, e.label, e.submission_ids),
    )
    return tuple(out + incomplete)


def _with_rank(e: Entry, rank: int) -> Entry:
    return replace(e, rank=rank)
