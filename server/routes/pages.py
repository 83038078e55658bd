"""HTML pages: home, dataset and task boards, submission, team; and the static files.

GET /                                   every dataset: task type, pool size, entries, leaders
GET /datasets/{name}?fraction=&recipe=&version=&task=&all=1     a board
GET /submissions/{id}                   state timeline, scores per task and seed, manifest
GET /teams/{name}                       a team's standings and submissions
GET /static/...                         style.css, sort.js (leaderboard/static)

Pages are public; an organizer token (``Authorization: Bearer``) adds hidden tests and hidden
submissions. Unknown names and ids (out-of-range ones too) answer an HTML 404 page. The same
``PageService`` feeds the JSON/CSV API (server.routes.leaderboard), so what a page shows and
what an export holds agree.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from sqlmodel import Session

from leaderboard import render
from leaderboard.phases import utcnow
from leaderboard.render import STATIC_DIR, ServerLinks
from server.errors import NotFound
from server.routes.cached import VersionReader, serve_cached
from server.routes.deps import MAX_ID, BoardQuery, SessionDep, ViewerDep, organizer_flag
from server.services.built import BuiltOnce
from server.services.page_data import PageService
from server.services.ranking_process import RankingProcess
from submissions.errors import UnknownName

router = APIRouter(tags=["pages"], include_in_schema=False)
_bearer = HTTPBearer(auto_error=False)
LINKS = ServerLinks()
_HTML = "text/html; charset=utf-8"
TOP_ROWS = 100  # rows of a board page before "show all" (exports always hold every row)


def install(app: FastAPI) -> None:
    ensure_pages(app)
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


def ensure_pages(app: FastAPI) -> PageService:
    """The app's one PageService, sharing the cache of served bodies; made on first use."""
    if getattr(app.state, "pages", None) is None:
        app.state.built = BuiltOnce(max_bytes=app.state.settings.board_cache_mb << 20)
        app.state.versions, app.state.building = VersionReader(app), {}
        app.state.ranking = ranking_process(app)
        app.state.pages = PageService(app.state.ctx, cache=app.state.built, rank=app.state.ranking)
    return app.state.pages  # type: ignore[no-any-return]


def ranking_process(app: FastAPI) -> RankingProcess | None:
    """A child process ranking the boards, when settings ask for one and it can open the
    database (not an in-memory SQLite of this process)."""
    url = app.state.engine.url
    private = url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")
    if private or not app.state.settings.board_rank_process:
        return None
    return RankingProcess(url.render_as_string(hide_password=False))


async def get_pages(request: Request) -> PageService:
    return ensure_pages(request.app)


PagesDep = Annotated[PageService, Depends(get_pages)]
OrganizerFlag = Annotated[bool, Depends(organizer_flag)]
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _not_found(err: Exception) -> HTMLResponse:
    return HTMLResponse(render.render_not_found(message=str(err), links=LINKS), status_code=404)


def visibility(pages: PageService, datasets: list[str], *, organizer: bool) -> tuple[object, ...]:
    """What a cached page depends on besides the database and the request parameters."""
    now = utcnow()
    return (
        organizer,
        *(pages.visible(pages.ctx.catalog.spec(d), organizer=organizer, now=now) for d in datasets),
    )


@router.get("/", response_class=HTMLResponse)
async def home(request: Request, pages: PagesDep, creds: BearerDep) -> Response:
    def key(organizer: bool) -> tuple[object, ...]:
        return ("home", *visibility(pages, pages.ctx.catalog.names(), organizer=organizer))

    def build(db: Session, organizer: bool) -> str:
        return render.render_home(datasets=pages.home(db=db, organizer=organizer), links=LINKS,
                                  not_hosted=pages.not_hosted(db=db))  # fmt: skip

    names = pages.ctx.catalog.names()
    return await serve_cached(request, creds, key=key, datasets=names, build=build,
                              media_type=_HTML)  # fmt: skip


class PageQuery(BoardQuery):
    rows: Literal["top", "all"] = "top"


@router.get("/datasets/{name}", response_class=HTMLResponse)
async def board(
    request: Request, name: str, creds: BearerDep, q: Annotated[PageQuery, Query()]
) -> Response:
    pages = ensure_pages(request.app)

    def key(organizer: bool) -> tuple[object, ...]:
        return ("board", name, q, *visibility(pages, [name], organizer=organizer))

    def build(db: Session, organizer: bool) -> str:
        page = pages.board_page(db=db, dataset=name, fraction=q.fraction, recipe=q.recipe,
                                version=q.version, task=q.task, all_entries=q.all_entries,
                                organizer=organizer)  # fmt: skip
        if q.rows == "top":  # big boards open fast; the whole table is one link away
            k = page.board.key
            href = LINKS.board(name, fraction=k.fraction, recipe=k.recipe,
                               version=k.recipe_version, task=k.task,
                               all_entries=q.all_entries)  # fmt: skip
            page = replace(page, limit=TOP_ROWS, all_rows_href=href + "&rows=all")
        return render.render_board(page=page, links=LINKS)

    try:
        return await serve_cached(request, creds, key=key, datasets=[name], build=build,
                                  media_type=_HTML)  # fmt: skip
    except (NotFound, UnknownName) as err:
        return _not_found(err)


@router.get("/submissions/{submission_id}", response_class=HTMLResponse)
def submission(
    submission_id: int, db: SessionDep, pages: PagesDep, viewer: ViewerDep
) -> HTMLResponse:
    if not 1 <= submission_id <= MAX_ID:  # no such row can exist (and the driver would raise)
        return _not_found(NotFound(f"submission {submission_id} not found"))
    try:
        view = pages.submission(db=db, submission_id=submission_id, viewer=viewer)
    except NotFound as err:
        return _not_found(err)
    return HTMLResponse(render.render_submission(sub=view, links=LINKS))


@router.get("/teams/{name}", response_class=HTMLResponse)
def team(name: str, db: SessionDep, pages: PagesDep, viewer: ViewerDep) -> HTMLResponse:
    try:
        view = pages.team(db=db, name=name, viewer=viewer)
    except NotFound as err:
        return _not_found(err)
    return HTMLResponse(render.render_team(team=view, links=LINKS))
