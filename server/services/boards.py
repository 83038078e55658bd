"""Read-only board queries: the server's tables -> ``ResultRow`` lists -> ranked boards.

    boards = Boards(ctx, cache=BuiltOnce(max_bytes=64 << 20), rank=None)   # ranked here
    bundle = boards.bundle(db=db, dataset="demo", recipe="linear_probe", version="1",
                           tasks=("test1", "test2", "test3"))
    bundle.boards[0.1].entries[0]                        # the leader at 10%
    rows = result_rows(db=db, dataset="demo", recipe="linear_probe", version="1", tasks=...)

One indexed query per (dataset, recipe, version) reads every public scored task score
(``TaskScore`` joined to its submission, team and evaluation); ranking is the pure
``leaderboard.ranking``. Hidden and disqualified submissions never reach a board; tasks not in
``tasks`` (hidden tests, for the public) are not even read. A bundle that shows a hidden task
(organizers before its reveal, everyone after) counts on it only each team's final picks
(:mod:`leaderboard.picks`; picks bump the board version like every other change). That
holds for the every-submission view too: a submission that is no final pick shows no
hidden-task score there (on a dataset board it is listed unranked, the hidden task missing).

Through :class:`Boards`, a bundle is ranked once per board version of its dataset
(:func:`board_versions`; kept in a :class:`~server.services.built.BuiltOnce`), however many
pages and exports use it.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TypeVar

from sqlalchemy import DateTime, func, select, type_coerce
from sqlmodel import Session, col

from harness.specs import DatasetSpec
from leaderboard.intervals import with_intervals
from leaderboard.picks import final_rows
from leaderboard.plots import Series, fraction_series
from leaderboard.ranking import Board, BoardKey, RankingRule, rank_dataset_board
from leaderboard.rows import KINDS, ResultRow
from server.context import ServerContext
from server.models import Evaluation, Submission, TaskScore, Team
from server.services.built import BuiltOnce
from server.services.outcomes import load_outcome_arrays, load_outcomes
from server.services.public_rows import ON_PUBLIC_BOARDS
from submissions.detection_map import METRICS as MAP_METRICS
from submissions.detection_map import MapOutcomes
from submissions.outcomes import PER_EXAMPLE
from submissions.significance import Outcomes, TaskStat

T = TypeVar("T")


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
            col(Submission.picked),
            # Plain DateTime: SQLModel's UTC-aware type costs a Python call per row (10^4).
            type_coerce(col(Submission.created_at), DateTime()),
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
            *ON_PUBLIC_BOARDS,
        )
    )
    if fraction is not None:
        stmt = stmt.where(col(Submission.fraction).between(fraction - 1e-9, fraction + 1e-9))
    primary, secondary = spec.primary_metric, spec.secondary_metric
    snapped: dict[float, float | None] = {}  # a few distinct stored values, 10^4 rows
    out: list[ResultRow] = []
    for sid, task, n_seeds, p, p_std, sec, frac, scope, kind, name, size, picked, created, team in (
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
                picked=bool(picked),
            )
        )
    return out


def recipe_versions(*, db: Session, dataset: str) -> list[tuple[str, str]]:
    """(recipe, version) pairs with public scores on ``dataset``."""
    stmt = (
        select(col(Submission.recipe), col(Evaluation.recipe_version))
        .join(Evaluation, col(Evaluation.submission_id) == col(Submission.id))
        .where(col(Submission.dataset) == dataset, *ON_PUBLIC_BOARDS)
        .distinct()
    )
    return sorted((r, v) for r, v in db.connection().execute(stmt).all())


def entry_count(*, db: Session, dataset: str) -> int:
    """Number of public scored submissions of ``dataset`` (all recipes)."""
    stmt = (
        select(func.count())
        .select_from(Submission)
        .where(col(Submission.dataset) == dataset, *ON_PUBLIC_BOARDS)
    )
    return int(db.connection().execute(stmt).scalar_one())


BOARD_VERSIONS = "SELECT name, board_version FROM dataset"  # plain SQL: also run on DB-API


def board_versions(db: Session) -> dict[str, int]:
    """Every dataset's board version (one query on a table of a few rows)."""
    return {name: int(v) for name, v in db.connection().exec_driver_sql(BOARD_VERSIONS).all()}


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

    def nbytes(self) -> int:
        """About the memory it holds (an entry with its cells ~1 KiB, each board ~2 KiB)."""
        return sum(2048 + 1024 * len(b.entries) for b in self.boards.values())


@dataclass(frozen=True)
class BundleOf:
    """Which bundle: its dataset, recipe version and tasks (``task``: a task board, then
    ``tasks == (task,)``); hashable, the bundle's cache key."""

    dataset: str
    recipe: str
    version: str
    tasks: tuple[str, ...]
    task: str | None = None
    all_entries: bool = False


def rank_bundle(
    *,
    db: Session,
    spec: DatasetSpec,
    of: BundleOf,
    stats: Sequence[TaskStat] = (),
    replicates: Path | None = None,
) -> Bundle:
    """Boards of every fraction of ``spec`` (the spec of ``of.dataset``), with intervals and
    tied groups where the rows carry outcomes and ``stats`` says how each task is scored."""
    hidden = tuple(t.name for t in spec.tasks if t.hidden and t.name in of.tasks)
    public = tuple(t.name for t in spec.tasks if not t.hidden)
    # The final picks of a hidden task rank teams' submissions by their public score.
    read = (*of.tasks, *(t for t in public if t not in of.tasks)) if hidden else of.tasks
    rows = result_rows(db=db, spec=spec, recipe=of.recipe, version=of.version, tasks=read)
    by_fraction: dict[float, list[ResultRow]] = {f: [] for f in spec.fractions}
    for r in rows:  # fractions are snapped to the spec's, so this is exact
        by_fraction[r.fraction].append(r)
    rule = RankingRule.of(spec)
    if hidden:
        by_fraction = {f: final_rows(rs, hidden=hidden, public=public, limit=spec.picks,
                                     rule=rule) for f, rs in by_fraction.items()}  # fmt: skip
    boards = {
        f: rank_dataset_board(
            by_fraction[f],
            key=BoardKey(spec.name, f, of.recipe, of.version, of.task),
            tasks=of.tasks,
            rule=rule,
            all_entries=of.all_entries,
        )
        for f in spec.fractions
    }
    if stats:  # only the rows an entry shows: a team's best per task, not all its tries
        ids = [
            c.submission_id for b in boards.values() for e in b.entries for c in e.cells.values()
        ]
        outcomes = primary_outcomes(db=db, spec=spec, submission_ids=ids, tasks=of.tasks,
                                    replicates=replicates)  # fmt: skip
        boards = {f: with_intervals(b, outcomes=outcomes, tasks=stats) for f, b in boards.items()}
    series = () if of.all_entries else tuple(fraction_series(boards))
    return Bundle(spec, of.recipe, of.version, of.tasks, of.all_entries, boards, series)


def primary_outcomes(
    *,
    db: Session,
    spec: DatasetSpec,
    submission_ids: Sequence[int],
    tasks: Sequence[str],
    replicates: Path | None = None,
) -> dict[int, dict[str, Outcomes]]:
    """Per-example outcomes of the primary metric by submission and task: (seeds, examples)
    values whose mean is the metric, or for detection mAP the matches that rescore any
    resample (empty for a metric that is neither; ``replicates``: where those keep their
    bootstrap replicates on disk)."""
    metric = spec.primary_metric
    if metric not in PER_EXAMPLE and metric not in MAP_METRICS:
        return {}
    ids = sorted(set(submission_ids))
    out: dict[int, dict[str, Outcomes]] = {}
    for t in tasks:
        found: dict[int, Outcomes]
        if metric in PER_EXAMPLE:
            found = dict(load_outcomes(db=db, submission_ids=ids, task=t, name=PER_EXAMPLE[metric]))
        else:
            arrays = load_outcome_arrays(db=db, submission_ids=ids, task=t)
            found = {sid: MapOutcomes(tuple(tuple(seeds[s]) for s in sorted(seeds)), metric,
                                      cache_dir=replicates)
                     for sid, seeds in arrays.items()}  # fmt: skip
        for sid, values in found.items():
            out.setdefault(sid, {})[t] = values
    return out


def _untracked(bundle: Bundle) -> Bundle:
    """A new bundle's ~10^5 objects live until a newer version replaces it and hold no
    reference cycles (refcounting frees them): keep them out of the collector's full passes,
    which otherwise stall the server's event loop after every change."""
    gc.freeze()
    return bundle


Ranker = Callable[..., Bundle]  # rank_bundle without its db, or a RankingProcess


class Boards:
    """Ranked boards, each computed once per board version of its dataset: here, or by
    ``rank`` (a :class:`~server.services.ranking_process.RankingProcess`)."""

    def __init__(self, ctx: ServerContext, *, cache: BuiltOnce, rank: Ranker | None) -> None:
        self.ctx, self.cache, self.rank = ctx, cache, rank

    def bundle(self, *, db: Session, of: BundleOf) -> Bundle:
        spec = self.ctx.catalog.spec(of.dataset)
        # Read before the rows: what is built is at least as new as the version it is kept for.
        board = (board_versions(db).get(of.dataset, 0),)
        rank: Ranker = self.rank or partial(rank_bundle, db=db)

        def build() -> Bundle:  # once per board version: the labels are read here, not per request
            stats = self.ctx.catalog.task_stats(of.dataset, of.tasks)
            dirs = self.ctx.replicates_dir
            return _untracked(rank(spec=spec, of=of, stats=stats, replicates=dirs))

        return self.cache.get(of, version=board, size=Bundle.nbytes, build=build)
