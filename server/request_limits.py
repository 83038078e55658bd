"""Caps on what a request may carry before any route sees it (pure ASGI middleware).

    app.add_middleware(RequestLimits, max_header_bytes=16384, max_query_bytes=4096)

Headers beyond ``max_header_bytes`` in all (names and values) get 431, a query string
beyond ``max_query_bytes`` gets 414, both as the JSON problem list of every other error.
uvicorn accepts headers of a megabyte and more; nothing here keeps them, but a route that
echoed or keyed on them would, so they stop at the door.
"""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from server.errors import HeadersTooLarge, UriTooLong
from submissions.errors import TdcError


class RequestLimits:
    def __init__(self, app: ASGIApp, *, max_header_bytes: int, max_query_bytes: int) -> None:
        self.app, self.max_header, self.max_query = app, max_header_bytes, max_query_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        err = self._refusal(scope) if scope["type"] in ("http", "websocket") else None
        if err is None:
            await self.app(scope, receive, send)
            return
        body = JSONResponse({"problems": err.problems()}, status_code=err.http_status)
        await body(scope, receive, send)

    def _refusal(self, scope: Scope) -> TdcError | None:
        header_bytes = sum(len(k) + len(v) for k, v in scope["headers"])
        if header_bytes > self.max_header:
            return HeadersTooLarge(
                f"request headers are {header_bytes} bytes; at most {self.max_header} accepted"
            )
        query = len(scope.get("query_string", b""))
        if query > self.max_query:
            return UriTooLong(
                f"the query string is {query} bytes; at most {self.max_query} accepted"
            )
        return None
