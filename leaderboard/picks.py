"""Final picks: which submissions of a team count on a hidden task (as Kaggle's "final
submissions"). Pure functions over one board's rows (one dataset, fraction, recipe version)::

    rows = final_rows(rows, hidden=("test4",), public=("test1", "test2", "test3"),
                      limit=2, rule=RankingRule("accuracy", "balanced_accuracy"))
    board = rank_dataset_board(rows, key=key, tasks=tasks, rule=rule)

The rules (the server applies them to every board that shows a hidden task: the organizers'
boards before the reveal, everyone's after it):

- Before the reveal a team marks up to ``limit`` of its submissions per board as picks
  (``ResultRow.picked``; the limit is ``DatasetSpec.picks``, enforced when picks are made).
- On a hidden task, a team's rows count only if they are of its *final picks*: the picked
  submissions on this board or, when it has none here, its ``limit`` best submissions by
  *public score*. A team holding more picks than ``limit`` (the limit was lowered) keeps its
  ``limit`` best picks by public score.
- Public score: the mean primary metric over the dataset's public tasks (``public``, hidden
  tasks never), then the secondary metric, then the earlier submission, then the lower id.
  A submission not scored on every public task (one declared for a hidden task) has none and
  sorts after those that have one; with no public task at all, the earliest come first.
- Only submissions that can score a hidden task are candidates (an all-task submission, or
  one declared for that hidden task). Rows of public tasks and reference rows (baselines,
  oracles) are never filtered, so public boards are unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime

from leaderboard.ranking import RankingRule
from leaderboard.rows import ResultRow

_PRECISION = 9  # as leaderboard.ranking: equal scores compare equal despite float noise

PublicKey = tuple[float, float, datetime, int]


def final_rows(
    rows: Sequence[ResultRow],
    *,
    hidden: Collection[str],
    public: Collection[str],
    limit: int,
    rule: RankingRule,
) -> list[ResultRow]:
    """``rows`` without the hidden-task rows of submissions that are no team's final pick."""
    keep = final_picks(rows, hidden=hidden, public=public, limit=limit, rule=rule)
    return [r for r in rows if r.reference or r.task not in hidden or r.submission_id in keep]


def final_picks(
    rows: Iterable[ResultRow],
    *,
    hidden: Collection[str],
    public: Collection[str],
    limit: int,
    rule: RankingRule,
) -> frozenset[int]:
    """Ids of the submissions that count on the hidden tasks, over every team."""
    rows = list(rows)
    candidates: dict[str, set[int]] = {}
    picked: dict[str, set[int]] = {}
    for r in rows:
        if r.reference or r.task not in hidden or not r.counts_for(r.task):
            continue
        candidates.setdefault(r.team, set()).add(r.submission_id)
        if r.picked:
            picked.setdefault(r.team, set()).add(r.submission_id)
    keys = public_keys(rows, public=public, rule=rule)
    out: set[int] = set()
    for team, ids in candidates.items():
        pool = picked.get(team) or ids
        out.update(sorted(pool, key=keys.__getitem__)[:limit])
    return frozenset(out)


def public_keys(
    rows: Iterable[ResultRow], *, public: Collection[str], rule: RankingRule
) -> dict[int, PublicKey]:
    """Sort key of every submission in ``rows`` by public score (smaller is better)."""
    created: dict[int, datetime] = {}
    primary: dict[int, list[float]] = {}
    secondary: dict[int, list[float]] = {}
    for r in rows:
        created[r.submission_id] = r.created_at
        if r.task not in public or not r.counts_for(r.task):
            continue
        primary.setdefault(r.submission_id, []).append(r.mean.get(rule.primary, math.nan))
        if rule.secondary:
            secondary.setdefault(r.submission_id, []).append(r.mean.get(rule.secondary, math.nan))
    return {
        sid: (
            _mean_key(primary.get(sid, []), len(public), rule),
            _mean_key(secondary.get(sid, []), len(public), rule),
            when,
            sid,
        )
        for sid, when in created.items()
    }


def _mean_key(values: Sequence[float], n_public: int, rule: RankingRule) -> float:
    """Signed mean over every public task; inf (last) when some task has no value."""
    if not values or len(values) != n_public or any(math.isnan(v) for v in values):
        return math.inf
    return round(rule.sign() * math.fsum(values) / len(values), _PRECISION)
