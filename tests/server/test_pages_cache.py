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
from tests.server.helpers import count_calls


def test_board_cache_is_revalidated_by_new_scores(
    app: FastAPI,
    engine: Engine,
    client: TestClient,
    tokens: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world: World = build_world(engine, app.state.ctx)
    ranked = count_calls(monkeypatch, "server.services.boards.rank_bundle")
    get_page(client, "/datasets/tiny?fraction=0.1")
    client.get("/api/leaderboard/tiny?fraction=0.1")
    assert len(ranked) == 1, "the page and the export share one ranking per board version"
    get_page(client, "/datasets/tiny?fraction=0.1")
    assert len(ranked) == 1, "an unchanged database is served from the cache"
    seed(engine, app.state.ctx, [Planned("zeta", {"test1": 0.93, "test2": 0.1})])
    assert board_rows(get_page(client, "/datasets/tiny?fraction=0.1"))[1] == ("1", "zeta", "0.930")
    moderate(engine, app.state.ctx, world.ids["alpha_t1"], "disqualify")
    rows = board_rows(get_page(client, "/datasets/tiny?fraction=0.1"))
    assert ("2", "beta", "0.833") in rows and ("3", "alpha", "0.800") in rows


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


def test_a_ranked_bundle_holds_no_reference_cycles(
    app: FastAPI, engine: Engine, client: TestClient, tokens: dict[str, str]
) -> None:
    """Bundles are kept out of the collector (gc.freeze): refcounting alone must free them."""
    import gc

    from sqlmodel import Session

    from server.services.boards import BundleOf, rank_bundle

    build_world(engine, app.state.ctx)
    spec = app.state.ctx.catalog.spec("tiny")
    with Session(engine) as db:
        bundle = rank_bundle(db=db, spec=spec, of=BundleOf("tiny", "linear_probe", "1", ("test1",)))
    assert any(b.entries for b in bundle.boards.values())
    gc.collect()
    gc.disable()
    try:
        del bundle
        assert gc.collect() == 0, "a bundle's objects must not form cycles"
    finally:
        gc.enable()
