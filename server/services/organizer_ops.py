"""Organizer-side services: leases for workers, results, failures and moderation.

    claimed = claim(db=db, ctx=ctx, request=ClaimRequest(worker="w1"), actor="organizer:ops")
    heartbeat(db=db, ctx=ctx, submission_id=7, beat=Heartbeat(lease_token=tok, job_id="123"))
    post_result(db=db, ctx=ctx, submission_id=7, post=ResultPost(lease_token=tok, result=r))
    fail(db=db, ctx=ctx, submission_id=7, post=FailurePost(lease_token=tok, kind="infra", ...))
    moderate(db=db, ctx=ctx, submission_id=7, action="hide", reason="...", actor="organizer:ops")

Moderations (API ``POST /api/organizer/submissions/{id}/{action}`` and ``tdc-server
submissions ACTION ID...``) make exactly one event each; setting a flag to the value it has
already is refused (IllegalTransition), as is a move to the state a row is in. ``rescore``
is in ``server.services.rescore``.

A lease is valid while the row is ``running`` with that token and an unexpired
``lease_expires_at``; every check is part of the compare-and-set, so a stale worker can
never overwrite a newer one. Infrastructure failures (including an expired lease) go back to
``queued`` with exponential backoff until ``max_attempts``, then ``failed_infra``.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from sqlmodel import Session, col, or_, select

from server.context import ServerContext
from server.errors import Conflict, IllegalTransition, InvalidRequest, NotFound
from server.models import Evaluation, Result, Submission, SubmissionEvent, TaskScore, Team, utcnow
from server.services import outcomes, public_rows, rescore, transitions
from submissions.errors import TdcError
from submissions.metric_ranges import metric_problems
from submissions.schemas import (
    ClaimedSubmission,
    ClaimRequest,
    EvalIdentity,
    EvalResult,
    FailurePost,
    Heartbeat,
    ResultPost,
    State,
    SubmissionPublic,
)

log = logging.getLogger(__name__)

Moderation = Literal["requeue", "cancel", "hide", "unhide", "disqualify", "requalify", "rescore"]
Moderator = Callable[[Session, ServerContext, Submission, str, str], None]


def _lease_ok(token: str, now: datetime) -> list:  # type: ignore[type-arg]
    return [Submission.lease_token == token, col(Submission.lease_expires_at) > now]


def _load(db: Session, submission_id: int) -> Submission:
    sub = db.get(Submission, submission_id)
    if sub is None:
        raise NotFound(f"submission {submission_id} not found")
    return sub


def _check_lease(sub: Submission, token: str, now: datetime) -> None:
    if sub.state != State.running or sub.lease_token != token:
        raise Conflict(f"submission {sub.id} is not leased with this token (state {sub.state})")
    if sub.lease_expires_at is None or sub.lease_expires_at <= now:
        raise Conflict(f"the lease on submission {sub.id} has expired")


def claim(
    *, db: Session, ctx: ServerContext, request: ClaimRequest, actor: str
) -> list[ClaimedSubmission]:
    """Lease up to ``max_jobs`` queued submissions, oldest first, reclaiming expired leases."""
    now = utcnow()
    expire_leases(db=db, ctx=ctx, now=now)
    out: list[ClaimedSubmission] = []
    lost: set[int] = set()
    while len(out) < request.max_jobs:
        batch = _candidates(db, request, now, exclude=lost, limit=request.max_jobs - len(out))
        if not batch:
            break
        for sub in batch:
            try:
                out.append(_claim_one(db, sub, request, actor, now))
                db.commit()
            except Conflict:  # another worker took it first
                db.rollback()
                assert sub.id is not None
                lost.add(sub.id)
    return out


def _candidates(
    db: Session, request: ClaimRequest, now: datetime, *, exclude: set[int], limit: int
) -> list[Submission]:
    stmt = select(Submission).where(
        Submission.state == State.queued.value,
        or_(col(Submission.not_before).is_(None), col(Submission.not_before) <= now),
        col(Submission.id).not_in(exclude),
    )
    if request.dataset:
        stmt = stmt.where(Submission.dataset == request.dataset)
    stmt = stmt.order_by(col(Submission.created_at), col(Submission.id)).limit(limit)
    return list(db.exec(stmt).all())


def _claim_one(
    db: Session, sub: Submission, request: ClaimRequest, actor: str, now: datetime
) -> ClaimedSubmission:
    token, until = secrets.token_hex(16), now + timedelta(seconds=request.lease_seconds)
    transitions.transition(
        db=db,
        sub=sub,
        to=State.running,
        action="claim",
        actor=actor,
        reason=f"leased to {request.worker} until {until.isoformat()}",
        changes={
            "lease_token": token,
            "lease_expires_at": until,
            "worker": request.worker,
            "attempts": sub.attempts + 1,
            "not_before": None,
        },
        now=now,
    )
    assert sub.id is not None
    return ClaimedSubmission(
        id=sub.id,
        identity=EvalIdentity.of(sub),
        attempts=sub.attempts,
        lease_token=token,
        lease_expires_at=until,
    )


def expire_leases(*, db: Session, ctx: ServerContext, now: datetime | None = None) -> int:
    """Running submissions whose lease ran out count as an infra failure; returns how many."""
    now = now or utcnow()
    stale = db.exec(
        select(Submission).where(
            Submission.state == State.running.value, col(Submission.lease_expires_at) <= now
        )
    ).all()
    n = 0
    for sub in stale:
        try:
            _infra_failure(
                db,
                ctx,
                sub,
                message=f"lease of worker {sub.worker} expired",
                log_tail=None,
                actor="system",
                action="lease_expired",
                where=[
                    Submission.lease_token == sub.lease_token,
                    col(Submission.lease_expires_at) <= now,
                ],
                now=now,
            )
            db.commit()
            n += 1
        except Conflict:  # heartbeat or another claimer got there first
            db.rollback()
    return n


def _infra_failure(
    db: Session,
    ctx: ServerContext,
    sub: Submission,
    *,
    message: str,
    log_tail: str | None,
    actor: str,
    action: str,
    where: list,  # type: ignore[type-arg]
    now: datetime,
) -> None:
    retry = sub.attempts < ctx.settings.max_attempts
    delay = ctx.settings.retry_backoff_s * 2 ** max(sub.attempts - 1, 0)
    changes: dict[str, object] = {
        "lease_token": None,
        "lease_expires_at": None,
        "error": message,
        "log_tail": log_tail,
        "not_before": now + timedelta(seconds=delay) if retry else None,
    }
    if not retry:  # the platform failed: never charged to the team's quota
        changes["counts_for_quota"] = False
    reason = f"{message} (attempt {sub.attempts} of {ctx.settings.max_attempts})"
    transitions.transition(
        db=db,
        sub=sub,
        to=State.queued if retry else State.failed_infra,
        action="retry_infra" if retry and action == "fail_infra" else action,
        actor=actor,
        reason=reason + (f"; retry after {delay:g} s" if retry else "; giving up"),
        changes=changes,
        where=where,
        now=now,
    )


def heartbeat(*, db: Session, ctx: ServerContext, submission_id: int, beat: Heartbeat) -> datetime:
    """Extend a valid lease (and record the executor's job id); returns the new expiry."""
    now = utcnow()
    sub = _load(db, submission_id)
    _check_lease(sub, beat.lease_token, now)
    until = now + timedelta(seconds=min(beat.lease_seconds, ctx.settings.lease_seconds_max))
    new_job = beat.job_id is not None and beat.job_id != sub.executor_job_id
    try:
        transitions.extend_lease(
            db=db,
            sub=sub,
            changes={"lease_expires_at": until}
            | ({"executor_job_id": beat.job_id} if new_job else {}),
            where=_lease_ok(beat.lease_token, now),
            now=now,
        )
        if new_job:
            transitions.record(db=db, sub=sub, action="job", actor="worker", reason=beat.job_id)
        if beat.job_state and (new_job or beat.job_state != _last_job_state(db, sub)):
            transitions.record(
                db=db, sub=sub, action="job_state", actor="worker", reason=beat.job_state
            )
        db.commit()
    except TdcError:
        db.rollback()
        raise
    return until


def _last_job_state(db: Session, sub: Submission) -> str | None:
    stmt = (
        select(SubmissionEvent.reason)
        .where(SubmissionEvent.submission_id == sub.id, SubmissionEvent.action == "job_state")
        .order_by(col(SubmissionEvent.id).desc())
        .limit(1)
    )
    return db.exec(stmt).first()


def post_result(
    *, db: Session, ctx: ServerContext, submission_id: int, post: ResultPost, actor: str
) -> tuple[SubmissionPublic, bool]:
    """Record a result exactly once: ``(row, changed?)``; a repeat for a scored row is a no-op."""
    now = utcnow()
    sub = _load(db, submission_id)
    if sub.state == State.scored:
        return _public(db, ctx, sub), False
    _check_lease(sub, post.lease_token, now)
    _check_result(ctx, sub, post.result)
    try:
        write_scores(db, ctx, sub, post.result, now)
        transitions.transition(
            db=db,
            sub=sub,
            to=State.scored,
            action="score",
            actor=actor,
            reason=f"job {post.result.manifest.job_id or '-'} on {post.result.manifest.executor}",
            changes={
                "lease_token": None,
                "lease_expires_at": None,
                "error": None,
                "scored_at": now,
            },
            where=_lease_ok(post.lease_token, now),
            now=now,
        )
        db.commit()
    except TdcError:
        db.rollback()
        db.refresh(sub)
        if sub.state == State.scored:  # a concurrent duplicate post won
            return _public(db, ctx, sub), False
        raise
    return _public(db, ctx, sub), True


def _check_result(ctx: ServerContext, sub: Submission, result: EvalResult) -> None:
    spec = ctx.catalog.spec(sub.dataset)
    expected = {sub.task} if sub.task else set(spec.task_names())
    got = [t.task for t in result.tasks]
    problems = EvalIdentity.of(sub).differences(result.identity)
    if set(got) != expected or len(got) != len(set(got)):
        problems.append(f"tasks are {sorted(got)}, expected {sorted(expected)} once each")
    if problems:
        raise InvalidRequest("result does not match the submission: " + "; ".join(problems))
    if bad := metric_problems(result):
        raise InvalidRequest("result has invalid metric values: " + "; ".join(bad))
    if bad := outcomes.outcome_problems(ctx=ctx, result=result):
        raise InvalidRequest("result has invalid per-example outcomes: " + "; ".join(bad))


_OUTCOMES = {"tasks": {"__all__": {"seeds": {"__all__": {"outcomes"}}}}}


def write_scores(
    db: Session, ctx: ServerContext, sub: Submission, result: EvalResult, now: datetime
) -> None:
    """The evaluation, per-seed results and outcomes, and task scores of ``sub`` (flushed;
    the caller commits). Outcomes go to their own table, not into the evaluation's JSON."""
    spec = ctx.catalog.spec(sub.dataset)
    m = result.manifest
    db.add(
        Evaluation(
            submission_id=transitions.sid(sub),
            recipe_version=m.recipe_version,
            recipe_hash=m.recipe_hash,
            code_version=m.code_version,
            result=result.model_dump(mode="json", exclude=_OUTCOMES),  # stored as bytes below
            created_at=now,
        )
    )
    outcomes.write_outcomes(db=db, submission_id=transitions.sid(sub), result=result)
    for task in result.tasks:
        for seed in task.seeds:
            db.add(
                Result(
                    submission_id=transitions.sid(sub),
                    task=task.task,
                    seed=seed.seed,
                    metrics=seed.metrics,
                    per_class=seed.per_class,
                )
            )
        db.add(
            TaskScore(
                submission_id=transitions.sid(sub),
                dataset=sub.dataset,
                task=task.task,
                test_size=task.test_size,
                n_seeds=len(task.seeds),
                primary=task.mean.get(spec.primary_metric),
                primary_std=task.std.get(spec.primary_metric),
                secondary=task.mean.get(spec.secondary_metric or ""),
                secondary_std=task.std.get(spec.secondary_metric or ""),
                mean=task.mean,
                std=task.std,
            )
        )
    db.flush()


def fail(
    *, db: Session, ctx: ServerContext, submission_id: int, post: FailurePost, actor: str
) -> SubmissionPublic:
    """``user``: failed_user with the message for the participant; ``infra``: retry/backoff."""
    now = utcnow()
    sub = _load(db, submission_id)
    _check_lease(sub, post.lease_token, now)
    try:
        if post.kind == "user":
            transitions.transition(
                db=db,
                sub=sub,
                to=State.failed_user,
                action="fail_user",
                actor=actor,
                reason=post.message,
                changes={
                    "lease_token": None,
                    "lease_expires_at": None,
                    "error": post.message,
                    "log_tail": post.log_tail,
                },
                where=_lease_ok(post.lease_token, now),
                now=now,
            )
        else:
            _infra_failure(
                db,
                ctx,
                sub,
                message=post.message,
                log_tail=post.log_tail,
                actor=actor,
                action="fail_infra",
                where=_lease_ok(post.lease_token, now),
                now=now,
            )
        db.commit()
    except TdcError:
        db.rollback()
        raise
    return _public(db, ctx, sub)


def moderate(
    *,
    db: Session,
    ctx: ServerContext,
    submission_id: int,
    action: Moderation,
    reason: str,
    actor: str,
) -> SubmissionPublic:
    """An organizer's requeue / cancel / hide / unhide / disqualify / requalify / rescore."""
    sub = _load(db, submission_id)
    try:
        MODERATIONS[action](db, ctx, sub, reason, actor)
        db.commit()
    except TdcError:
        db.rollback()
        raise
    return _public(db, ctx, sub)


def _requeue(db: Session, ctx: ServerContext, sub: Submission, reason: str, actor: str) -> None:
    transitions.transition(
        db=db,
        sub=sub,
        to=State.queued,
        action="requeue",
        actor=actor,
        reason=reason,
        changes=transitions.FRESH_QUEUE,
    )


def _cancel(db: Session, ctx: ServerContext, sub: Submission, reason: str, actor: str) -> None:
    transitions.transition(
        db=db,
        sub=sub,
        to=State.cancelled,
        action="cancel",
        actor=actor,
        reason=reason,
        changes={
            "dedup_key": None,
            "lease_token": None,
            "lease_expires_at": None,
            "counts_for_quota": False,
        },
    )


def _flag(flag: transitions.Flag, value: bool) -> Moderator:
    def run(db: Session, ctx: ServerContext, sub: Submission, reason: str, actor: str) -> None:
        if getattr(sub, flag) == value:
            raise IllegalTransition(
                f"submission {sub.id} is {'already' if value else 'not'} {flag}: nothing to change"
            )
        transitions.set_flag(db=db, sub=sub, flag=flag, value=value, actor=actor, reason=reason)

    return run


def _rescore(db: Session, ctx: ServerContext, sub: Submission, reason: str, actor: str) -> None:
    rescore.rescore(db=db, ctx=ctx, sub=sub, reason=reason, actor=actor)


MODERATIONS: dict[str, Moderator] = {
    "requeue": _requeue,
    "cancel": _cancel,
    "hide": _flag("hidden", True),
    "unhide": _flag("hidden", False),
    "disqualify": _flag("disqualified", True),
    "requalify": _flag("disqualified", False),
    "rescore": _rescore,
}


def _public(db: Session, ctx: ServerContext, sub: Submission) -> SubmissionPublic:
    team = db.get(Team, sub.team_id)
    return public_rows.public(
        sub, team=team.name if team else "?", settings=ctx.settings, organizer=True
    )


def list_all(
    *,
    db: Session,
    ctx: ServerContext,
    state: State | None = None,
    dataset: str | None = None,
    team: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[SubmissionPublic]:
    """Every team's submissions for organizers (e.g. ``state=failed_infra``), newest first."""
    stmt = select(Submission, Team).join(Team, col(Team.id) == Submission.team_id)
    if state:
        stmt = stmt.where(Submission.state == state.value)
    if dataset:
        stmt = stmt.where(Submission.dataset == dataset)
    if team:
        stmt = stmt.where(Team.name == team)
    stmt = stmt.order_by(col(Submission.id).desc()).offset(offset).limit(limit)
    return [
        public_rows.public(s, team=t.name, settings=ctx.settings, organizer=True)
        for s, t in db.exec(stmt).all()
    ]


def file_path(*, db: Session, ctx: ServerContext, submission_id: int) -> Path:
    """Where the submission's uploaded file is stored (for the worker to download)."""
    sub = _load(db, submission_id)
    path = ctx.storage.path_for(sub.file_sha256)
    if not path.is_file():
        raise NotFound(f"the file of submission {submission_id} is missing from storage")
    return path
