"""Cached boards are served without touching the database, compressed and conditional, yet a
change shows at once when made through this server and within ``revalidate_s`` otherwise."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event

from server.app import create_app
from server.db import create_schema, make_engine
from tests.server.board_seed import Planned, World, board_rows, build_world, get_page, seed
from tests.server.conftest import auth, make_settings

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


@pytest.mark.parametrize("url", [BOARD, API, "/"])
def test_a_warm_public_board_costs_no_query(
    url: str, engine: Engine, client: TestClient, world: World
) -> None:
    first = client.get(url)
    assert first.status_code == 200
    statements = Statements(engine)
    again = client.get(url)
    assert again.status_code == 200 and again.content == first.content
    assert statements.n == 0, "a known-current cached board must not touch the database"


def test_a_score_posted_through_the_server_shows_at_once(
    app: FastAPI, engine: Engine, client: TestClient, world: World
) -> None:
    get_page(client, BOARD)
    client.get(API)
    # Through the app's own engine: what a worker's POST of a result does in the server.
    seed(engine, app.state.ctx, [Planned("zeta", {"test1": 0.93, "test2": 0.1})])
    assert board_rows(get_page(client, BOARD))[1] == ("1", "zeta", "0.930")
    labels = [e["label"] for e in client.get(API).json()["boards"][0]["entries"]]
    assert labels[1] == "zeta"


def test_gzip_and_etag(client: TestClient, world: World) -> None:
    plain = client.get(API, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    packed = client.get(API, headers={"Accept-Encoding": "gzip"})
    assert packed.headers["content-encoding"] == "gzip"
    assert packed.content == plain.content, "httpx decodes gzip: same JSON"
    assert "Accept-Encoding" in packed.headers["vary"]
    etag = plain.headers["etag"]
    assert packed.headers["etag"] == etag, "one entity, two encodings, one validator"
    cond = client.get(API, headers={"If-None-Match": etag})
    assert cond.status_code == 304 and cond.content == b"" and cond.headers["etag"] == etag
    assert client.get(API, headers={"If-None-Match": '"stale"'}).status_code == 200


def test_organizers_never_get_the_public_copy(
    client: TestClient, tokens: dict[str, str], world: World
) -> None:
    public = client.get("/api/leaderboard/tiny?fraction=0.1").json()
    assert public["boards"][0]["tasks"] == ["test1"]
    ops = client.get("/api/leaderboard/tiny?fraction=0.1", headers=auth(tokens["ops"])).json()
    assert ops["boards"][0]["tasks"] == ["test1", "test2"], "hidden test for the organizer"
    again = client.get("/api/leaderboard/tiny?fraction=0.1").json()
    assert again["boards"][0]["tasks"] == ["test1"], "and the public copy stays public"
    bad = client.get("/api/leaderboard/tiny?fraction=0.1", headers=auth("nope"))
    assert bad.status_code == 401, "a bad token is refused even when a public copy is cached"


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
    settings = make_settings(
        tmp_path,
        server_configs=server_configs,
        data_root=data_root,
        database_url=url,
        board_revalidate_s=3600,
    )
    yield create_app(settings, engine=engine)
    engine.dispose()


def test_other_processes_writes_show_after_revalidate_s(
    file_app: FastAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = make_engine(f"sqlite:///{tmp_path / 'board.db'}")  # another process's connection
    with TestClient(file_app) as client:
        build_world(other, file_app.state.ctx)
        before = board_rows(get_page(client, BOARD))
        seed(other, file_app.state.ctx, [Planned("zeta", {"test1": 0.93, "test2": 0.1})])
        assert board_rows(get_page(client, BOARD)) == before, "trusted for revalidate_s"
        clock = file_app.state.pages.boards.clock
        later = clock._known[2] + 3601  # type: ignore[index]
        monkeypatch.setattr("server.services.freshness.time.monotonic", lambda: later)
        assert board_rows(get_page(client, BOARD))[1] == ("1", "zeta", "0.930")
    other.dispose()


def _lane_hits(app: FastAPI) -> int:
    return app.state.fastlane.hits  # type: ignore[no-any-return]


@pytest.mark.parametrize("url", [BOARD, API, API + "&format=csv", "/"])
def test_repeat_anonymous_requests_skip_routing_with_the_same_answer(
    url: str, app: FastAPI, client: TestClient, world: World
) -> None:
    first = client.get(url, headers={"Accept-Encoding": "gzip"})
    hits = _lane_hits(app)
    again = client.get(url, headers={"Accept-Encoding": "gzip"})
    assert _lane_hits(app) == hits + 1, "a remembered, current public page skips routing"
    assert again.status_code == 200 and again.content == first.content
    for h in ("content-type", "etag", "vary", "content-encoding", "content-disposition"):
        assert again.headers.get(h) == first.headers.get(h), h
    cond = client.get(url, headers={"If-None-Match": first.headers["etag"]})
    assert cond.status_code == 304 and _lane_hits(app) == hits + 2


def test_the_lane_never_answers_what_the_route_would_not(
    app: FastAPI, client: TestClient, tokens: dict[str, str], world: World
) -> None:
    client.get(API)
    hits = _lane_hits(app)
    ops = client.get(API, headers=auth(tokens["ops"])).json()
    assert ops["boards"][0]["tasks"] == ["test1", "test2"], "organizers always take the route"
    as_csv = client.get(API, headers={"Accept": "text/csv"})
    assert as_csv.headers["content-type"].startswith("text/csv"), "Accept is part of the URL key"
    for bad in ("/api/leaderboard/tiny?fraction=2", "/api/leaderboard/nope", "/datasets/nope"):
        codes = {client.get(bad).status_code for _ in range(2)}
        assert codes <= {404, 422} and len(codes) == 1, bad
    assert _lane_hits(app) == hits, "none of these may come from the lane"


def test_the_lane_steps_aside_when_the_board_changed(
    app: FastAPI, engine: Engine, client: TestClient, world: World
) -> None:
    client.get(BOARD)
    hits = _lane_hits(app)
    seed(engine, app.state.ctx, [Planned("zeta", {"test1": 0.93, "test2": 0.1})])
    assert board_rows(get_page(client, BOARD))[1] == ("1", "zeta", "0.930")
    assert _lane_hits(app) == hits, "a stale body goes back through the route"
    get_page(client, BOARD)
    assert _lane_hits(app) == hits + 1, "and the rebuilt one is served by the lane again"


def test_the_lane_remembers_a_bounded_number_of_urls(app: FastAPI, world: World) -> None:
    from server.routes.fastlane import FastLane

    lane = FastLane(app.state.pages, max_urls=2)
    app.state.fastlane = lane
    with TestClient(app) as client:
        for q in ("a", "b", "c"):
            client.get(f"{BOARD}&utm={q}")
        assert len(lane._lanes) == 2
        hits = lane.hits
        client.get(f"{BOARD}&utm=a")  # forgotten: routed again
        client.get(f"{BOARD}&utm=c")
        assert lane.hits == hits + 1
