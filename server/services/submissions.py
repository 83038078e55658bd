"""Participant-side submission services: create (validate, quota, store), read, cancel.

    sub, created = create_submission(db=db, ctx=ctx, principal=p, meta=meta, staged=staged)
    detail = get_submission(db=db, ctx=ctx, principal=p, submission_id=sub.id)
    cancel_submission(db=db, ctx=ctx, principal=p, submission_id=sub.id, reason="oops")

Idempotency: a live row per (team, dataset, fraction, task, recipe, subset sha256) and per
(team, Idempotency-Key) is enforced by unique constraints, so a retried or duplicated
upload returns the existing row (``created`` False) even when both race.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from harness.specs import check_fraction
from server.context import ServerContext
from server.errors import Conflict, Forbidden, InvalidRequest, NotFound, QuotaExceeded
from server.models import Submission, Team, utcnow
from server.services import public_rows, transitions
from server.services.auth import Principal, get_or_create_team, lock_teams
from server.storage import StagedUpload
from submissions.errors import ConfigError, TdcError
from submissions.schemas import (
    EvalIdentity,
    Kind,
    State,
    SubmissionDetail,
    SubmissionMeta,
    SubmissionPublic,
)

log = logging.getLogger(__name__)

QUOTA_WINDOW = timedelta(hours=24)


def resolve_meta(*, ctx: ServerContext, meta: SubmissionMeta) -> SubmissionMeta:
    """``meta`` with the canonical fraction and the recipe filled in; 4xx if not allowed."""
    spec = ctx.catalog.spec(meta.dataset)
    try:
        fraction = check_fraction(spec, meta.fraction)
    except ConfigError as err:
        raise InvalidRequest(str(err)) from None
    if meta.task is not None:
        spec.task(meta.task)
    recipe_name = meta.recipe or spec.default_recipe
    recipe = ctx.catalog.specs.recipe(recipe_name)
    if spec.task_type not in recipe.task_types:
        raise InvalidRequest(f"recipe {recipe_name!r} does not apply to {spec.task_type} datasets")
    return meta.model_copy(update={"fraction": fraction, "recipe": recipe_name})


def create_submission(
    *,
    db: Session,
    ctx: ServerContext,
    principal: Principal,
    meta: SubmissionMeta,
    staged: StagedUpload,
    kind: Kind = "submission",
    team: str | None = None,
    idempotency_key: str | None = None,
    now: datetime | None = None,
) -> tuple[SubmissionPublic, bool]:
    """Validate, charge the quota, store and queue an upload; ``(public row, created?)``."""
    if (kind != "submission" or team) and not principal.is_organizer:
        raise Forbidden("only organizers upload baselines, oracles or for another team")
    meta = resolve_meta(ctx=ctx, meta=meta)
    owner = get_or_create_team(db=db, name=team) if team else db.get(Team, principal.team_id)
    assert owner is not None and owner.id is not None and meta.recipe is not None
    if idempotency_key:
        replay = _idempotent_replay(db, owner.id, idempotency_key, meta, staged.sha256)
        if replay is not None:
            return public_rows.public(replay, team=owner.name, settings=ctx.settings), False
    report = ctx.validator(
        staged.path,
        ds=ctx.catalog.dataset(meta.dataset),
        fraction=meta.fraction,
        task=meta.task,
        max_bytes=ctx.settings.max_upload_bytes,
    )
    if not report.sha256:  # a valid report always has one; never queue without identity
        raise InvalidRequest("the validator returned no subset identity")
    identity = EvalIdentity(
        dataset=meta.dataset,
        fraction=meta.fraction,
        task=meta.task,
        recipe=meta.recipe,
        sha256=report.sha256,
    )
    key = identity.key
    now = now or utcnow()
    lock_teams(db, [owner.id])  # serialises this team's uploads: quota and keys cannot be raced
    try:
        existing = _existing(db, owner.id, key, idempotency_key, meta, staged.sha256)
    except TdcError:
        db.rollback()
        raise
    if existing is not None:
        db.rollback()
        return public_rows.public(existing, team=owner.name, settings=ctx.settings), False
    if kind == "submission" and not principal.is_organizer:
        _check_quota(db, ctx, owner.id, meta.dataset, now)
    sub = Submission(
        team_id=owner.id,
        **identity.model_dump(),
        kind=kind,
        name=meta.name,
        file_sha256=staged.sha256,
        size=int(report.size),
        file_bytes=staged.nbytes,
        dedup_key=key,
        idempotency_key=idempotency_key,
        counts_for_quota=kind == "submission" and not principal.is_organizer,
        created_at=now,
        updated_at=now,
    )
    try:
        _insert(db, ctx, sub, principal, staged)
    except IntegrityError:  # a constraint caught what the locked checks did not: answer with
        db.rollback()  # the row that won (or 409 for a reused Idempotency-Key), as above
        winner = _existing(db, owner.id, key, idempotency_key, meta, staged.sha256)
        if winner is None:
            raise
        return public_rows.public(winner, team=owner.name, settings=ctx.settings), False
    log.info("submission %s queued: team %s, %s@%g", sub.id, owner.name, sub.dataset, sub.fraction)
    return public_rows.public(sub, team=owner.name, settings=ctx.settings), True


def _existing(
    db: Session, team_id: int, key: str, idem: str | None, meta: SubmissionMeta, sha256: str
) -> Submission | None:
    """The live row this upload repeats (by its Idempotency-Key, whose reuse for another
    upload is a Conflict, or by identity), else None."""
    if idem and (replay := _idempotent_replay(db, team_id, idem, meta, sha256)) is not None:
        return replay
    return db.exec(
        select(Submission).where(Submission.team_id == team_id, Submission.dedup_key == key)
    ).first()


def _insert(
    db: Session, ctx: ServerContext, sub: Submission, principal: Principal, staged: StagedUpload
) -> None:
    """Flush the row (unique constraints fire here), store the file, then commit: a file is
    stored only for a row about to be committed, and is durable before that commit."""
    db.add(sub)
    db.flush()
    transitions.record(db=db, sub=sub, action="submit", actor=principal.actor)
    try:
        ctx.storage.commit(staged)
    except TdcError:  # storage unwritable: no row without its file
        db.rollback()
        raise
    db.commit()
    db.refresh(sub)


def _idempotent_replay(
    db: Session, team_id: int, key: str, meta: SubmissionMeta, file_sha256: str
) -> Submission | None:
    sub = db.exec(
        select(Submission).where(Submission.team_id == team_id, Submission.idempotency_key == key)
    ).first()
    if sub is None:
        return None
    same = (sub.dataset, sub.fraction, sub.task, sub.recipe, sub.file_sha256) == (
        meta.dataset,
        meta.fraction,
        meta.task,
        meta.recipe,
        file_sha256,
    )
    if not same:
        raise Conflict(f"Idempotency-Key {key!r} was used for a different upload")
    return sub


def quota_used(
    *, db: Session, team_id: int, dataset: str, now: datetime
) -> tuple[int, datetime | None]:
    """Uploads counting against the quota in the window, and the oldest one's time."""
    stmt = select(func.count(), func.min(Submission.created_at)).where(
        Submission.team_id == team_id,
        Submission.dataset == dataset,
        Submission.counts_for_quota == True,  # noqa: E712 (SQL expression)
        Submission.created_at > now - QUOTA_WINDOW,
    )
    count, oldest = db.exec(stmt).one()
    return int(count), oldest


def _check_quota(
    db: Session, ctx: ServerContext, team_id: int, dataset: str, now: datetime
) -> None:
    limit = ctx.settings.quota_per_day
    used, oldest = quota_used(db=db, team_id=team_id, dataset=dataset, now=now)
    if used < limit:
        return
    db.rollback()
    retry = (oldest + QUOTA_WINDOW - now).total_seconds() if oldest else QUOTA_WINDOW.seconds
    raise QuotaExceeded(
        f"quota reached: {used} of {limit} uploads to {dataset} in the last 24 h; "
        f"retry in {int(retry) + 1} s",
        retry_after_s=int(retry) + 1,
    )


def load_visible(*, db: Session, principal: Principal, submission_id: int) -> Submission:
    """The submission if the caller may see it (own team, or organizer); else NotFound."""
    sub = db.get(Submission, submission_id)
    if sub is None or (sub.team_id != principal.team_id and not principal.is_organizer):
        raise NotFound(f"submission {submission_id} not found")
    return sub


def get_submission(
    *, db: Session, ctx: ServerContext, principal: Principal, submission_id: int
) -> SubmissionDetail:
    sub = load_visible(db=db, principal=principal, submission_id=submission_id)
    return public_rows.detail(db=db, ctx=ctx, sub=sub, principal=principal)


def list_submissions(
    *,
    db: Session,
    ctx: ServerContext,
    principal: Principal,
    dataset: str | None = None,
    state: State | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[SubmissionPublic]:
    """The caller's team's submissions, newest first."""
    stmt = select(Submission).where(Submission.team_id == principal.team_id)
    if dataset:
        stmt = stmt.where(Submission.dataset == dataset)
    if state:
        stmt = stmt.where(Submission.state == state.value)
    stmt = stmt.order_by(col(Submission.id).desc()).offset(offset).limit(limit)
    return [
        public_rows.public(s, team=principal.team, settings=ctx.settings)
        for s in db.exec(stmt).all()
    ]


def cancel_submission(
    *, db: Session, ctx: ServerContext, principal: Principal, submission_id: int, reason: str
) -> SubmissionPublic:
    """Cancel a queued submission of the caller's team (organizers: any, also running)."""
    sub = load_visible(db=db, principal=principal, submission_id=submission_id)
    if sub.state != State.queued and not principal.is_organizer:
        raise Conflict(f"only queued submissions can be cancelled; this one is {sub.state}")
    changes: dict[str, object] = {"dedup_key": None, "lease_token": None, "lease_expires_at": None}
    if principal.is_organizer and sub.team_id != principal.team_id:
        changes["counts_for_quota"] = False  # the platform's decision: not charged
    try:
        transitions.transition(
            db=db,
            sub=sub,
            to=State.cancelled,
            action="cancel",
            actor=principal.actor,
            reason=reason,
            changes=changes,
        )
        db.commit()
    except TdcError:
        db.rollback()
        raise
    team = db.get(Team, sub.team_id)
    return public_rows.public(sub, team=team.name if team else "?", settings=ctx.settings)
