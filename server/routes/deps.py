"""Dependencies as ``Annotated`` aliases: the session, the context, the caller.

    @router.get("/x")
    def x(db: SessionDep, ctx: CtxDep, me: PrincipalDep) -> ...: ...

Routes that must not open a session on their fast path (cached boards) use
:func:`open_session` themselves, in a worker thread, only when they need the database.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from server.context import ServerContext
from server.services.auth import Principal, authenticate
from server.services.public_rows import PUBLIC, Viewer

_bearer = HTTPBearer(auto_error=False, description="an API token: `tdc-server issue-token`")


async def get_ctx(request: Request) -> ServerContext:
    ctx: ServerContext = request.app.state.ctx
    return ctx


def open_session(app: FastAPI) -> Session:
    """A session on the app's engine, as every route gets one (use it as a context manager)."""
    return Session(app.state.engine, expire_on_commit=False)


def get_db(request: Request) -> Iterator[Session]:
    with open_session(request.app) as db:
        yield db


CtxDep = Annotated[ServerContext, Depends(get_ctx)]
# Ids are 32-bit INTEGER columns on PostgreSQL: larger values are a 422, not a 500.
MAX_ID = 2**31 - 1
SubmissionId = Annotated[int, Path(ge=1, le=MAX_ID)]
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=10**9)]
SessionDep = Annotated[Session, Depends(get_db)]


def get_principal(
    db: SessionDep,
    ctx: CtxDep,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    token = creds.credentials if creds else None
    return authenticate(db=db, token=token, touch_s=ctx.settings.token_touch_s)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def get_organizer(principal: PrincipalDep) -> Principal:
    principal.require_organizer()
    return principal


OrganizerDep = Annotated[Principal, Depends(get_organizer)]


def is_organizer(db: Session, ctx: ServerContext, creds: HTTPAuthorizationCredentials) -> bool:
    """Whether a page viewer's token is an organizer's; a bad token is still a 401."""
    return authenticate(
        db=db, token=creds.credentials, touch_s=ctx.settings.token_touch_s
    ).is_organizer


def organizer_flag(
    db: SessionDep,
    ctx: CtxDep,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> bool:
    """Anonymous viewers are the public (False)."""
    return creds is not None and is_organizer(db, ctx, creds)


def page_viewer(
    db: SessionDep,
    ctx: CtxDep,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Viewer:
    """Anonymous viewers are the public; a token makes its team (or an organizer) the viewer
    of the submission and team pages; a bad token is still a 401."""
    if creds is None:
        return PUBLIC
    me = authenticate(db=db, token=creds.credentials, touch_s=ctx.settings.token_touch_s)
    return Viewer(organizer=me.is_organizer, team_id=me.team_id)


ViewerDep = Annotated[Viewer, Depends(page_viewer)]


def viewer_is_organizer(app: FastAPI, creds: HTTPAuthorizationCredentials) -> bool:
    """:func:`is_organizer` in a session of its own (for routes that open none)."""
    with open_session(app) as db:
        return is_organizer(db, app.state.ctx, creds)


class BoardQuery(BaseModel):
    """A board request's parameters, validated in one step (FastAPI's query model: far cheaper
    than one dependency per parameter); hashable, so part of a cache key. Unknown parameters
    (``utm_source=...``) are ignored."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)
    fraction: float | None = None
    task: str | None = None
    recipe: str | None = None
    version: str | None = None
    all_entries: bool = Field(False, alias="all")
