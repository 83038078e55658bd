"""Boards are built once per board version and served from memory: one version query per
request, a change visible on the next request (also another process's), weak ETags per
encoding, Cache-Control, and nothing raw from the request in the cache key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event
from sqlmodel import Session

from server.app import create_app
from server.context import ServerContext
from server.db import create_schema, make_engine, migrate
from server.live import LiveServer
from server.routes.cached import Body
from server.services.boards import board_versions
from tests.server.board_seed import (
    Planned,
    World,
    board_rows,
    build_world,
    get_page,
    queue_one,
    seed,
)
from tests.server.conftest import auth, make_settings
from tests.server.helpers import live_env

BOARD = "/datasets/tiny?fraction=0.1"
API = "/api/leaderboard/tiny?fraction=0.1"


class Statements:
    """Counts SQL statements sent through an engine."""

    def __init__(self, engine: Engine) -> None:
        self.n = 0
        event.listen(engine, "before_cursor_execute", self._count)

    def _count(self, *_: Any) -> None:
        self.n += 1


@pytest.fixture
def world(app: FastAPI, engine: Engine, client: TestClient, tokens: dict[str, str]) -> World:
    return build_world(engine, app.state.ctx)


@pytest.fixture
def body_builds(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The bodies built from now on (the cache's misses)."""
    built: list[bytes] = []
    of = Body.of

    def counting(content: str | bytes, *, tag: str) -> Body:
        body = of(content, tag=tag)
        built.append(body.raw)
        return body

    monkeypatch.setattr(Body, "of", counting)
    return built


@pytest.mark.parametrize("url", [BOARD, API, "/"])
def test_a_warm_board_costs_one_version_query(
    url: str,
    engine: Engine,
    client: TestClient,
    world: World,
    body_builds: list[bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from server.routes.cached import VersionReader

    first = client.get(url)
    assert first.status_code == 200 and len(body_builds) == 1
    reads: list[dict[str, int]] = []
    query = VersionReader._query
    monkeypatch.setattr(
        VersionReader, "_query", lambda self: reads.append(query(self)) or reads[-1]
    )
    statements = Statements(engine)
    again = client.get(url)
    assert again.status_code == 200 and again.content == first.content
    assert len(reads) == 1 and statements.n == 0, "the version read (DB-API) and nothing else"
    assert len(body_builds) == 1


def test_a_change_shows_on_the_next_request(
    app: FastAPI, engine: Engine, client: TestClient, world: World
) -> None:
    get_page(client, BOARD)
    client.get(API)
    seed(engine, app.state.ctx, [Planned("zeta", {"test1": 0.93, "test2": 0.1})])
    assert board_rows(get_page(client, BOARD))[1] == ("1", "zeta", "0.930")
    labels = [e["label"] for e in client.get(API).json()["boards"][0]["entries"]]
    assert labels[1] == "zeta"


def test_only_board_changes_bump_the_version(engine: Engine, world: World) -> None:
    from server.models import Submission
    from server.services import transitions

    def version() -> int:
        with Session(engine) as db:
            return board_versions(db)["tiny"]

    before = version()
    queued = queue_one(engine, team="zeta")  # uploaded, not scored
    with Session(engine) as db:
        sub = db.get(Submission, queued)
        assert sub is not None and sub.state == "queued"
        transitions.record(db=db, sub=sub, action="job", actor="w", reason="job 7")
        transitions.set_flag(db=db, sub=sub, flag="hidden", value=True, actor="o", reason="x")
        db.commit()
    assert version() == before, "a queued row's events change no board"
    with Session(engine) as db:
        scored = db.get(Submission, world.ids["alpha_t1"])
        assert scored is not None
        transitions.set_flag(db=db, sub=scored, flag="hidden", value=True, actor="o", reason="x")
        db.commit()
    assert version() == before + 1, "hiding a scored row moves its board"


def test_etags_differ_per_encoding_and_revalidate(client: TestClient, world: World) -> None:
    plain = client.get(API, headers={"Accept-Encoding": "identity"})
    packed = client.get(API, headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in plain.headers and packed.headers["content-encoding"] == "gzip"
    assert packed.content == plain.content, "httpx decodes gzip: the same JSON"
    etag, gz_etag = plain.headers["etag"], packed.headers["etag"]
    assert etag.startswith('W/"') and gz_etag.startswith('W/"') and etag != gz_etag
    assert "Accept-Encoding" in packed.headers["vary"]
    for tag, encoding in ((etag, "identity"), (gz_etag, "gzip")):
        cond = client.get(API, headers={"If-None-Match": tag, "Accept-Encoding": encoding})
        assert cond.status_code == 304 and cond.content == b"" and cond.headers["etag"] == tag
    other = client.get(API, headers={"If-None-Match": etag, "Accept-Encoding": "gzip"})
    assert other.status_code == 200, "the identity validator does not match the gzip body"
    assert client.get(API, headers={"If-None-Match": '"stale"'}).status_code == 200


def test_cache_control_public_for_anonymous_private_for_organizers(
    client: TestClient, tokens: dict[str, str], world: World
) -> None:
    for url in (BOARD, API, "/"):
        cc = client.get(url).headers["cache-control"]
        assert cc.startswith("public, max-age=") and "stale-while-revalidate=" in cc, url
        assert (
            client.get(url, headers=auth(tokens["ops"]))
            .headers["cache-control"]
            .startswith("private")
        ), url


def test_organizers_never_get_the_public_copy(
    client: TestClient, tokens: dict[str, str], world: World
) -> None:
    public = client.get(API).json()
    assert public["boards"][0]["tasks"] == ["test1"]
    ops = client.get(API, headers=auth(tokens["ops"])).json()
    assert ops["boards"][0]["tasks"] == ["test1", "test2"], "hidden test for the organizer"
    assert client.get(API).json()["boards"][0]["tasks"] == ["test1"], "the public copy stays"
    bad = client.get(API, headers=auth("nope"))
    assert bad.status_code == 401, "a bad token is refused even when a public copy is cached"


def test_the_key_holds_validated_values_only(
    client: TestClient, world: World, body_builds: list[bytes]
) -> None:
    for junk in ("a", "b", "c" * 2000):
        r = client.get(f"{BOARD}&utm={junk}", headers={"Accept": f"text/html, {junk}"})
        assert r.status_code == 200
    assert len(body_builds) == 1, "ignored parameters and headers share one body"
    assert (
        client.get(API, headers={"Accept": "text/csv"})
        .headers["content-type"]
        .startswith("text/csv")
    ), "Accept still selects CSV, as a parsed choice"
    for bad in ("/api/leaderboard/tiny?fraction=2", "/api/leaderboard/nope", "/datasets/nope"):
        codes = {client.get(bad).status_code for _ in range(2)}
        assert codes <= {404, 422} and len(codes) == 1, bad


def test_csv_export_keeps_its_headers(client: TestClient, world: World) -> None:
    r = client.get(API + "&format=csv", headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert 'filename="tiny-leaderboard-0.1.csv"' in r.headers["content-disposition"]
    assert r.text.splitlines()[0].startswith("dataset,")


@pytest.fixture
def file_app(tmp_path: Path, server_configs: Path, data_root: Path) -> Iterator[FastAPI]:
    url = f"sqlite:///{tmp_path / 'board.db'}"
    engine = make_engine(url)
    create_schema(engine)
    settings = make_settings(tmp_path, server_configs=server_configs, data_root=data_root,
                             database_url=url, board_rank_process=True)  # fmt: skip
    yield create_app(settings, engine=engine)
    engine.dispose()


def test_another_processes_write_shows_on_the_next_request(
    file_app: FastAPI, tmp_path: Path
) -> None:
    """Also: the boards are ranked by the child process, reading the same file."""
    assert file_app.state.ranking is not None
    other = make_engine(f"sqlite:///{tmp_path / 'board.db'}")  # another process's connection
    with TestClient(file_app) as client:
        build_world(other, file_app.state.ctx)
        get_page(client, BOARD)
        seed(other, file_app.state.ctx, [Planned("zeta", {"test1": 0.93, "test2": 0.1})])
        assert board_rows(get_page(client, BOARD))[1] == ("1", "zeta", "0.930")
    other.dispose()


def test_two_worker_processes_show_a_new_score_on_the_next_request(
    tmp_path: Path, server_configs: Path, data_root: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'tdc.db'}"
    settings = make_settings(
        tmp_path, server_configs=server_configs, data_root=data_root, database_url=url
    )
    engine = make_engine(url)
    migrate(engine)
    ctx = ServerContext.from_settings(settings)
    with Session(engine) as db:
        ctx.catalog.sync(db)
    build_world(engine, ctx)
    env = live_env(tmp_path, url=url, server_configs=server_configs, data_root=data_root)

    def fresh_boards(n: int) -> list[str]:  # a new connection each: both workers answer
        out = []
        for _ in range(n):
            with httpx.Client(base_url=server.url) as http:
                entries = http.get(API).json()["boards"][0]["entries"]
                out.append(next(e["label"] for e in entries if e["rank"] == 1))
        return out

    with LiveServer.start(env=env, log_path=tmp_path / "server.log", workers=2) as server:
        leader = fresh_boards(12)
        assert len(set(leader)) == 1 and leader[0] != "zeta"  # every worker's cache is warm
        seed(engine, ctx, [Planned("zeta", {"test1": 0.99, "test2": 0.1})])
        assert fresh_boards(12) == ["zeta"] * 12
    engine.dispose()


def test_requests_share_a_version_read_made_after_they_asked(app: FastAPI) -> None:
    import asyncio

    from server.routes.cached import VersionReader

    reads: list[int] = []

    def query() -> dict[str, int]:
        reads.append(len(reads))
        return {"tiny": len(reads)}

    async def scenario() -> tuple[list[dict[str, int]], dict[str, int]]:
        reader = VersionReader(app)
        reader._query = query  # type: ignore[method-assign]
        together = await asyncio.gather(*(reader.read() for _ in range(5)))
        return together, await reader.read()

    together, later = asyncio.run(scenario())
    assert together == [{"tiny": 1}] * 5, "requests of one loop iteration share one read"
    assert later == {"tiny": 2} and len(reads) == 2, "a later request gets a later read"


def test_during_a_rebuild_other_requests_get_the_previous_body(
    app: FastAPI, engine: Engine, client: TestClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from server.services import boards

    old = board_rows(get_page(client, BOARD))
    started, release = threading.Event(), threading.Event()
    rank = boards.rank_bundle

    def slow_rank(**kwargs: Any) -> boards.Bundle:
        started.set()
        release.wait(timeout=30)
        return rank(**kwargs)

    monkeypatch.setattr(boards, "rank_bundle", slow_rank)
    seed(engine, app.state.ctx, [Planned("zeta", {"test1": 0.93, "test2": 0.1})])
    first: list[list[tuple[str, ...]]] = []
    builder = threading.Thread(target=lambda: first.append(board_rows(get_page(client, BOARD))))
    builder.start()
    assert started.wait(timeout=30)
    assert board_rows(get_page(client, BOARD)) == old, "served the previous body meanwhile"
    release.set()
    builder.join(timeout=30)
    assert first[0][1] == ("1", "zeta", "0.930"), "the request that built it sees the change"
    assert board_rows(get_page(client, BOARD))[1] == ("1", "zeta", "0.930")


def test_the_ranking_child_ends_with_its_server(
    tmp_path: Path, server_configs: Path, data_root: Path
) -> None:
    import os
    import signal
    import time

    import psutil

    url = f"sqlite:///{tmp_path / 'tdc.db'}"
    env = live_env(tmp_path, url=url, server_configs=server_configs, data_root=data_root)
    with LiveServer.start(env=env, log_path=tmp_path / "server.log") as server:
        assert httpx.get(server.url + API).status_code == 200  # ranked by the child
        children = psutil.Process(server.pid).children(recursive=True)
        assert children, "the boards are ranked in a child process"
        os.kill(server.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children):
            assert time.monotonic() < deadline, "a ranking child outlived its server"
            time.sleep(0.2)
