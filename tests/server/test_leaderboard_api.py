"""``GET /api/leaderboard/{dataset}``: JSON and CSV agree with the pages, filters, phases."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from server.app import create_app
from server.models import utcnow
from tests.server import board_seed
from tests.server.board_seed import World, build_world
from tests.server.conftest import auth, make_settings

# Read-only tests share one seeded app per database; test_reveal_... builds its own.


shared_world = board_seed.shared_world  # the module-scoped fixture, made visible here


@pytest.fixture
def world(shared_world: World) -> World:
    return shared_world


@pytest.fixture
def client(world: World) -> TestClient:
    return world.client  # type: ignore[no-any-return]


@pytest.fixture
def tokens(world: World) -> dict[str, str]:
    return world.tokens


def _ranks(board: dict) -> list[tuple[object, str, object]]:  # type: ignore[type-arg]
    return [(e["rank"], e["label"], e["score"] and round(e["score"], 6)) for e in board["entries"]]


def test_json_every_fraction(client: TestClient, world: World) -> None:
    r = client.get("/api/leaderboard/tiny")
    assert r.status_code == 200
    body = r.json()
    assert [b["fraction"] for b in body["boards"]] == [0.1, 0.25, 0.5]
    assert [b["budget"] for b in body["boards"]] == [30, 75, 150]
    b10 = body["boards"][0]
    assert b10["tasks"] == ["test1"] and b10["primary_metric"] == "accuracy"
    assert _ranks(b10) == [
        (None, "oracle", 0.99),
        (1, "alpha", 0.85),
        (2, "beta", 0.833333),
        (None, "random_filter", 0.5),
    ]
    assert [e["kind"] for e in b10["entries"]] == ["oracle", "submission", "submission", "baseline"]
    assert body["boards"][2]["entries"] == []


def test_filters(client: TestClient, world: World) -> None:
    one = client.get("/api/leaderboard/tiny", params={"fraction": 0.25, "task": "test1"}).json()
    (board,) = one["boards"]
    assert board["task"] == "test1" and board["fraction"] == 0.25
    assert _ranks(board) == [(1, "alpha", 0.88), (2, "beta", 0.86)]
    every = client.get("/api/leaderboard/tiny", params={"fraction": 0.1, "all": True}).json()
    assert [e["submission_ids"] for e in every["boards"][0]["entries"]][1:4] == [
        [world.ids["alpha_t1"]],
        [world.ids["beta_all"]],
        [world.ids["alpha_all"]],
    ]
    other = client.get(
        "/api/leaderboard/tiny", params={"fraction": 0.1, "recipe": "full_finetune_resnet50"}
    )
    assert other.status_code == 200 and other.json()["boards"][0]["entries"] == []


def test_csv_matches_json(client: TestClient, world: World) -> None:
    params = {"fraction": 0.1}
    js = client.get("/api/leaderboard/tiny", params=params).json()["boards"][0]
    r = client.get("/api/leaderboard/tiny", params={**params, "format": "csv"})
    assert r.headers["content-type"].startswith("text/csv")
    assert 'filename="tiny-leaderboard-0.1.csv"' in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [(x["rank"], x["label"], x["accuracy"], x["budget"]) for x in rows] == [
        ("" if e["rank"] is None else str(e["rank"]), e["label"], repr(e["score"]), "30")
        for e in js["entries"]
    ]
    by_accept = client.get("/api/leaderboard/tiny", params=params, headers={"Accept": "text/csv"})
    assert by_accept.text == r.text
    assert "test2" not in rows[0]


def test_organizer_sees_hidden_tasks(
    client: TestClient, world: World, tokens: dict[str, str]
) -> None:
    org = client.get(
        "/api/leaderboard/tiny", params={"fraction": 0.1}, headers=auth(tokens["ops"])
    ).json()
    assert org["boards"][0]["tasks"] == ["test1", "test2"]
    assert _ranks(org["boards"][0])[1:3] == [(1, "beta", 0.866667), (2, "alpha", 0.725)]
    part = client.get(
        "/api/leaderboard/tiny", params={"fraction": 0.1}, headers=auth(tokens["beta"])
    ).json()
    assert part["boards"][0]["tasks"] == ["test1"]
    assert all("test2" not in e["tasks"] for e in part["boards"][0]["entries"])
    hidden = client.get("/api/leaderboard/tiny", params={"task": "test2"})
    assert hidden.status_code == 404 and "hidden" in hidden.json()["problems"][0]["message"]
    assert (
        client.get(
            "/api/leaderboard/tiny", params={"task": "test2"}, headers=auth(tokens["ops"])
        ).status_code
        == 200
    )
    assert client.get("/api/leaderboard/tiny", headers=auth("tdc_not_a_token")).status_code == 401


def test_errors(client: TestClient, world: World) -> None:
    r = client.get("/api/leaderboard/tinny")
    assert r.status_code == 404 and "Did you mean 'tiny'" in r.json()["problems"][0]["message"]
    assert client.get("/api/leaderboard/tiny", params={"fraction": 0.3}).status_code == 404
    assert client.get("/api/leaderboard/tiny", params={"fraction": 2}).status_code == 422
    assert client.get("/api/leaderboard/tiny", params={"recipe": "linear_prob"}).status_code == 404
    assert client.get("/api/leaderboard/tiny", params={"format": "xml"}).status_code == 422
    assert "/api/leaderboard/{dataset}" in client.get("/openapi.json").json()["paths"]


def test_reveal_time_makes_hidden_task_public(
    tmp_path: Path, server_configs: Path, data_root: Path, db_url: str, engine: Engine
) -> None:
    past = utcnow() - timedelta(minutes=1)
    settings = make_settings(
        tmp_path,
        server_configs=server_configs,
        data_root=data_root,
        database_url=db_url,
        reveal_at={"tiny/test2": past},
    )
    with TestClient(create_app(settings, engine=engine)) as client:
        build_world(engine, client.app.state.ctx)  # type: ignore[attr-defined]
        board = client.get("/api/leaderboard/tiny", params={"fraction": 0.1}).json()["boards"][0]
        assert board["tasks"] == ["test1", "test2"]
        assert _ranks(board)[1] == (1, "beta", 0.866667)
        page = client.get("/datasets/tiny?fraction=0.1&task=test2")
        assert page.status_code == 200
