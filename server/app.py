"""The FastAPI application: ``create_app(settings)``; no module-level app, engine or settings.

    app = create_app(Settings())                     # uvicorn server.app:... via `tdc-server serve`
    app = create_app(settings, engine=test_engine)   # tests share an engine with fixtures

Errors: one handler turns every ``TdcError`` into ``{"problems": [...]}`` with its status
(429 adds Retry-After, 401 WWW-Authenticate); request-validation errors and unknown routes
answer in the same shape. On startup the datasets in ``configs/`` are synced to the
database and stale upload temp files are swept.
"""

from __future__ import annotations

import gc
import importlib
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from sqlmodel import Session
from starlette.exceptions import HTTPException

from server.context import ServerContext
from server.db import make_engine
from server.errors import QuotaExceeded, Unauthorized
from server.routes import ROUTE_MODULES
from server.settings import Settings
from submissions.errors import TdcError

log = logging.getLogger(__name__)


def create_app(
    settings: Settings, *, engine: Engine | None = None, ctx: ServerContext | None = None
) -> FastAPI:
    """The server for ``settings``; pass ``engine``/``ctx`` to share them with tests."""
    ctx = ctx or ServerContext.from_settings(settings)
    own_engine = engine is None
    engine = engine or make_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(startup, engine, ctx)
        ranking = getattr(app.state, "ranking", None)
        if ranking is not None:
            ranking.warm()
        # Modules, routes and configs live as long as the process: out of the collector's
        # full passes, which otherwise walk them all (~0.1 s each, measured under load).
        gc.freeze()
        yield
        if ranking is not None:
            ranking.close()
        if getattr(app.state, "versions", None) is not None:
            app.state.versions.close()
        if own_engine:
            engine.dispose()

    app = FastAPI(
        title="Task-DataComp",
        summary="Task-specific training-data subset selection: submissions and leaderboards.",
        version="1",
        lifespan=lifespan,
    )
    app.state.ctx, app.state.engine, app.state.settings = ctx, engine, settings
    install_error_handlers(app)
    for name in ROUTE_MODULES:
        module = importlib.import_module(name)
        if hasattr(module, "install"):
            module.install(app)
        else:
            app.include_router(module.router)
    return app


def from_environment() -> FastAPI:
    """The app for ``TDC_*`` environment variables (uvicorn's factory, one per worker)."""
    # A board rebuild (~0.4 s of Python at 10k entries) runs in a thread; handing the GIL
    # back every 1 ms instead of 5 keeps the event loop's requests short meanwhile.
    sys.setswitchinterval(0.001)
    return create_app(Settings())


def startup(engine: Engine, ctx: ServerContext) -> None:
    with Session(engine) as db:
        ctx.catalog.sync(db)
    ctx.catalog.warm()
    swept = ctx.storage.sweep_tmp()
    if swept:
        log.info("removed %d stale upload temp files", swept)


def problem_response(status: int, problems: list[dict[str, Any]], **headers: str) -> JSONResponse:
    return JSONResponse({"problems": problems}, status_code=status, headers=headers or None)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(TdcError)
    async def tdc_error(_request: Request, err: TdcError) -> JSONResponse:
        headers: dict[str, str] = {}
        if isinstance(err, QuotaExceeded):
            headers["Retry-After"] = str(err.retry_after_s)
        if isinstance(err, Unauthorized):
            headers["WWW-Authenticate"] = "Bearer"
        return problem_response(err.http_status, err.problems(), **headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, err: RequestValidationError) -> JSONResponse:
        problems = [
            {
                "code": "invalid_request",
                "message": f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}",
            }
            for e in err.errors()
        ]
        return problem_response(422, problems)

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, err: HTTPException) -> JSONResponse:
        problem = {"code": f"http_{err.status_code}", "message": str(err.detail)}
        return problem_response(err.status_code, [problem], **(err.headers or {}))
