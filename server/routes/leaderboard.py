"""The board API: ``GET /api/leaderboard/{dataset}`` as JSON (default) or CSV.

    GET /api/leaderboard/demo                               every fraction's dataset board
    GET /api/leaderboard/demo?fraction=0.1&task=test1       one task board
    GET /api/leaderboard/demo?recipe=linear_probe&version=1&all=1&format=csv

``format=csv`` or ``Accept: text/csv`` selects CSV (one table, board identity in the first
columns). Public callers get the public tests only; an organizer token adds hidden tests.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, FastAPI, Header, Query
from fastapi.responses import Response

from leaderboard.export import LeaderboardPublic, board_public, boards_csv
from leaderboard.phases import utcnow
from server.routes.deps import SessionDep
from server.routes.pages import OrganizerFlag, PagesDep, ensure_pages, visibility

router = APIRouter(prefix="/api", tags=["leaderboard"])


def install(app: FastAPI) -> None:
    ensure_pages(app)
    app.include_router(router)


@router.get(
    "/leaderboard/{dataset}",
    response_model=LeaderboardPublic,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
def leaderboard(
    dataset: str,
    db: SessionDep,
    pages: PagesDep,
    organizer: OrganizerFlag,
    fraction: Annotated[float | None, Query(gt=0, le=1)] = None,
    task: str | None = None,
    recipe: str | None = None,
    version: str | None = None,
    all_entries: Annotated[bool, Query(alias="all")] = False,
    format: Literal["json", "csv"] | None = None,
    accept: Annotated[str | None, Header()] = None,
) -> Response:
    as_csv = format == "csv" or (format is None and accept is not None and "text/csv" in accept)
    params = (dataset, fraction, task, recipe, version, all_entries, as_csv)
    key = ("api", *params, *visibility(pages, [dataset], organizer=organizer))

    def build() -> bytes | LeaderboardPublic:
        boards, spec = pages.boards_for(
            db=db,
            dataset=dataset,
            fraction=fraction,
            recipe=recipe,
            version=version,
            task=task,
            all_entries=all_entries,
            organizer=organizer,
        )
        pool = pages.pool_sizes(db).get(dataset)
        pairs = [
            (b, None if pool is None else spec.budget(b.key.fraction, pool_size=pool))
            for b in boards
        ]
        if as_csv:
            return boards_csv(pairs).encode()
        return LeaderboardPublic(
            dataset=dataset,
            generated_at=utcnow(),
            boards=[board_public(b, budget=budget) for b, budget in pairs],
        )

    # Cached serialised, so a repeat costs one revalidation query (generated_at is then the
    # time the board was computed, which is what it means).
    body = pages.cached(db=db, key=key, build=lambda: _serialise(build()))
    if as_csv:
        name = (
            f"{dataset}-leaderboard"
            + (f"-{fraction:g}" if fraction else "")
            + (f"-{task}" if task else "")
        )
        return Response(
            body,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    return Response(body, media_type="application/json")


def _serialise(value: bytes | LeaderboardPublic) -> bytes:
    return value if isinstance(value, bytes) else value.model_dump_json().encode()
