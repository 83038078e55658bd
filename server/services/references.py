"""Reference rows without a subset file: the train-on-query oracle, seed-averaged baselines.

    recorded = record_references(db=db, ctx=ctx, principal=p,
                                 post=ReferencePost(results=oracle_results))
    recorded.submissions[0].kind, recorded.created          # "oracle", 2

An oracle trains on each task's query split, so there is no subset to upload, claim and
evaluate; a baseline averaged over selection seeds (``harness.references``) has several
subsets, one per seed, and its manifest's ``selection`` record names them (a baseline
reference without one is refused). Their :class:`EvalResult` s arrive already scored. Each
becomes a ``Submission`` row of the post's kind created in state ``scored`` (event
``reference``, through
``server.services.transitions``), with its evaluation and task scores, so the boards show it
as they show any reference: flagged, never ranked (``leaderboard.ranking``).

The row carries no file: ``sha256`` is the manifest's subset identity (the query rows),
``file_sha256`` the sha256 of the result itself, ``file_bytes`` 0, ``size`` the query size.
Idempotent: one row per (team, kind, dataset, fraction, task, recipe, recipe hash, subset);
posting the same result again returns the existing row, even when two posts race.
"""

from __future__ import annotations

import hashlib
import json
import logging

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from harness.specs import check_fraction
from server.context import ServerContext
from server.errors import InvalidRequest
from server.models import Submission, Team, utcnow
from server.services import public_rows, transitions
from server.services.auth import Principal, get_or_create_team
from server.services.organizer_ops import write_scores
from server.services.outcomes import add_missing_outcomes, outcome_problems
from submissions.errors import ConfigError
from submissions.metric_ranges import metric_problems
from submissions.schemas import (
    EvalResult,
    ReferencePost,
    ReferencesRecorded,
    State,
    SubmissionPublic,
)

log = logging.getLogger(__name__)


def record_references(
    *, db: Session, ctx: ServerContext, principal: Principal, post: ReferencePost
) -> ReferencesRecorded:
    """Record every result of ``post`` as a scored reference row (all or none)."""
    principal.require_organizer()
    results = [checked(ctx=ctx, result=r, kind=post.kind) for r in post.results]
    owner = get_or_create_team(db=db, name=post.team)
    try:
        return _write(db, ctx, principal, post, results, owner)
    except IntegrityError:  # a concurrent identical post won: now its rows are found
        db.rollback()
        return _write(db, ctx, principal, post, results, owner)


def checked(*, ctx: ServerContext, result: EvalResult, kind: str) -> EvalResult:
    """``result`` with the dataset's canonical fraction; 422 unless it fits the benchmark."""
    spec = ctx.catalog.spec(result.dataset)
    try:
        fraction = check_fraction(spec, result.fraction)
        if result.task is not None:
            spec.task(result.task)
        recipe = ctx.catalog.specs.recipe(result.recipe)
    except ConfigError as err:
        raise InvalidRequest(str(err)) from None
    problems = []
    if spec.task_type not in recipe.task_types:
        problems.append(f"recipe {result.recipe!r} does not apply to {spec.task_type} datasets")
    m = result.manifest
    if (m.dataset, m.recipe) != (result.dataset, result.recipe):
        problems.append(f"the manifest is of {m.dataset}/{m.recipe}")
    if kind == "baseline" and m.selection is None:
        problems.append("a baseline reference needs the manifest's selection record")
    expected = {result.task} if result.task else set(spec.task_names())
    got = [t.task for t in result.tasks]
    if set(got) != expected or len(got) != len(set(got)):
        problems.append(f"tasks are {sorted(got)}, expected {sorted(expected)} once each")
    problems += metric_problems(result)
    problems += outcome_problems(ctx=ctx, result=result)
    if problems:
        raise InvalidRequest(
            f"reference result {result.dataset}/{result.task or '*'}: " + "; ".join(problems)
        )
    return result.model_copy(update={"fraction": fraction})


def reference_key(*, kind: str, result: EvalResult) -> str:
    """What makes two posted results the same reference row (fits ``dedup_key``)."""
    pinned = result.identity.pinned_key(result.manifest.recipe_hash)
    return "ref:" + hashlib.sha256(f"{kind}|{pinned}".encode()).hexdigest()


def _write(
    db: Session,
    ctx: ServerContext,
    principal: Principal,
    post: ReferencePost,
    results: list[EvalResult],
    owner: Team,
) -> ReferencesRecorded:
    assert owner.id is not None
    rows: list[Submission] = []
    created = upgraded = 0
    for result in results:
        key = reference_key(kind=post.kind, result=result)
        existing = db.exec(
            select(Submission).where(Submission.team_id == owner.id, Submission.dedup_key == key)
        ).first()
        if existing is None:
            existing = _insert(db, ctx, principal, post, result, owner.id, key)
            created += 1
        elif add_missing_outcomes(db=db, submission_id=transitions.sid(existing), result=result):
            upgraded += 1  # a row stored before outcomes: its intervals appear on the boards
            transitions.bump_board(db, existing.dataset)
        rows.append(existing)
    db.commit()
    if upgraded:
        log.info("%d reference row(s) of team %s got their per-example outcomes",
                 upgraded, owner.name)  # fmt: skip
    if created:
        log.info("%d %s reference row(s) recorded for team %s", created, post.kind, owner.name)
    subs: list[SubmissionPublic] = []
    for sub in rows:
        db.refresh(sub)
        subs.append(public_rows.public(sub, team=owner.name, settings=ctx.settings, organizer=True))
    return ReferencesRecorded(submissions=subs, created=created)


def _insert(
    db: Session,
    ctx: ServerContext,
    principal: Principal,
    post: ReferencePost,
    result: EvalResult,
    team_id: int,
    key: str,
) -> Submission:
    now = utcnow()
    body = json.dumps(result.model_dump(mode="json"), sort_keys=True).encode()
    sub = Submission(
        team_id=team_id,
        **result.identity.model_dump(),
        kind=post.kind,
        name=post.name,
        file_sha256=hashlib.sha256(body).hexdigest(),
        size=result.subset_size,
        file_bytes=0,
        dedup_key=key,
        state=State.scored.value,
        counts_for_quota=False,
        created_at=now,
        updated_at=now,
        scored_at=now,
    )
    db.add(sub)
    db.flush()
    write_scores(db, ctx, sub, result, now)
    transitions.record(
        db=db,
        sub=sub,
        action="reference",
        actor=principal.actor,
        reason=f"{post.kind} result recorded without a subset file",
    )
    return sub
