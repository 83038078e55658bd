"""Rows -> public schemas, applying who may see what.

    public_rows.public(sub, team="lab", settings=settings)                    # SubmissionPublic
    public_rows.detail(db=db, ctx=ctx, sub=sub, principal=p)                  # with scores, events

Participants never see hidden-task scores before the reveal, nor infrastructure error
text and log tails (those are for organizers); organizers see everything. Final picks
(``picked`` and the ``pick`` / ``unpick`` events) are for the owning team and organizers:
the API shows these rows to no one else, the public pages leave picks out.

The public (and any other team) sees a submission only as the public boards show it:
scored, neither hidden nor disqualified, with a timeline of when it was submitted and
scored. Its queue states, failures, workers and reasons are for its team and organizers
(:class:`Viewer`), as in the API.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, col, select

from server.context import ServerContext
from server.models import Evaluation, Result, Submission, SubmissionEvent, TaskScore, Team
from server.services.auth import Principal
from server.settings import Settings
from submissions.schemas import (
    EventPublic,
    Manifest,
    SeedResult,
    State,
    SubmissionDetail,
    SubmissionPublic,
    TaskScorePublic,
)

# What a public board shows (SQL, for queries; :func:`on_public_boards` for a loaded row).
ON_PUBLIC_BOARDS = (
    col(Submission.state) == State.scored.value,
    col(Submission.hidden).is_(False),
    col(Submission.disqualified).is_(False),
)
# The events the public sees on a public submission's page (without actors or reasons).
PUBLIC_ACTIONS = frozenset({"submit", "reference", "score"})


def on_public_boards(sub: Submission) -> bool:
    return sub.state == State.scored and not sub.hidden and not sub.disqualified


@dataclass(frozen=True)
class Viewer:
    """Who reads a page: the public (the default), a team by its token, or an organizer."""

    organizer: bool = False
    team_id: int | None = None

    def owns(self, sub: Submission) -> bool:
        """Whether this viewer sees all of ``sub`` (its team's or an organizer's view)."""
        return self.organizer or (self.team_id is not None and sub.team_id == self.team_id)

    def may_see(self, sub: Submission) -> bool:
        return self.owns(sub) or on_public_boards(sub)


PUBLIC, ORGANIZER = Viewer(), Viewer(organizer=True)


INFRA_MESSAGE = (
    "evaluation failed for infrastructure reasons; it does not count against your quota "
    "and the organizers have been notified"
)
RETRY_MESSAGE = "an infrastructure failure interrupted the evaluation; it will be retried"


def participant_error(sub: Submission) -> str | None:
    if sub.state == State.failed_user:
        return sub.error
    if sub.state == State.failed_infra:
        return INFRA_MESSAGE
    if sub.state == State.queued and sub.attempts > 0:
        return RETRY_MESSAGE
    return None


def public(
    sub: Submission, *, team: str, settings: Settings, organizer: bool = False
) -> SubmissionPublic:
    assert sub.id is not None
    return SubmissionPublic(
        id=sub.id,
        team=team,
        dataset=sub.dataset,
        fraction=sub.fraction,
        task=sub.task,
        recipe=sub.recipe,
        sha256=sub.sha256,
        size=sub.size,
        state=State(sub.state),
        kind=sub.kind,  # type: ignore[arg-type]
        name=sub.name,
        error=sub.error if organizer else participant_error(sub),
        created_at=sub.created_at,
        updated_at=sub.updated_at,
        url=settings.public_url(f"/submissions/{sub.id}"),
        picked=sub.picked,  # the API shows a row only to its team and organizers
    )


def detail(
    *, db: Session, ctx: ServerContext, sub: Submission, principal: Principal
) -> SubmissionDetail:
    org = principal.is_organizer
    team = db.get(Team, sub.team_id)
    base = public(sub, team=team.name if team else "?", settings=ctx.settings, organizer=org)
    hidden = set() if org else ctx.catalog.hidden_tasks(sub.dataset)
    extra = {
        "attempts": sub.attempts,
        "worker": sub.worker,
        "executor_job_id": sub.executor_job_id,
        "lease_expires_at": sub.lease_expires_at,
        "log_tail": sub.log_tail,
    }
    return SubmissionDetail(
        **base.model_dump(),
        hidden=sub.hidden,
        disqualified=sub.disqualified,
        not_before=sub.not_before,
        scores=scores(db=db, submission_id=sub.id, exclude_tasks=hidden),
        events=events(db=db, submission_id=sub.id, organizer=org, picks=True),
        manifest=manifest(db=db, submission_id=sub.id),
        **(extra if org else {}),
    )


def scores(
    *, db: Session, submission_id: int | None, exclude_tasks: set[str]
) -> list[TaskScorePublic]:
    rows = db.exec(select(TaskScore).where(TaskScore.submission_id == submission_id)).all()
    seeds = db.exec(
        select(Result).where(Result.submission_id == submission_id).order_by(col(Result.seed))
    ).all()
    return [
        TaskScorePublic(
            task=r.task,
            test_size=r.test_size,
            mean=r.mean,
            std=r.std,
            seeds=[
                SeedResult(seed=s.seed, metrics=s.metrics, per_class=s.per_class or {})
                for s in seeds
                if s.task == r.task
            ],
        )
        for r in sorted(rows, key=lambda r: r.task)
        if r.task not in exclude_tasks
    ]


INFRA_ACTIONS = frozenset({"fail_infra", "retry_infra", "lease_expired"})
PICK_ACTIONS = frozenset({"pick", "unpick"})


def events(
    *, db: Session, submission_id: int | None, organizer: bool, picks: bool | None = None
) -> list[EventPublic]:
    """The timeline; infrastructure details (worker messages) are for organizers only, pick
    events for the team and organizers (``picks``; default: ``organizer``)."""
    show_picks = organizer if picks is None else picks
    rows = db.exec(
        select(SubmissionEvent)
        .where(SubmissionEvent.submission_id == submission_id)
        .order_by(col(SubmissionEvent.id))
    ).all()
    return [
        EventPublic(
            action=e.action,
            from_state=State(e.from_state) if e.from_state else None,
            to_state=State(e.to_state),
            actor=e.actor,
            reason=e.reason if organizer or e.action not in INFRA_ACTIONS else None,
            created_at=e.created_at,
        )
        for e in rows
        if show_picks or e.action not in PICK_ACTIONS
    ]


def manifest(*, db: Session, submission_id: int | None) -> Manifest | None:
    ev = db.get(Evaluation, submission_id)
    if ev is None:
        return None
    return Manifest.model_validate(ev.result["manifest"])
