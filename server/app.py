"""The FastAPI application: ``create_app(settings)``; no module-level app, engine or settings.

    app = create_app(Settings())                     # uvicorn server.app:... via `tdc-server serve`
    app = create_app(settings, engine=test_engine)   # tests share an engine with fixtures

Errors: one handler turns every ``TdcError`` into ``{"problems": [...]}`` with its status
(429 adds Retry-After, 401 WWW-Authenticate); request-validation errors and unknown routes
answer in the same shape. Every response carries the security headers of
:class:`SecurityHeaders`. On startup the datasets in ``configs/`` are synced to the
database and stale upload temp files are swept.
"""

from __future__ import annotations

import gc
import importlib
import logging
import sys
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.context import ServerContext
from server.db import make_engine
from server.errors import QuotaExceeded, Unauthorized, Unavailable
from server.request_limits import RequestLimits
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
    docs = (app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url)
    app.add_middleware(RequestLimits, max_header_bytes=settings.max_header_bytes,
                       max_query_bytes=settings.max_query_bytes)  # fmt: skip
    # Added last, so outermost: every response gets them, refusals of RequestLimits too.
    app.add_middleware(SecurityHeaders, docs_paths=[p for p in docs if p])
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


# Pages: scripts, styles and images from this origin only (charts are inline SVG drawn with
# presentation attributes, the favicon is ``data:,``), never framed, no plugins, no <base>.
PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# FastAPI's /docs and /redoc load Swagger UI / ReDoc from their CDN and start them with an
# inline script: their own, looser policy (still never framed).
DOCS_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "font-src https://fonts.gstatic.com; img-src 'self' data: https:; worker-src blob:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


def _security_headers(policy: str) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-security-policy", policy.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),  # frame-ancestors for browsers without CSP 2
    ]


class SecurityHeaders:
    """Pure ASGI middleware: adds the security headers to every HTTP response (a header the
    response already has is left as it is)."""

    def __init__(self, app: ASGIApp, *, docs_paths: Iterable[str] = ()) -> None:
        self.app, self.docs_paths = app, frozenset(docs_paths)
        self.page, self.docs = _security_headers(PAGE_POLICY), _security_headers(DOCS_POLICY)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self.docs if scope["path"] in self.docs_paths else self.page
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", ()))
                have = {name.lower() for name, _ in headers}
                headers += [h for h in extra if h[0] not in have]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            # Starlette's own 500 is sent from outside every user middleware, without these
            # headers: answer here (a problem list, no traceback) and let it log the error.
            if not started:
                problem = {"code": "internal_error", "message": "internal server error"}
                await problem_response(500, [problem])(scope, receive, send_with_headers)
            raise


def problem_response(status: int, problems: list[dict[str, Any]], **headers: str) -> JSONResponse:
    return JSONResponse({"problems": problems}, status_code=status, headers=headers or None)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(TdcError)
    async def tdc_error(_request: Request, err: TdcError) -> JSONResponse:
        headers: dict[str, str] = {}
        if isinstance(err, QuotaExceeded | Unavailable):
            headers["Retry-After"] = str(err.retry_after_s)
        if isinstance(err, Unauthorized):
            headers["WWW-Authenticate"] = "Bearer"
        return problem_response(err.http_status, err.problems(), **headers)

    @app.exception_handler(OperationalError)
    async def database_down(_request: Request, err: OperationalError) -> JSONResponse:
        # The database is unreachable or restarting: nothing was committed, so the client
        # may send the same request again (the worker's and tdc-submit's retries do).
        log.error("database unavailable: %s", err.orig)
        down = Unavailable("the database is unavailable right now; send the request again")
        return await tdc_error(_request, down)

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
