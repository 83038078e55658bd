"""The fast lane: known-current public pages answered before FastAPI routes the request.

    app.add_middleware(FastLaneMiddleware)          # server.routes.pages.install does this
    lane.remember(scope, key=lambda: key(False), media_type=..., headers=...)  # serve_body

A cached board costs microseconds to find; FastAPI's routing, dependency solving and query
validation cost ~0.3 ms per request on top, which at 50 concurrent viewers is most of a core.
So when a route has answered an anonymous GET from the board cache, it remembers how: the
request's exact path, query string and ``Accept`` header, mapped to a function giving the
cache key (the key is recomputed on every hit, so reveal times still apply). The middleware
answers a later identical request from that entry when the cached body is still current
(``PageService.peek_body``: the BoardClock vouches for it with no query) and otherwise
passes it on to the route unchanged, which builds, revalidates or refuses it as usual.

Only requests that were first validated and served by a route can be remembered, so the
fast lane can never answer something the route would have refused; requests with an
``Authorization`` header (organizers, who may see hidden tests) always take the route.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from server.services.bodies import Body
from server.services.pages import PageService

log = logging.getLogger(__name__)

UrlKey = tuple[str, bytes, str]


@dataclass(frozen=True)
class Lane:
    key: Callable[[], tuple[object, ...]]
    media_type: str
    headers: Mapping[str, str]


class FastLane:
    """Remembered public routes by (path, query string, Accept); LRU-bounded, thread-safe."""

    def __init__(self, pages: PageService, *, max_urls: int = 4096) -> None:
        self.pages = pages
        self.max_urls = max_urls
        self._lanes: OrderedDict[UrlKey, Lane] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0  # requests answered here (tests check the lane with it)

    def remember(
        self,
        request: Request,
        *,
        key: Callable[[], tuple[object, ...]],
        media_type: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        lane, url = Lane(key, media_type, dict(headers or {})), _url_key(request.scope)
        with self._lock:
            self._lanes[url] = lane
            self._lanes.move_to_end(url)
            while len(self._lanes) > self.max_urls:
                self._lanes.popitem(last=False)

    def lookup(self, scope: Scope) -> tuple[Lane, Body] | None:
        """(lane, cached body) for an anonymous GET seen before whose body is current."""
        if scope["method"] != "GET" or _header(scope, b"authorization") is not None:
            return None
        with self._lock:
            lane = self._lanes.get(_url_key(scope))
        if lane is None:
            return None
        try:
            body = self.pages.peek_body(lane.key())
        except Exception:
            log.debug("fast lane key failed for %s; passing on", scope["path"], exc_info=True)
            return None
        return None if body is None else (lane, body)


class FastLaneMiddleware:
    """Pure ASGI: answers from ``app.state.fastlane`` when it can, else calls the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        lane: FastLane | None = (
            getattr(scope["app"].state, "fastlane", None) if scope["type"] == "http" else None
        )
        hit = lane.lookup(scope) if lane is not None else None
        if hit is None:
            await self.app(scope, receive, send)
            return
        assert lane is not None
        lane.hits += 1
        entry, body = hit
        response = body_response(
            body, request=Request(scope), media_type=entry.media_type, headers=entry.headers
        )
        await response(scope, receive, send)


def body_response(
    body: Body, *, request: Request, media_type: str, headers: Mapping[str, str] | None = None
) -> Response:
    """200 with the body (gzip when accepted), or 304 when the client already has it."""
    common = {"ETag": body.etag, "Vary": "Accept, Accept-Encoding, Authorization"}
    common.update(headers or {})
    if body.matches(request.headers.get("if-none-match")):
        return Response(status_code=304, headers=common)
    content, encoding = body.encoded(accept_encoding=request.headers.get("accept-encoding"))
    if encoding is not None:
        common["Content-Encoding"] = encoding
    return Response(content, media_type=media_type, headers=common)


def _url_key(scope: Scope) -> UrlKey:
    accept = _header(scope, b"accept")
    return scope["path"], scope["query_string"], accept.decode("latin-1") if accept else ""


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value  # type: ignore[no-any-return]
    return None
