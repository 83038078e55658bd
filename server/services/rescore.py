"""Rescoring: an organizer sends a scored submission back to be evaluated again.

    rescore(db=db, ctx=ctx, sub=sub, reason="harness fix #12", actor="organizer:cli:ana")
    # one organizer action of ``organizer_ops.moderate`` (API and ``tdc-server submissions``)

For a fix in the harness, the recipe or the prepared data that changes results already on
the boards. In one transaction: ``scored -> queued`` (action ``rescore``, the one edge out
of ``scored``, see ``server.services.transitions``), the row's evaluation, per-seed results
and task scores deleted, its lease and attempt count reset. The move from ``scored`` bumps
the dataset's board version, so the row leaves every board until the worker posts its new
result; the event's reason ends with the old scores (``[previous: test1 0.8123 ± 0.0040,
...]``) so the history still says what was shown before. Flags, the file, the team's quota
and the row's identity (id, created_at, dedup key) are unchanged.

Only ``scored`` rows with their subset file in storage: a failed row is evaluated again with
``requeue``; a reference row (oracle, averaged baseline) has no file to evaluate, so its new
result is posted as a reference again.

The worker reuses the harness's results store (keyed by dataset manifest, embedding set,
subset, task, recipe hash and seed): a fix that changes none of these finds the old scores
there, so remove those entries from the store before rescoring.
"""

from __future__ import annotations

from sqlalchemy import delete
from sqlmodel import Session, col, select

from server.context import ServerContext
from server.errors import Conflict, IllegalTransition
from server.models import Evaluation, Outcome, Result, Submission, TaskScore
from server.services import transitions
from submissions.schemas import State


def rescore(*, db: Session, ctx: ServerContext, sub: Submission, reason: str, actor: str) -> None:
    """Move scored ``sub`` back to queued and delete its scores (flushed; caller commits)."""
    _check_rescorable(ctx, sub)
    previous = previous_scores(db=db, ctx=ctx, sub=sub)
    transitions.transition(
        db=db,
        sub=sub,
        to=State.queued,
        action="rescore",
        actor=actor,
        reason=f"{reason} [previous: {previous}]",
        changes={
            **transitions.FRESH_QUEUE,
            "log_tail": None,
            "executor_job_id": None,
            "scored_at": None,
        },
    )
    for table in (TaskScore, Outcome, Result, Evaluation):
        stmt = delete(table).where(col(table.submission_id) == transitions.sid(sub))
        db.exec(stmt)  # type: ignore[call-overload]
    db.flush()


def _check_rescorable(ctx: ServerContext, sub: Submission) -> None:
    if sub.state != State.scored:
        hint = "; requeue evaluates a failed one again" if sub.state.startswith("failed") else ""
        raise IllegalTransition(
            f"submission {sub.id} is {sub.state}: only scored submissions are rescored{hint}"
        )
    if sub.file_bytes == 0:
        raise IllegalTransition(
            f"submission {sub.id} is a {sub.kind} reference without a subset file: post its "
            "new result as a reference instead of rescoring it"
        )
    if not ctx.storage.path_for(sub.file_sha256).is_file():
        raise Conflict(
            f"submission {sub.id} cannot be evaluated again: its file {sub.file_sha256[:12]}... "
            "is missing from storage"
        )


def previous_scores(*, db: Session, ctx: ServerContext, sub: Submission) -> str:
    """``test1 0.8123 ± 0.0040, test2 ... (accuracy; code v, recipe hash h)``: for the event."""
    rows = db.exec(
        select(TaskScore).where(TaskScore.submission_id == sub.id).order_by(col(TaskScore.task))
    ).all()
    scores = ", ".join(f"{r.task} {_num(r.primary)} ± {_num(r.primary_std)}" for r in rows)
    ev = db.get(Evaluation, sub.id)
    made = f"; code {ev.code_version}, recipe hash {ev.recipe_hash}" if ev else ""
    metric = ctx.catalog.spec(sub.dataset).primary_metric
    return f"{scores or 'no task scores'} ({metric}{made})"


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"
