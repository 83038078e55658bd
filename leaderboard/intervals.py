"""A ranked board with its confidence intervals and tied groups (``submissions.significance``).

    board = with_intervals(board, outcomes={17: {"test1": correct_17}}, tasks=("test1",))
    entry.score_ci95, entry.group, entry.cells["test1"].ci95
    rank_label(entry)                           # "1", "=1", "3": what the board shows
    task_intervals({"test1": correct_17}, tasks=("test1",))   # one submission's, per task

``outcomes[submission_id][task]`` is a (seeds, examples) array whose mean over examples is the
seed's primary metric (see ``submissions.outcomes.PER_EXAMPLE``), or for detection mAP a
``submissions.detection_map.MapOutcomes``. An entry's task value is
its cell's submission's, so an entry built from several submissions (a team's best per task)
is resampled from exactly the rows it shows. Entries without outcomes (results stored before
outcomes existed, or a metric that is not a per-example mean) keep no interval and a group of
their own; a board without any outcomes comes back unchanged. The strict ranks (today's
tie-break chain) are never changed: groups are added beside them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from leaderboard.ranking import Board, Entry
from submissions.significance import GROUP_NOTE, Significance, TaskStat, group_label, significance
from submissions.significance import Outcomes as TaskOutcomes

Outcomes = Mapping[int, Mapping[str, TaskOutcomes]]

__all__ = ["GROUP_NOTE", "rank_label", "task_intervals", "with_intervals"]


def with_intervals(board: Board, *, outcomes: Outcomes, tasks: Sequence[TaskStat | str]) -> Board:
    """``board`` with intervals on every entry (references too) and groups on ranked ones; an
    entry missing a task has intervals on the tasks it has, none on its score."""
    per_entry = {
        str(i): {t: outcomes.get(c.submission_id, {}).get(t) for t, c in e.cells.items()}
        for i, e in enumerate(board.entries)
    }
    if not any(v is not None for cells in per_entry.values() for v in cells.values()):
        return board
    ranked = {str(i): e.rank for i, e in enumerate(board.entries) if e.rank is not None}
    sig = significance(
        per_entry,
        tasks=tasks,
        order=list(ranked),
        ranks=ranked,
        higher_is_better=board.rule.higher_is_better,
    )
    entries = tuple(_with(e, str(i), sig) for i, e in enumerate(board.entries))
    return replace(board, entries=entries)


def _with(e: Entry, key: str, sig: Significance) -> Entry:
    task_ci = sig.task_ci.get(key, {})
    cells = {t: replace(c, ci95=task_ci.get(t)) for t, c in e.cells.items()}
    return replace(e, cells=cells, score_ci95=sig.score_ci.get(key), group=sig.group.get(key))


def task_intervals(
    outcomes: Mapping[str, TaskOutcomes], *, tasks: Sequence[TaskStat | str]
) -> dict[str, tuple[float, float]]:
    """One submission's interval per task (its page), resampled exactly as on the boards."""
    if all(v is None for v in outcomes.values()):
        return {}
    return dict(significance({"it": outcomes}, tasks=tasks, order=()).task_ci.get("it", {}))


def rank_label(e: Entry) -> str:
    """The rank column: "" for unranked entries, "=k" inside a tied group, else the rank."""
    return "" if e.rank is None else group_label(rank=e.rank, group=e.group)
