"""Final picks for hidden tests: which of a team's submissions count on them after the reveal.

    GET  /api/picks?dataset=D&team=T   [Picks]: the caller's team's picks (organizers: any
                                       team) on D, or on every dataset with a hidden test
                                       the team submitted to
    POST /api/picks                    PickChange {pick: [ID], unpick: [ID], reason?} ->
                                       [Picks] of each dataset it touched; all or nothing

The rules are :mod:`server.services.picks`' (making picks) and :mod:`leaderboard.picks`'
(what boards do with them).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from server.routes.deps import CtxDep, PrincipalDep, SessionDep
from server.routes.submissions import ERRORS
from server.services import picks as service
from submissions.schemas import PickChange, Picks

router = APIRouter(prefix="/api/picks", tags=["submissions"], responses=ERRORS)

NameQuery = Annotated[str | None, Query(max_length=100)]


@router.get("")
def list_picks(
    db: SessionDep, ctx: CtxDep, me: PrincipalDep, dataset: NameQuery = None, team: NameQuery = None
) -> list[Picks]:
    return service.list_picks(db=db, ctx=ctx, principal=me, dataset=dataset, team=team)


@router.post("")
def change_picks(body: PickChange, db: SessionDep, ctx: CtxDep, me: PrincipalDep) -> list[Picks]:
    return service.change_picks(db=db, ctx=ctx, principal=me, change=body)


__all__ = ["router"]
