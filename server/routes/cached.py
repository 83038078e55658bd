"""Boards, exports, the home page and site.zip: built once per board version, served from memory.

    return await serve_cached(request, creds, key=key, datasets=["demo"], build=build,
                              media_type="text/html; charset=utf-8")

The serving path: every change a board can show bumps its dataset's ``board_version`` in the
same transaction (``server.services.transitions``; a server start bumps them all). A request
reads the versions (:class:`VersionReader`: one query made after the request came, shared
with the requests of the same event-loop iteration, so each process sees a commit on its next
request) and looks its body up under (key, versions of its datasets) in the app's one
byte-bounded :class:`~server.services.built.BuiltOnce`, which also holds the ranked boards the
bodies are made from (ranked in a child process: ``server.services.ranking_process``). The
first request of a new version builds the body in the thread pool; requests meanwhile get the
previous version's body. A body keeps its gzip copy and a weak ETag from its key and version,
one per encoding (``If-None-Match`` gets a 304); anonymous responses say ``Cache-Control:
public, max-age, stale-while-revalidate``, an organizer's ``private``.
The key holds the request's validated parameters, the viewer and the visible tasks (a reveal
time passing changes it), never raw header or query text.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials
from sqlmodel import Session

from server.routes.deps import open_session, viewer_is_organizer
from server.services.boards import BOARD_VERSIONS
from server.services.built import BuiltOnce


@dataclass(frozen=True)
class Body:
    raw: bytes
    gzipped: bytes | None
    tag: str  # from the key and version: the same in every process

    @classmethod
    def of(cls, content: str | bytes, *, tag: str) -> Body:
        raw = content.encode() if isinstance(content, str) else content
        # Under 1 KiB the gzip header overhead eats the gain.
        packed = gzip.compress(raw, compresslevel=6, mtime=0) if len(raw) >= 1024 else None
        return cls(raw, packed, tag)

    def nbytes(self) -> int:
        return len(self.raw) + len(self.gzipped or b"")

    def response(self, request: Request, headers: Mapping[str, str], media: str) -> Response:
        """200 with the body (gzip when accepted), or 304 when the client already has it."""
        # Starlette's GZipMiddleware rule: gzip when the client names it.
        zipped = self.gzipped is not None and "gzip" in request.headers.get("accept-encoding", "")
        etag = f'W/"{self.tag}-gzip"' if zipped else f'W/"{self.tag}"'
        common = {**headers, "ETag": etag, "Vary": "Accept, Accept-Encoding, Authorization"}
        # If-None-Match compares weakly (RFC 9110 13.1.2): the W/ prefix does not count.
        asked = request.headers.get("if-none-match", "").replace("W/", "").split(",")
        if {"*", etag.removeprefix("W/")} & {t.strip() for t in asked}:
            return Response(status_code=304, headers=common)
        if zipped:
            common["Content-Encoding"] = "gzip"
        return Response(self.gzipped if zipped else self.raw, media_type=media, headers=common)


class VersionReader:
    """Every dataset's board version, read after the caller asked: the callers of one event
    loop iteration share one read, made at its end on the loop itself (a ~10 us query on a
    held connection: cheaper than handing it to a thread)."""

    def __init__(self, app: FastAPI) -> None:
        self.app, self._conn = app, None  # a DB-API connection, held
        self._next: asyncio.Future[dict[str, int]] | None = None

    async def read(self) -> dict[str, int]:
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().call_soon(self._read, self._next)
        return await asyncio.shield(self._next)

    def _read(self, waiting: asyncio.Future[dict[str, int]]) -> None:
        self._next = None  # later callers wait for the next read
        try:
            waiting.set_result(self._query())
        except Exception as err:
            self._conn = None  # reconnect on the next read (a database restart)
            waiting.set_exception(err)

    def _query(self) -> dict[str, int]:
        conn = self._conn = self._conn or self.app.state.engine.raw_connection()
        cursor = conn.cursor()
        cursor.execute(BOARD_VERSIONS)
        rows = cursor.fetchall()
        conn.rollback()  # end the read transaction: the next read sees new commits
        return {name: int(v) for name, v in rows}

    def close(self) -> None:  # the connection goes back to the engine's pool
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


async def serve_cached(
    request: Request,
    creds: HTTPAuthorizationCredentials | None,
    *,
    key: Callable[[bool], tuple[object, ...]],
    datasets: Sequence[str],
    build: Callable[[Session, bool], str | bytes],
    media_type: str,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """The body of ``key(organizer)`` built by ``build(db, organizer)``, which depends on the
    database only through the boards of ``datasets``."""
    app = request.app
    organizer = creds is not None and await run_in_threadpool(viewer_is_organizer, app, creds)
    k = ("body", *key(organizer))
    versions = await app.state.versions.read()
    version = tuple(versions.get(d, 0) for d in datasets)
    built: BuiltOnce = app.state.built
    body = built.peek(k, version=version)
    if body is None:
        tag = hashlib.blake2b(repr((k, version)).encode(), digest_size=12).hexdigest()

        def make() -> Body:
            with open_session(app) as db:
                return Body.of(build(db, organizer), tag=tag)

        body = await _build_once(app, k, lambda: built.get(k, version=version, build=make,
                                                           size=Body.nbytes))  # fmt: skip
    s = app.state.settings
    public = f"public, max-age={s.board_max_age_s}, stale-while-revalidate={s.board_stale_s}"
    cache = "private, no-cache" if organizer else public
    return body.response(request, {**(headers or {}), "Cache-Control": cache}, media_type)


async def _build_once(app: FastAPI, key: tuple[object, ...], get: Callable[[], Body]) -> Body:
    """The first request of a new version builds the body in the thread pool and waits for it;
    requests arriving meanwhile get the previous version's body (or wait when there is none).
    Decided here, on the event loop, before any thread runs: requests of one loop iteration
    must not all find nothing in progress and queue behind the build."""
    building = app.state.building  # key -> the task building its body
    if key not in building:
        building[key] = asyncio.ensure_future(run_in_threadpool(get))
        building[key].add_done_callback(lambda _: building.pop(key, None))
        return await building[key]  # type: ignore[no-any-return]
    stale = app.state.built.peek(key, version=None)
    return stale if stale is not None else await asyncio.shield(building[key])
