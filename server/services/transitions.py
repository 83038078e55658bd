"""The submission state machine: the only code that changes a submission's state or flags.

    transition(db=db, sub=sub, to=State.running, action="claim", actor="organizer:ops",
               changes={"lease_token": tok}, where=[Submission.state == "queued"])
    set_flag(db=db, sub=sub, flag="hidden", value=True, actor=..., reason="duplicate account")
    set_pick(db=db, sub=sub, value=True, actor="participant:owls")   # a final pick

Every change is one ``UPDATE ... WHERE id = :id AND state = :expected [AND extra]``
(compare-and-set): if another worker changed the row first, nothing is written and
``Conflict`` is raised, so two workers can never both win. Each change appends a
``SubmissionEvent`` (from, to, actor, reason, time) in the same transaction; the caller
commits. Boards show scored submissions only, so an event from or to ``scored`` (a score,
a hide, a disqualification, a final pick of a scored row) also bumps its dataset's
``board_version`` in that transaction: a cached board is current exactly while that number
is unchanged.

    queued       -> running | cancelled
    running      -> scored | failed_user | failed_infra | queued (retry) | cancelled
    failed_infra -> queued (organizer retry)
    failed_user  -> queued (organizer requeue)
    scored       -> queued (action ``rescore`` only: an organizer re-evaluates it)
    cancelled: final

``rescore`` is the one way out of ``scored`` (:data:`ACTION_EDGES`; any other action finds
scored final): it is for a fix in the harness or the data, it deletes the row's scores in
the same transaction and, as a move from ``scored``, bumps the board, so the row leaves the
boards until its new result arrives (no board ever shows a score the harness no longer
stands behind). The event keeps the old scores in its reason.

Rows are created queued (action ``submit``), or scored (action ``reference``: an organizer's
reference result, e.g. the train-on-query oracle, which has no subset file to evaluate).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, update
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, col

from server.errors import Conflict, IllegalTransition
from server.models import Dataset as DatasetRow
from server.models import Submission, SubmissionEvent, utcnow
from submissions.schemas import State

TRANSITIONS: Mapping[State, frozenset[State]] = {
    State.queued: frozenset({State.running, State.cancelled}),
    State.running: frozenset(
        {State.scored, State.failed_user, State.failed_infra, State.queued, State.cancelled}
    ),
    State.failed_infra: frozenset({State.queued}),
    State.failed_user: frozenset({State.queued}),
    State.scored: frozenset(),
    State.cancelled: frozenset(),
}

# Edges only the named action may take (``check`` refuses them to every other action).
ACTION_EDGES: Mapping[tuple[State, State], str] = {(State.scored, State.queued): "rescore"}

Flag = Literal["hidden", "disqualified"]

# What a row going back to ``queued`` for a new evaluation starts without (requeue, rescore).
FRESH_QUEUE: Mapping[str, Any] = {
    "attempts": 0,
    "lease_token": None,
    "lease_expires_at": None,
    "not_before": None,
    "error": None,
}

# Actions that create a row: their event has no previous state.
CREATE_ACTIONS = frozenset({"submit", "reference"})


def sid(sub: Submission) -> int:
    """The id of a submission row that has been flushed."""
    assert sub.id is not None, "submission not flushed yet"
    return sub.id


def check(frm: State, to: State, action: str | None = None) -> None:
    """IllegalTransition unless ``frm -> to`` is in the table (or is ``action``'s edge)."""
    if to in TRANSITIONS[frm] or (action and ACTION_EDGES.get((frm, to)) == action):
        return
    allowed = ", ".join(sorted(TRANSITIONS[frm])) or "none (final state)"
    only = "".join(
        f"; {act} moves it to {dst}" for (src, dst), act in ACTION_EDGES.items() if src == frm
    )
    raise IllegalTransition(
        f"a {frm.value} submission cannot become {to.value} (allowed: {allowed}{only})"
    )


def transition(
    *,
    db: Session,
    sub: Submission,
    to: State,
    action: str,
    actor: str,
    reason: str | None = None,
    changes: Mapping[str, Any] | None = None,
    where: Sequence[ColumnElement[bool]] = (),
    now: datetime | None = None,
) -> Submission:
    """Move ``sub`` from its loaded state to ``to`` with compare-and-set; caller commits."""
    frm = State(sub.state)
    check(frm, to, action)
    now = now or utcnow()
    values = {**(changes or {}), "state": to.value, "updated_at": now}
    _cas(db, sub, frm, values, where)
    _append(db, sub, action, frm.value, to.value, actor=actor, reason=reason, now=now)
    return sub


def set_flag(
    *,
    db: Session,
    sub: Submission,
    flag: Flag,
    value: bool,
    actor: str,
    reason: str,
    now: datetime | None = None,
) -> Submission:
    """Set ``hidden`` or ``disqualified`` (state unchanged), with an event; caller commits."""
    now = now or utcnow()
    state = State(sub.state)
    _cas(db, sub, state, {flag: value, "updated_at": now}, ())
    action = {("hidden", True): "hide", ("hidden", False): "unhide"}.get(
        (flag, value), "disqualify" if value else "requalify"
    )
    _append(db, sub, action, state.value, state.value, actor=actor, reason=reason, now=now)
    return sub


def set_pick(
    *,
    db: Session,
    sub: Submission,
    value: bool,
    actor: str,
    reason: str | None = None,
    now: datetime | None = None,
) -> Submission:
    """Mark (``pick``) or unmark (``unpick``) one of its team's final picks, with an event;
    caller commits. Compare-and-set on the state and the current mark: of two concurrent
    requests making the same change, one raises ``Conflict``. Who may pick what is
    ``server.services.picks``' to check; as an event on a scored row it bumps the board."""
    now = now or utcnow()
    state = State(sub.state)
    unchanged = col(Submission.picked).is_(not value)
    _cas(db, sub, state, {"picked": value, "updated_at": now}, (unchanged,))
    action = "pick" if value else "unpick"
    _append(db, sub, action, state.value, state.value, actor=actor, reason=reason, now=now)
    return sub


def extend_lease(
    *,
    db: Session,
    sub: Submission,
    changes: Mapping[str, Any],
    where: Sequence[ColumnElement[bool]],
    now: datetime | None = None,
) -> Submission:
    """Update lease fields of a running submission (state unchanged, no event: heartbeats)."""
    _cas(db, sub, State.running, {**changes, "updated_at": now or utcnow()}, where)
    return sub


def record(
    *, db: Session, sub: Submission, action: str, actor: str, reason: str | None = None
) -> None:
    """An event that changes nothing (submission received, job id recorded)."""
    frm = None if action in CREATE_ACTIONS else sub.state
    _append(db, sub, action, frm, sub.state, actor=actor, reason=reason, now=utcnow())


def _append(
    db: Session,
    sub: Submission,
    action: str,
    frm: str | None,
    to: str,
    *,
    actor: str,
    reason: str | None,
    now: datetime,
) -> None:
    event = SubmissionEvent(submission_id=sid(sub), action=action, from_state=frm,
                            to_state=to, actor=actor, reason=reason, created_at=now)  # fmt: skip
    db.add(event)
    if State.scored.value in (frm, to):
        bump_board(db, sub.dataset)


def bump_board(db: Session, dataset: str) -> None:
    """Mark every cached board of ``dataset`` out of date (in the caller's transaction)."""
    row = update(DatasetRow).where(col(DatasetRow.name) == dataset)
    db.exec(row.values(board_version=DatasetRow.board_version + 1))  # type: ignore[call-overload]


def _cas(
    db: Session,
    sub: Submission,
    expected: State,
    values: Mapping[str, Any],
    where: Sequence[ColumnElement[bool]],
) -> None:
    stmt = (
        update(Submission)
        .where(Submission.id == sub.id, Submission.state == expected.value, *where)  # type: ignore[arg-type]
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if db.exec(stmt).rowcount != 1:  # type: ignore[call-overload, attr-defined]
        raise Conflict(
            f"submission {sub.id} changed concurrently (expected {expected.value}); retry"
        )
    for key, value in values.items():  # keep the in-memory row equal to the database
        set_committed_value(sub, key, value)
