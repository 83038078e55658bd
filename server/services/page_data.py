"""What the leaderboard pages and the board API show, assembled from the database.

    pages = PageService(ctx, cache=app_cache)   # the server's; PageService(ctx): its own
    infos = pages.home(db=db, organizer=False)
    page = pages.board_page(db=db, dataset="demo", fraction=0.1, organizer=False)
    sub = pages.submission(db=db, submission_id=7, viewer=Viewer(team_id=3))  # default: public
    team = pages.team(db=db, name="owls")

Visibility is decided here, once, for HTML and API alike: hidden tests are public only after
their reveal time (spec ``reveal_at`` or the ``TDC_REVEAL_AT`` setting, keyed
``dataset/task``); hidden submissions are organizer-only; hidden and disqualified
submissions never reach a board. Participants see error text through
``server.services.public_rows.participant_error`` (infrastructure details stay with organizers);
the submission and team pages show the public what its boards show (``public_rows.Viewer``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlmodel import Session, col, select

from harness.specs import DatasetSpec, check_fraction
from leaderboard.intervals import task_intervals
from leaderboard.phases import phase_of, utcnow
from leaderboard.ranking import Board
from leaderboard.views import (
    BoardPage,
    DatasetInfo,
    EventView,
    SeedScores,
    Standing,
    SubmissionSummary,
    SubmissionView,
    TaskInfo,
    TaskScores,
    TeamView,
)
from server.context import ServerContext
from server.errors import NotFound
from server.models import Dataset as DatasetRow
from server.models import Evaluation, Submission, Team
from server.services import public_rows
from server.services.boards import (
    Boards,
    BundleOf,
    Ranker,
    aware,
    entry_count,
    primary_outcomes,
    recipe_versions,
    snap_fraction,
)
from server.services.built import BuiltOnce
from submissions.errors import ConfigError

OWN_CACHE_BYTES = 64 << 20  # a PageService made without the server's cache (a static export)


class PageService:
    def __init__(
        self,
        ctx: ServerContext,
        *,
        cache: BuiltOnce | None = None,
        rank: Ranker | None = None,
    ) -> None:
        self.ctx = ctx
        self.boards = Boards(ctx, cache=cache or BuiltOnce(max_bytes=OWN_CACHE_BYTES), rank=rank)

    def visible(self, spec: DatasetSpec, *, organizer: bool, now: datetime) -> tuple[str, ...]:
        return self.ctx.catalog.visible(spec.name, organizer=organizer, now=now)

    def recipe_version(self, recipe: str) -> str:
        specs = self.ctx.catalog.specs
        return specs.recipes[recipe].version if recipe in specs.recipes else "1"

    def pool_sizes(self, db: Session) -> dict[str, int | None]:
        return {r.name: r.pool_size for r in db.exec(select(DatasetRow)).all()}

    def dataset_info(
        self,
        *,
        db: Session,
        spec: DatasetSpec,
        pool_size: int | None,
        organizer: bool,
        now: datetime,
    ) -> DatasetInfo:
        over = self.ctx.catalog.reveal_overrides(spec.name)
        version = self.recipe_version(spec.default_recipe)
        tasks = self.visible(spec, organizer=organizer, now=now)
        bundle = self.boards.bundle(
            db=db, of=BundleOf(spec.name, spec.default_recipe, version, tasks)
        )
        n_entries = entry_count(db=db, dataset=spec.name)
        return DatasetInfo(
            name=spec.name,
            task_type=spec.task_type,
            description=spec.description,
            pool_size=pool_size,
            fractions=spec.fractions,
            tasks=tuple(
                TaskInfo(t.name, t.description, phase_of(t, now=now, reveal_overrides=over))
                for t in spec.tasks
            ),
            primary_metric=spec.primary_metric,
            secondary_metric=spec.secondary_metric,
            higher_is_better=spec.higher_is_better,
            default_recipe=spec.default_recipe,
            recipe_version=version,
            n_entries=n_entries,
            leaders={f: b.leader() for f, b in bundle.boards.items()},
        )

    # --- pages -----------------------------------------------------------------------------

    def home(
        self, *, db: Session, organizer: bool = False, now: datetime | None = None
    ) -> list[DatasetInfo]:
        """The datasets hosted here (a pool in the synced Dataset table), in config order."""
        now, sizes = now or utcnow(), self.pool_sizes(db)
        return [
            self.dataset_info(
                db=db,
                spec=self.ctx.catalog.spec(n),
                pool_size=sizes[n],
                organizer=organizer,
                now=now,
            )
            for n in self.ctx.catalog.names()
            if sizes.get(n) is not None
        ]

    def not_hosted(self, *, db: Session) -> list[str]:
        """Configured datasets with no prepared pool on this server."""
        sizes = self.pool_sizes(db)
        return [n for n in self.ctx.catalog.names() if sizes.get(n) is None]

    def boards_for(
        self,
        *,
        db: Session,
        dataset: str,
        fraction: float | None = None,
        recipe: str | None = None,
        version: str | None = None,
        task: str | None = None,
        all_entries: bool = False,
        organizer: bool = False,
        now: datetime | None = None,
    ) -> tuple[list[Board], DatasetSpec]:
        """The boards a request names (every fraction unless one is given)."""
        now = now or utcnow()
        spec = self.ctx.catalog.spec(dataset)
        recipe = recipe or spec.default_recipe
        self.ctx.catalog.specs.recipe(recipe)  # UnknownName with suggestions for a typo
        version = version or self.recipe_version(recipe)
        visible = self.visible(spec, organizer=organizer, now=now)
        if task is not None and task not in visible:
            spec.task(task)  # UnknownName with suggestions for a typo
            raise NotFound(f"task {task!r} of {dataset} is hidden until its test is revealed")
        fractions = spec.fractions if fraction is None else (_allowed(spec, fraction),)
        of = BundleOf(dataset, recipe, version, (task,) if task else visible, task, all_entries)
        bundle = self.boards.bundle(db=db, of=of)
        return [bundle.boards[f] for f in fractions], spec

    def board_page(
        self,
        *,
        db: Session,
        dataset: str,
        fraction: float | None = None,
        recipe: str | None = None,
        version: str | None = None,
        task: str | None = None,
        all_entries: bool = False,
        organizer: bool = False,
        now: datetime | None = None,
    ) -> BoardPage:
        now = now or utcnow()
        spec = self.ctx.catalog.spec(dataset)
        fraction = spec.fractions[0] if fraction is None else fraction
        (board,), spec = self.boards_for(
            db=db,
            dataset=dataset,
            fraction=fraction,
            recipe=recipe,
            version=version,
            task=task,
            all_entries=all_entries,
            organizer=organizer,
            now=now,
        )
        key = board.key
        of = BundleOf(dataset, key.recipe, key.recipe_version, board.tasks, task)
        bundle = self.boards.bundle(db=db, of=of)
        info = self.dataset_info(
            db=db,
            spec=spec,
            pool_size=self.pool_sizes(db).get(dataset),
            organizer=organizer,
            now=now,
        )
        present = recipe_versions(db=db, dataset=dataset)
        recipes = sorted(
            {*present, (spec.default_recipe, info.recipe_version), (key.recipe, key.recipe_version)}
        )
        return BoardPage(
            dataset=info,
            board=board,
            budget=info.budget(key.fraction),
            recipes=tuple(recipes),
            series=bundle.series,
            organizer=organizer,
        )

    def submission(
        self,
        *,
        db: Session,
        submission_id: int,
        viewer: public_rows.Viewer = public_rows.PUBLIC,
        now: datetime | None = None,
    ) -> SubmissionView:
        """The page of one submission: its team and organizers see everything, the public
        only a submission the public boards show (else NotFound, as the API answers)."""
        now = now or utcnow()
        sub = db.get(Submission, submission_id)
        if sub is None or not viewer.may_see(sub) or (sub.hidden and not viewer.organizer):
            raise NotFound(f"submission {submission_id} not found")
        organizer, owner = viewer.organizer, viewer.owns(sub)
        spec = self.ctx.catalog.spec(sub.dataset)
        team = db.get(Team, sub.team_id)
        ev = db.get(Evaluation, submission_id)
        visible = set(self.visible(spec, organizer=organizer, now=now))
        covered = [sub.task] if sub.task else spec.task_names()
        scores = public_rows.scores(
            db=db, submission_id=sub.id, exclude_tasks=set(covered) - visible
        )
        intervals = self._intervals(db, spec, sub.id, [s.task for s in scores])
        version = ev.recipe_version if ev else self.recipe_version(sub.recipe)
        manifest = public_rows.manifest(db=db, submission_id=sub.id)
        pool = self.pool_sizes(db).get(sub.dataset)
        fraction = snap_fraction(spec, sub.fraction)
        return SubmissionView(
            id=submission_id,
            team=team.name if team else "?",
            dataset=sub.dataset,
            fraction=sub.fraction,
            task=sub.task,
            recipe=sub.recipe,
            recipe_version=version if ev else None,
            kind=sub.kind if sub.kind in ("baseline", "oracle") else "submission",  # type: ignore[arg-type]
            method=sub.name,
            sha256=sub.sha256,
            size=sub.size,
            budget=None
            if pool is None or fraction is None
            else spec.budget(fraction, pool_size=pool),
            state=sub.state,
            hidden=sub.hidden,
            disqualified=sub.disqualified,
            error=sub.error if organizer else public_rows.participant_error(sub),
            created_at=aware(sub.created_at),
            updated_at=aware(sub.updated_at),
            scored_at=aware(sub.scored_at) if sub.scored_at else None,
            primary_metric=spec.primary_metric,
            higher_is_better=spec.higher_is_better,
            events=_events(db, sub, organizer=organizer, owner=owner),
            scores=tuple(
                TaskScores(
                    s.task,
                    s.test_size,
                    len(s.seeds),
                    s.mean,
                    s.std,
                    tuple(SeedScores(x.seed, x.metrics) for x in s.seeds),
                    intervals.get(s.task),
                )
                for s in scores
            ),
            hidden_tasks=tuple(t for t in covered if t not in visible) if ev else (),
            picked=sub.picked and owner,
            manifest=manifest.model_dump(mode="json") if manifest else None,
            references=self._references(db, sub, version, fraction, visible) if ev else {},
        )

    def _intervals(
        self, db: Session, spec: DatasetSpec, sid: int | None, tasks: Sequence[str]
    ) -> dict[str, tuple[float, float]]:
        """The primary metric's 95% interval per task, as the boards resample it."""
        assert sid is not None
        mine = primary_outcomes(db=db, spec=spec, submission_ids=[sid], tasks=tasks,
                                replicates=self.ctx.replicates_dir).get(sid)  # fmt: skip
        if not mine:
            return {}
        stats = self.ctx.catalog.task_stats(spec.name, tasks)
        return task_intervals({t: mine.get(t) for t in tasks}, tasks=stats) if stats else {}

    def _references(
        self, db: Session, sub: Submission, version: str, fraction: float | None, tasks: set[str]
    ) -> Mapping[str, Mapping[str, float]]:
        """Baseline and oracle values per task on the submission's board, for its bar chart."""
        if fraction is None:
            return {}
        spec = self.ctx.catalog.spec(sub.dataset)
        ordered = tuple(t for t in spec.task_names() if t in tasks)
        bundle = self.boards.bundle(db=db, of=BundleOf(sub.dataset, sub.recipe, version, ordered))
        return {
            e.label: {t: c.mean for t, c in e.cells.items()}
            for e in bundle.boards[fraction].entries
            if e.reference and e.submission_ids != (sub.id,)
        }

    def team(
        self,
        *,
        db: Session,
        name: str,
        viewer: public_rows.Viewer = public_rows.PUBLIC,
        now: datetime | None = None,
    ) -> TeamView:
        """A team's standings and submissions: all of them for the team and organizers
        (hidden ones for organizers only), the publicly shown ones for everyone else."""
        now = now or utcnow()
        organizer = viewer.organizer
        team = db.exec(select(Team).where(Team.name == name)).first()
        if team is None:
            raise NotFound(f"no team named {name!r}")
        stmt = select(Submission).where(Submission.team_id == team.id)
        if not organizer:
            stmt = stmt.where(col(Submission.hidden).is_(False))
        if not (organizer or viewer.team_id == team.id):
            stmt = stmt.where(*public_rows.ON_PUBLIC_BOARDS)
        subs = db.exec(stmt.order_by(col(Submission.id).desc())).all()
        return TeamView(
            name=team.name,
            created_at=aware(team.created_at),
            submissions=tuple(_summary(s) for s in subs),
            standings=tuple(self._standings(db, team.name, subs, organizer=organizer, now=now)),
        )

    def _standings(
        self, db: Session, team: str, subs: Sequence[Submission], *, organizer: bool, now: datetime
    ) -> list[Standing]:
        out: list[Standing] = []
        for dataset in sorted({s.dataset for s in subs if s.state == "scored"}):
            spec = self.ctx.catalog.spec(dataset)
            version = self.recipe_version(spec.default_recipe)
            tasks = self.visible(spec, organizer=organizer, now=now)
            of = BundleOf(dataset, spec.default_recipe, version, tasks)
            bundle = self.boards.bundle(db=db, of=of)
            for f, board in bundle.boards.items():
                mine = next((e for e in board.entries if e.team == team and not e.reference), None)
                if mine is not None:
                    ranked = sum(1 for e in board.entries if e.rank is not None)
                    out.append(
                        Standing(
                            dataset,
                            f,
                            spec.default_recipe,
                            version,
                            mine.rank,
                            ranked,
                            mine.score,
                            mine.missing,
                        )
                    )
        return out


def _allowed(spec: DatasetSpec, fraction: float) -> float:
    try:
        return check_fraction(spec, fraction)
    except ConfigError as err:
        raise NotFound(str(err)) from None


def _events(db: Session, sub: Submission, *, organizer: bool, owner: bool) -> tuple[EventView, ...]:
    """The full timeline for the team and organizers; for the public, when it was submitted
    and scored, without actors or reasons (the board shows no more)."""
    rows = public_rows.events(db=db, submission_id=sub.id, organizer=organizer, picks=owner)
    if not owner:
        return tuple(
            EventView(aware(e.created_at), e.action, e.from_state, e.to_state, None, None)
            for e in rows
            if e.action in public_rows.PUBLIC_ACTIONS
        )
    return tuple(
        EventView(aware(e.created_at), e.action, e.from_state, e.to_state, e.actor, e.reason)
        for e in rows
    )


def _summary(s: Submission) -> SubmissionSummary:
    assert s.id is not None
    return SubmissionSummary(
        id=s.id,
        dataset=s.dataset,
        fraction=s.fraction,
        task=s.task,
        recipe=s.recipe,
        kind=s.kind if s.kind in ("baseline", "oracle") else "submission",  # type: ignore[arg-type]
        method=s.name,
        state=s.state,
        size=s.size,
        created_at=aware(s.created_at),
        disqualified=s.disqualified,
    )
