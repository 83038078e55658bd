"""The leaderboard as a static site, zipped: ``GET /api/site.zip``.

    GET /api/site.zip                     public view (hidden tests and submissions left out)
    GET /api/site.zip?organizer=1         organizers' view; needs an organizer token
                                          (none or a bad one: 401, a participant's: 403)

The archive holds what ``server.services.static_site`` writes (home, every board with its CSV
and JSON exports, submission and team pages, static files), with relative links, for hosting
without the server; ``tdc-harness report leaderboard`` downloads and unpacks it. It is cached
in the app's cache of built bodies: rebuilt when a board version, the newest event or a
test's visibility has changed.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import func, select

from server.models import SubmissionEvent
from server.routes.deps import CtxDep, SessionDep
from server.routes.pages import PagesDep, ensure_pages, visibility
from server.services.auth import authenticate
from server.services.boards import board_versions
from server.services.built import BuiltOnce
from server.services.site_archive import site_zip

router = APIRouter(prefix="/api", tags=["leaderboard"])
_bearer = HTTPBearer(auto_error=False, description="an organizer token, for organizer=1")

ZIP = "application/zip"


def install(app: FastAPI) -> None:
    ensure_pages(app)
    app.include_router(router)


@router.get(
    "/site.zip",
    response_class=Response,
    responses={
        200: {"content": {ZIP: {"schema": {"type": "string", "format": "binary"}}}},
        401: {"description": "organizer=1 without a valid token"},
        403: {"description": "organizer=1 with a participant token"},
    },
)
def site(
    request: Request,
    db: SessionDep,
    ctx: CtxDep,
    pages: PagesDep,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    organizer: bool = False,
) -> Response:
    """The static leaderboard site as a zip (the organizers' view with ``organizer=1``)."""
    if organizer:
        token = creds.credentials if creds else None
        authenticate(db=db, token=token, touch_s=ctx.settings.token_touch_s).require_organizer()
    # The public view does not depend on who asks, so a token (even a stale one) is ignored.
    key = ("site.zip", *visibility(pages, pages.ctx.catalog.names(), organizer=organizer))
    # Its submission and team pages show every event, so the newest one is in its version.
    newest = db.connection().execute(select(func.max(SubmissionEvent.id))).scalar_one() or 0
    version = (*board_versions(db).values(), newest)
    built: BuiltOnce = request.app.state.built
    body = built.get(key, version=version, size=len,
                     build=lambda: site_zip(db=db, pages=pages, organizer=organizer))  # fmt: skip
    name = "tdc-site-organizer.zip" if organizer else "tdc-site.zip"
    headers = {
        "Content-Disposition": f'attachment; filename="{name}"',
        "Cache-Control": "private, no-store" if organizer else "no-cache",
    }
    return Response(body, media_type=ZIP, headers=headers)
