"""Read-only board queries: the server's tables -> ``ResultRow`` lists -> ranked boards.

    boards = BoardService(ctx)                           # one per app (cached boards inside)
    bundle = boards.bundle(db=db, dataset="demo", recipe="linear_probe", version="1",
                           tasks=("test1", "test2", "test3"))
    bundle.boards[0.1].entries[0]                        # the leader at 10%
    rows = result_rows(db=db, dataset="demo", recipe="linear_probe", version="1", tasks=...)

One indexed query per (dataset, recipe, version) reads every public scored task score
(``TaskScore`` joined to its submission, team and evaluation); ranking is the pure
``leaderboard.ranking``. Hidden and disqualified submissions never reach a board; tasks not in
``tasks`` (hidden tests, for the public) are not even read.

Boards are cached per (dataset, recipe, version, tasks, all_entries) under the version of the
event table (:func:`stamp`): every change that can move a board (a score, a hide, a
disqualification, a requeue) appends a ``SubmissionEvent`` in the same transaction, so a board
is rebuilt exactly when the event table changed. A :class:`~server.services.freshness.BoardClock`
says when that version must be read again (after a commit, or ``revalidate_s`` for other
processes' writes); without one, it is read on every call.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy import func, select
from sqlmodel import Session, col

from harness.specs import DatasetSpec
from leaderboard.plots import Series, fraction_series
from leaderboard.ranking import Board, BoardKey, RankingRule, rank_dataset_board
from leaderboard.rows import KINDS, ResultRow
from server.context import ServerContext
from server.models import Evaluation, Submission, SubmissionEvent, TaskScore, Team
from server.services.freshness import BoardClock
from submissions.schemas import State

T = TypeVar("T")

_PUBLIC = (
    col(Submission.state) == State.scored.value,
    col(Submission.hidden).is_(False),
    col(Submission.disqualified).is_(False),
)


def aware(dt: datetime) -> datetime:
    """SQLite hands back naive datetimes; every time here is UTC."""
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def snap_fraction(spec: DatasetSpec, value: float) -> float | None:
    """The spec's fraction equal to ``value`` (stored floats may differ in the last bits)."""
    return next((f for f in spec.fractions if math.isclose(f, value, abs_tol=1e-9)), None)


def result_rows(
    *,
    db: Session,
    spec: DatasetSpec,
    recipe: str,
    version: str,
    tasks: Sequence[str],
    fraction: float | None = None,
) -> list[ResultRow]:
    """Public scored rows of one dataset and recipe version, for ``tasks`` only."""
    stmt = (
        select(
            col(TaskScore.submission_id),
            col(TaskScore.task),
            col(TaskScore.n_seeds),
            col(TaskScore.primary),
            col(TaskScore.primary_std),
            col(TaskScore.secondary),
            col(Submission.fraction),
            col(Submission.task),
            col(Submission.kind),
            col(Submission.name),
            col(Submission.size),
            col(Submission.created_at),
            col(Team.name),
        )
        .join(Submission, col(Submission.id) == col(TaskScore.submission_id))
        .join(Team, col(Team.id) == col(Submission.team_id))
        .join(Evaluation, col(Evaluation.submission_id) == col(Submission.id))
        .where(
            col(Submission.dataset) == spec.name,
            col(Submission.recipe) == recipe,
            col(Evaluation.recipe_version) == version,
            col(TaskScore.task).in_(list(tasks)),
            *_PUBLIC,
        )
    )
    if fraction is not None:
        stmt = stmt.where(col(Submission.fraction).between(fraction - 1e-9, fraction + 1e-9))
    primary, secondary = spec.primary_metric, spec.secondary_metric
    snapped: dict[float, float | None] = {}  # a few distinct stored values, 10^4 rows
    out: list[ResultRow] = []
    for sid, task, n_seeds, p, p_std, sec, frac, scope, kind, name, size, created, team in (
        db.connection().execute(stmt).all()
    ):
        if frac not in snapped:
            snapped[frac] = snap_fraction(spec, frac)
        f = snapped[frac]
        if f is None or p is None:
            continue  # not an allowed fraction, or no primary metric: cannot be ranked
        mean = {primary: p} if sec is None or not secondary else {primary: p, secondary: sec}
        out.append(
            ResultRow(
                submission_id=sid,
                team=team,
                dataset=spec.name,
                fraction=f,
                recipe=recipe,
                recipe_version=version,
                task=task,
                created_at=aware(created),
                mean=mean,
                std={primary: p_std or 0.0},
                n_seeds=n_seeds,
                scope=scope,
                kind=kind if kind in KINDS else "submission",
                method=name,
                subset_size=size,
            )
        )
    return out


def recipe_versions(*, db: Session, dataset: str) -> list[tuple[str, str]]:
    """(recipe, version) pairs with public scores on ``dataset``."""
    stmt = (
        select(col(Submission.recipe), col(Evaluation.recipe_version))
        .join(Evaluation, col(Evaluation.submission_id) == col(Submission.id))
        .where(col(Submission.dataset) == dataset, *_PUBLIC)
        .distinct()
    )
    return sorted((r, v) for r, v in db.connection().execute(stmt).all())


def entry_count(*, db: Session, dataset: str) -> int:
    """Number of public scored submissions of ``dataset`` (all recipes)."""
    stmt = (
        select(func.count())
        .select_from(Submission)
        .where(col(Submission.dataset) == dataset, *_PUBLIC)
    )
    return int(db.connection().execute(stmt).scalar_one())


# Transactions may commit out of id order (PostgreSQL), so the newest id alone could miss a
# late commit of a lower id; counting the ids in a window below the newest one catches it.
_STAMP_WINDOW = 10_000
# Timeline-only events (a job id, a job's pending reason) change nothing a board shows; left
# out of the stamp so that busy workers do not make every viewer rebuild the boards.
TIMELINE_ONLY = ("job", "job_state")


def stamp(db: Session) -> tuple[int, int]:
    """Changes whenever any board may change: (newest event id, events in the window below)."""
    counted = col(SubmissionEvent.action).not_in(TIMELINE_ONLY)
    top = select(func.max(SubmissionEvent.id)).where(counted).scalar_subquery()
    stmt = select(func.max(SubmissionEvent.id), func.count()).where(
        col(SubmissionEvent.id) > top - _STAMP_WINDOW, counted
    )
    newest, recent = db.connection().execute(stmt).one()
    return int(newest or 0), int(recent)


@dataclass(frozen=True)
class Bundle:
    """Every fraction's board of one (dataset, recipe, version) for one set of tasks."""

    spec: DatasetSpec
    recipe: str
    version: str
    tasks: tuple[str, ...]
    all_entries: bool
    boards: dict[float, Board]
    series: tuple[Series, ...]


class BoardService:
    """Boards with a revalidated cache; thread-safe (routes run in a thread pool)."""

    def __init__(
        self, ctx: ServerContext, *, clock: BoardClock | None = None, max_entries: int = 256
    ) -> None:
        self.ctx = ctx
        self.clock = clock or BoardClock(revalidate_s=0.0)
        self.max_entries = max_entries
        self._cache: OrderedDict[tuple[object, ...], tuple[tuple[int, int], object]] = OrderedDict()
        self._lock = threading.Lock()
        self._building: dict[tuple[object, ...], threading.Lock] = {}
        self.builds = 0  # how many times a board was computed (tests check the cache with it)

    def peek(self, key: tuple[object, ...]) -> object | None:
        """The cached value of ``key`` if the clock vouches it is current, with no query; or
        the previous value while another request rebuilds it (final responses only)."""
        current = self.clock.peek(stale_ok=True)
        if current is None:
            return None
        with self._lock:
            hit = self._cache.get(key)
            rebuilding = self._building.get(key)
        if hit is None:
            return None
        if hit[0] == current or (rebuilding is not None and rebuilding.locked()):
            return hit[1]
        return None

    def _cached(
        self,
        key: tuple[object, ...],
        current: tuple[int, int],
        build: Callable[[], T],
        *,
        stale_ok: bool = False,
    ) -> T:
        """``build()`` cached under ``current``; one build at a time per key.

        ``stale_ok``: while another request rebuilds ``key``, answer with the previous value
        instead of waiting for the build (a viewer then sees the change on the next request).
        Only for values nothing else is built from: a stale input would be cached as current.
        """
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] == current:
                self._cache.move_to_end(key)
                return hit[1]  # type: ignore[return-value]
            rebuilding = self._building.get(key)
            if stale_ok and hit is not None and rebuilding is not None and rebuilding.locked():
                return hit[1]  # type: ignore[return-value]
            building = self._building.setdefault(key, threading.Lock())
        # One request builds a missing entry while the others wait for it (a new score would
        # otherwise make every concurrent viewer recompute the same board).
        with building:
            with self._lock:
                hit = self._cache.get(key)
                if hit is not None and hit[0] == current:
                    return hit[1]  # type: ignore[return-value]
            value = build()
        with self._lock:
            self._building.pop(key, None)
            self.builds += 1
            self._cache[key] = (current, value)
            self._cache.move_to_end(key)
            while len(self._cache) > self.max_entries:
                self._cache.popitem(last=False)
        return value

    def bundle(
        self,
        *,
        db: Session,
        dataset: str,
        recipe: str,
        version: str,
        tasks: Sequence[str],
        task: str | None = None,
        all_entries: bool = False,
    ) -> Bundle:
        """Boards of every fraction; ``task`` names a task board (then ``tasks == (task,)``)."""
        spec = self.ctx.catalog.spec(dataset)
        key = ("bundle", dataset, recipe, version, tuple(tasks), task, all_entries)

        def build() -> Bundle:
            rows = result_rows(db=db, spec=spec, recipe=recipe, version=version, tasks=tasks)
            by_fraction: dict[float, list[ResultRow]] = {f: [] for f in spec.fractions}
            for r in rows:  # fractions are snapped to the spec's, so this is exact
                by_fraction[r.fraction].append(r)
            rule = RankingRule.of(spec)
            boards = {
                f: rank_dataset_board(
                    by_fraction[f],
                    key=BoardKey(spec.name, f, recipe, version, task),
                    tasks=tuple(tasks),
                    rule=rule,
                    all_entries=all_entries,
                )
                for f in spec.fractions
            }
            series = () if all_entries else tuple(fraction_series(boards))
            return Bundle(spec, recipe, version, tuple(tasks), all_entries, boards, series)

        return self._cached(key, self.clock.current(db), build)

    def facts(self, *, db: Session, dataset: str) -> tuple[int, list[tuple[str, str]]]:
        """(number of public entries, recipe versions present), cached like the boards."""

        def build() -> tuple[int, list[tuple[str, str]]]:
            return entry_count(db=db, dataset=dataset), recipe_versions(db=db, dataset=dataset)

        return self._cached(("facts", dataset), self.clock.current(db), build)
