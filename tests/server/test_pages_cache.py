"""The board cache follows the database: new scores and moderation show up at once."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.server.board_seed import (
    Planned,
    World,
    board_rows,
    build_world,
    get_page,
    moderate,
    seed,
)


def test_board_cache_is_revalidated_by_new_scores(
    app: FastAPI, engine: Engine, client: TestClient, tokens: dict[str, str]
) -> None:
    world: World = build_world(engine, app.state.ctx)
    pages = app.state.pages
    get_page(client, "/datasets/tiny?fraction=0.1")
    builds = pages.boards.builds
    get_page(client, "/datasets/tiny?fraction=0.1")
    assert pages.boards.builds == builds, "an unchanged database is served from the cache"
    seed(engine, app.state.ctx, [Planned("zeta", {"test1": 0.93, "test2": 0.1})])
    assert board_rows(get_page(client, "/datasets/tiny?fraction=0.1"))[1] == ("1", "zeta", "0.930")
    moderate(engine, app.state.ctx, world.ids["alpha_t1"], "disqualify")
    rows = board_rows(get_page(client, "/datasets/tiny?fraction=0.1"))
    assert ("2", "beta", "0.820") in rows and ("3", "alpha", "0.800") in rows


def test_recipe_versions_are_separate_boards(
    app: FastAPI, engine: Engine, client: TestClient, tokens: dict[str, str]
) -> None:
    build_world(engine, app.state.ctx)
    seed(
        engine, app.state.ctx, [Planned("zeta", {"test1": 0.99, "test2": 0.99}, recipe_version="2")]
    )
    v1 = get_page(client, "/datasets/tiny?fraction=0.1")
    assert "zeta" not in [r[1] for r in board_rows(v1)]
    assert "linear_probe v1" in v1.text and "linear_probe v2" in v1.text  # both selectable
    v2 = get_page(client, "/datasets/tiny?fraction=0.1&recipe=linear_probe&version=2")
    assert board_rows(v2) == [("1", "zeta", "0.990")]
    api = client.get("/api/leaderboard/tiny", params={"fraction": 0.1, "version": "2"}).json()
    assert [e["label"] for e in api["boards"][0]["entries"]] == ["zeta"]


def test_a_missing_board_is_built_once_for_concurrent_viewers() -> None:
    import threading
    import time

    from server.services.boards import BoardService

    service = BoardService(ctx=None)  # type: ignore[arg-type]  (the cache needs no context)
    started, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def build() -> str:
        calls.append(1)
        started.set()
        release.wait(timeout=30)
        return "board"

    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(service._cached(("k",), (1, 1), build)))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    started.wait(timeout=30)
    time.sleep(0.3)  # let the other viewers arrive and queue behind the first build
    release.set()
    for t in threads:
        t.join(timeout=30)
    assert results == ["board"] * 8 and len(calls) == 1
    assert service._cached(("k",), (2, 1), lambda: "new") == "new"  # a new stamp rebuilds


def test_big_boards_show_the_top_rows_first(
    app: FastAPI, engine: Engine, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_world(engine, app.state.ctx)
    monkeypatch.setattr("server.routes.pages.TOP_ROWS", 2)
    top = get_page(client, "/datasets/tiny?fraction=0.1")
    assert [r[1] for r in board_rows(top)] == ["oracle", "alpha"]
    assert "/datasets/tiny?fraction=0.1&recipe=linear_probe&version=1&rows=all" in top.urls
    every = get_page(client, "/datasets/tiny?fraction=0.1&recipe=linear_probe&version=1&rows=all")
    assert len(board_rows(every)) == 4


def test_a_rebuild_in_progress_serves_the_previous_body_to_others() -> None:
    import threading

    from server.services.boards import BoardService

    service = BoardService(ctx=None)  # type: ignore[arg-type]  (the cache needs no context)
    assert service._cached(("k",), (1, 1), lambda: "old") == "old"
    started, release = threading.Event(), threading.Event()

    def slow_build() -> str:
        started.set()
        release.wait(timeout=30)
        return "new"

    got: list[str] = []
    builder = threading.Thread(
        target=lambda: got.append(service._cached(("k",), (2, 2), slow_build))
    )
    builder.start()
    started.wait(timeout=30)
    meanwhile = service._cached(("k",), (2, 2), lambda: "never", stale_ok=True)
    assert meanwhile == "old", "a viewer does not queue behind the rebuild"
    service.clock.peek = lambda stale_ok=False: (2, 2)  # type: ignore[method-assign]
    assert service.peek(("k",)) == "old", "nor does the fast path: it keeps the old body"
    assert service.peek(("other",)) is None
    waiter: list[str] = []
    strict = threading.Thread(target=lambda: waiter.append(service._cached(("k",), (2, 2), str)))
    strict.start()
    release.set()
    builder.join(timeout=30)
    strict.join(timeout=30)
    assert got == ["new"] and waiter == ["new"], "without stale_ok a caller waits for the build"
    assert service._cached(("k",), (2, 2), lambda: "never", stale_ok=True) == "new"
    assert service.peek(("k",)) == "new" and service.builds == 2
    service.clock.peek = lambda stale_ok=False: (3, 3)  # type: ignore[method-assign]
    assert service.peek(("k",)) is None, "a stale body with nobody rebuilding it is not served"
