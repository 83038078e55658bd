"""The board API: ``GET /api/leaderboard/{dataset}`` as JSON (default) or CSV.

    GET /api/leaderboard/demo                               every fraction's dataset board
    GET /api/leaderboard/demo?fraction=0.1&task=test1       one task board
    GET /api/leaderboard/demo?recipe=linear_probe&version=1&all=1&format=csv

``format=csv`` or ``Accept: text/csv`` selects CSV (one table, board identity in the first
columns). Public callers get the public tests only; an organizer token adds hidden tests.
Bodies are built once per board version (``server.routes.cached``), served gzip-compressed to
clients that accept it, with an ETag (``If-None-Match`` gets a 304).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, FastAPI, Header, Query, Request
from fastapi.responses import Response
from pydantic import Field
from sqlmodel import Session

from leaderboard.export import LeaderboardPublic, board_public, boards_csv
from leaderboard.phases import utcnow
from server.routes.cached import serve_cached
from server.routes.deps import BoardQuery
from server.routes.pages import BearerDep, ensure_pages, visibility

router = APIRouter(prefix="/api", tags=["leaderboard"])
_JSON = "application/json"
_CSV = "text/csv; charset=utf-8"


def install(app: FastAPI) -> None:
    ensure_pages(app)
    app.include_router(router)


class ApiQuery(BoardQuery):
    fraction: float | None = Field(None, gt=0, le=1)
    format: Literal["json", "csv"] | None = None


@router.get(
    "/leaderboard/{dataset}",
    response_model=LeaderboardPublic,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
async def leaderboard(
    request: Request,
    dataset: str,
    creds: BearerDep,
    q: Annotated[ApiQuery, Query()],
    accept: Annotated[str | None, Header()] = None,
) -> Response:
    pages = ensure_pages(request.app)
    as_csv = q.format == "csv" or (q.format is None and accept is not None and "text/csv" in accept)

    def key(organizer: bool) -> tuple[object, ...]:
        return ("api", dataset, q, as_csv, *visibility(pages, [dataset], organizer=organizer))

    def build(db: Session, organizer: bool) -> bytes:
        boards, spec = pages.boards_for(db=db, dataset=dataset, fraction=q.fraction,
                                        recipe=q.recipe, version=q.version, task=q.task,
                                        all_entries=q.all_entries, organizer=organizer)  # fmt: skip
        pool = pages.pool_sizes(db).get(dataset)
        pairs = [
            (b, None if pool is None else spec.budget(b.key.fraction, pool_size=pool))
            for b in boards
        ]
        if as_csv:
            return boards_csv(pairs).encode()
        # generated_at is when the board was computed: served from cache until it changes.
        return (
            LeaderboardPublic(
                dataset=dataset,
                generated_at=utcnow(),
                boards=[board_public(b, budget=budget) for b, budget in pairs],
            )
            .model_dump_json()
            .encode()
        )

    if not as_csv:
        return await serve_cached(request, creds, key=key, datasets=[dataset], build=build,
                                  media_type=_JSON)  # fmt: skip
    name = (
        f"{dataset}-leaderboard"
        + (f"-{q.fraction:g}" if q.fraction else "")
        + (f"-{q.task}" if q.task else "")
    )
    disposition = {"Content-Disposition": f'attachment; filename="{name}.csv"'}
    return await serve_cached(request, creds, key=key, datasets=[dataset], build=build,
                              media_type=_CSV, headers=disposition)  # fmt: skip
