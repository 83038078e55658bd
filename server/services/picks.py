"""Final picks for hidden tests: a team marks which of its submissions count on them.

    change_picks(db=db, ctx=ctx, principal=p, change=PickChange(pick=[12, 15]))  # [Picks]
    list_picks(db=db, ctx=ctx, principal=p, dataset="demo")                     # [Picks]

The rules of making picks (how boards use them: :mod:`leaderboard.picks`):

- Picks exist on datasets with a hidden test (else 422). They may change while every hidden
  test of the dataset is still hidden and freeze at the first reveal (409), for everyone
  (``leaderboard.phases.pick_window``; reveal times from the spec or ``TDC_REVEAL_AT``).
- A team picks its own submissions (another team's: 404, as for reading it) that are
  scored, neither hidden nor disqualified (409), not references (422), and can score a
  hidden task: all-task ones or ones declared for a hidden task (422).
- At most ``DatasetSpec.picks`` per board, i.e. per (dataset, fraction, recipe), counting
  every picked row of the team there whatever its state now (a pick stays until the team
  removes it): a change over the limit is refused whole (422, naming the limit and the picks).
- Unpicking needs only the team's own submission and an open window.
- Organizers may change a team's picks for it (a support request); the event names them.
- A change is all or nothing, serialised per team; each pick or unpick is a ``pick`` /
  ``unpick`` event (``transitions.set_pick``), which bumps the dataset's board version.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlmodel import Session, col, select

from server.context import ServerContext
from server.errors import Conflict, Forbidden, InvalidRequest, NotFound
from server.models import Submission, Team, utcnow
from server.services import public_rows, transitions
from server.services.auth import Principal, lock_teams
from server.services.boards import snap_fraction
from server.services.submissions import load_visible
from submissions.errors import TdcError
from submissions.schemas import PickChange, Picks, State

PickBoard = tuple[int, str, float, str]  # (team id, dataset, fraction, recipe)


def change_picks(
    *,
    db: Session,
    ctx: ServerContext,
    principal: Principal,
    change: PickChange,
    now: datetime | None = None,
) -> list[Picks]:
    """Apply ``change`` (unpicks, then picks) or nothing; the picks of each dataset touched."""
    now = now or utcnow()
    subs = {i: load_visible(db=db, principal=principal, submission_id=i)
            for i in (*change.unpick, *change.pick)}  # fmt: skip
    try:
        lock_teams(db, {s.team_id for s in subs.values()})
        for sub in subs.values():
            db.refresh(sub)  # read after the lock: what other requests committed counts
            _check_window(ctx, sub.dataset, now)
        for i in change.pick:
            _check_pickable(ctx, subs[i])
        _check_limits(db, ctx, [subs[i] for i in change.pick], {*change.unpick})
        for value, ids in ((False, change.unpick), (True, change.pick)):
            for sub in (subs[i] for i in ids if subs[i].picked != value):
                transitions.set_pick(db=db, sub=sub, value=value, actor=principal.actor,
                                     reason=change.reason, now=now)  # fmt: skip
        db.commit()
    except TdcError:
        db.rollback()
        raise
    touched = sorted({(s.team_id, s.dataset) for s in subs.values()})
    return [_picks(db, ctx, team_id, d, principal, now) for team_id, d in touched]


def list_picks(
    *,
    db: Session,
    ctx: ServerContext,
    principal: Principal,
    dataset: str | None = None,
    team: str | None = None,
    now: datetime | None = None,
) -> list[Picks]:
    """A team's picks (the caller's; organizers: any ``team``) on ``dataset``, or on every
    dataset with a hidden test where the team has submissions."""
    now = now or utcnow()
    team_id = _team_id(db, principal, team)
    if dataset is not None:
        ctx.catalog.spec(dataset)  # UnknownName with suggestions for a typo
        names = [dataset]
    else:
        stmt = select(Submission.dataset).where(Submission.team_id == team_id).distinct()
        mine = set(db.exec(stmt).all())
        names = [n for n in ctx.catalog.names() if n in mine and _hidden(ctx, n)]
    return [_picks(db, ctx, team_id, n, principal, now) for n in names]


def _team_id(db: Session, principal: Principal, team: str | None) -> int:
    if team is None or team == principal.team:
        return principal.team_id
    if not principal.is_organizer:
        raise Forbidden("only organizers see another team's picks")
    row = db.exec(select(Team).where(Team.name == team)).first()
    if row is None or row.id is None:
        raise NotFound(f"no team named {team!r}")
    return row.id


def _hidden(ctx: ServerContext, dataset: str) -> tuple[str, ...]:
    """The dataset's hidden tasks (revealed or not): what picks are for."""
    return tuple(t.name for t in ctx.catalog.spec(dataset).tasks if t.hidden)


def _check_window(ctx: ServerContext, dataset: str, now: datetime) -> None:
    window = ctx.catalog.pick_window(dataset, now=now)
    if not window.tasks:
        raise InvalidRequest(
            f"{dataset} has no hidden test: every submission counts on its boards, "
            "there is nothing to pick"
        )
    if not window.open:
        when = f" at {window.closes_at:%Y-%m-%d %H:%M} UTC" if window.closes_at else ""
        raise Conflict(
            f"the picks on {dataset} are final: its hidden test was revealed{when}, "
            "and the boards now rank the picks made before"
        )


def _check_pickable(ctx: ServerContext, sub: Submission) -> None:
    """422 / 409 unless ``sub`` may become a final pick (its window was checked)."""
    hidden = _hidden(ctx, sub.dataset)
    if sub.kind != "submission":
        raise InvalidRequest(f"submission {sub.id} is a {sub.kind}: references are not picked")
    if sub.state != State.scored:
        raise Conflict(f"submission {sub.id} is {sub.state}: only scored submissions can be picked")
    if sub.disqualified or sub.hidden:
        why = "disqualified" if sub.disqualified else "hidden by the organizers"
        raise Conflict(f"submission {sub.id} is {why}: it cannot be picked")
    if sub.task is not None and sub.task not in hidden:
        raise InvalidRequest(
            f"submission {sub.id} is scored on {sub.task} only, a public task: picks choose "
            f"what counts on the hidden task(s) {', '.join(hidden)}"
        )


def _check_limits(
    db: Session, ctx: ServerContext, picks: Sequence[Submission], unpick: set[int]
) -> None:
    """422 if a board would hold more than its dataset's limit of picks after the change."""
    boards: dict[PickBoard, set[int]] = {}
    for sub in picks:
        boards.setdefault(_board(ctx, sub), set()).add(transitions.sid(sub))
    for (team_id, dataset, fraction, recipe), new in sorted(boards.items()):
        held = _held(db, ctx, team_id, dataset, fraction, recipe)
        after = (set(held) - unpick) | new
        limit = ctx.catalog.spec(dataset).picks
        if len(after) > limit:
            raise InvalidRequest(
                f"at most {limit} picks per board: {dataset} at fraction {fraction:g} "
                f"({recipe}) would hold {len(after)} ({_ids(after)}); picked now: "
                f"{_ids(held) or 'none'}. Unpick one first"
            )


def _board(ctx: ServerContext, sub: Submission) -> PickBoard:
    spec = ctx.catalog.spec(sub.dataset)
    fraction = snap_fraction(spec, sub.fraction) or sub.fraction
    return (sub.team_id, sub.dataset, fraction, sub.recipe)


def _held(
    db: Session, ctx: ServerContext, team_id: int, dataset: str, fraction: float, recipe: str
) -> list[int]:
    """Ids of the team's picks on one board, as committed (a column query: fresh rows)."""
    stmt = select(Submission.id, Submission.fraction).where(
        Submission.team_id == team_id,
        Submission.dataset == dataset,
        Submission.recipe == recipe,
        col(Submission.picked).is_(True),
    )
    rows = db.exec(stmt).all()
    return sorted(i for i, f in rows if i is not None and math.isclose(f, fraction, abs_tol=1e-9))


def _ids(ids: Iterable[int]) -> str:
    return ", ".join(str(i) for i in sorted(ids))


def _picks(
    db: Session, ctx: ServerContext, team_id: int, dataset: str, viewer: Principal, now: datetime
) -> Picks:
    team = db.get(Team, team_id)
    window = ctx.catalog.pick_window(dataset, now=now)
    stmt = (
        select(Submission)
        .where(
            Submission.team_id == team_id,
            Submission.dataset == dataset,
            col(Submission.picked).is_(True),
        )
        .order_by(col(Submission.fraction), col(Submission.recipe), col(Submission.id))
    )
    name = team.name if team else "?"
    return Picks(
        dataset=dataset,
        team=name,
        limit=ctx.catalog.spec(dataset).picks,
        hidden_tasks=list(window.tasks),
        open=window.open,
        closes_at=window.closes_at,
        picks=[
            public_rows.public(s, team=name, settings=ctx.settings, organizer=viewer.is_organizer)
            for s in db.exec(stmt).all()
        ],
    )
