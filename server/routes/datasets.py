"""Public dataset information: what to build a subset for, and the pool UIDs to check it.

GET /api/info                      ServerInfo (upload cap, quota)
GET /api/datasets                  [DatasetPublic] of the datasets hosted here (prepared)
GET /api/datasets/{name}           DatasetPublic (pool size, tasks, budgets)
GET /api/datasets/{name}/pool-uids the pool UIDs as .npy (ETag; 304 on If-None-Match)
"""

from __future__ import annotations

import functools
from typing import Annotated

from fastapi import APIRouter, Header, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse

from server.routes.deps import CtxDep
from submissions.schemas import DatasetPublic, ServerInfo

router = APIRouter(prefix="/api", tags=["datasets"])


@functools.cache
def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("task-datacomp")
    except PackageNotFoundError:
        return "0+unknown"


@router.get("/info")
async def info(ctx: CtxDep) -> ServerInfo:
    """Limits a client checks before uploading (no database access: also a liveness probe)."""
    s = ctx.settings
    return ServerInfo(
        version=_version(),
        base_url=s.base_url,
        max_upload_bytes=s.max_upload_bytes,
        quota_per_day=s.quota_per_day,
    )


@router.get("/datasets")
def list_datasets(ctx: CtxDep) -> list[DatasetPublic]:
    return [ctx.catalog.public(n) for n in ctx.catalog.hosted()]


@router.get("/datasets/{name}")
def get_dataset(name: str, ctx: CtxDep) -> DatasetPublic:
    return ctx.catalog.public(name)


@router.get(
    "/datasets/{name}/pool-uids",
    response_class=FileResponse,
    responses={200: {"content": {"application/octet-stream": {}}}, 304: {"description": "same"}},
)
async def pool_uids(
    name: str,
    ctx: CtxDep,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    path, etag = await run_in_threadpool(ctx.catalog.pool_uids_file, name, ctx.storage)
    headers = {"ETag": etag, "Cache-Control": "public, max-age=300"}
    if if_none_match and etag in [t.strip() for t in if_none_match.split(",")]:
        return Response(status_code=304, headers=headers)
    return FileResponse(
        path,
        media_type="application/octet-stream",
        filename=f"{name}-pool-uids.npy",
        headers=headers,
    )
