"""Final picks for hidden tests (``/api/picks``), on SQLite and PostgreSQL: who may pick what,
the per-board limit, the freeze at the reveal, the events, and the hidden boards that rank
only the picks (or each team's best by public score when it picked none)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from server.context import ServerContext
from server.db import make_engine, migrate
from server.models import Submission, Team, utcnow
from server.services import picks, public_rows
from server.services.auth import Principal
from server.services.boards import board_versions
from submissions.errors import TdcError
from submissions.schemas import PickChange
from tests.server.board_seed import Planned, ensure_team, moderate, queue_one, seed
from tests.server.conftest import _pg_url, auth, make_settings

PLANS = {  # tiny: test1 public, test2 hidden; fraction 0.1 unless said
    "a1": Planned("alpha", {"test1": 0.90, "test2": 0.50}),
    "a2": Planned("alpha", {"test1": 0.80, "test2": 0.70}),
    "a3": Planned("alpha", {"test1": 0.70, "test2": 0.95}),
    "a_t1": Planned("alpha", {"test1": 0.99}, task="test1"),
    "a_25": Planned("alpha", {"test1": 0.50, "test2": 0.50}, fraction=0.25),
    "b1": Planned("beta", {"test1": 0.85, "test2": 0.60}),
    "g_t2": Planned("gamma", {"test2": 0.99}, task="test2"),
    "g1": Planned("gamma", {"test1": 0.60, "test2": 0.55}),
}


@pytest.fixture
def ids(client: TestClient, engine: Engine, tokens: dict[str, str]) -> dict[str, int]:
    return dict(zip(PLANS, seed(engine, _ctx(client), list(PLANS.values())), strict=True))


def _ctx(client: TestClient) -> ServerContext:
    return client.app.state.ctx  # type: ignore[attr-defined,no-any-return]


def _change(client: TestClient, token: str, **body: Any) -> Any:
    return client.post("/api/picks", json=body, headers=auth(token))


def _message(r: Any) -> str:
    return str(r.json()["problems"][0]["message"])


def _picked(r: Any) -> list[int]:
    (picks,) = r.json()
    return [s["id"] for s in picks["picks"]]


def _reveal(client: TestClient) -> None:
    _ctx(client).catalog.reveal_at["tiny/test2"] = utcnow() - timedelta(seconds=1)


def _board(client: TestClient, token: str | None = None, **params: Any) -> dict[str, Any]:
    headers = auth(token) if token else {}
    r = client.get("/api/leaderboard/tiny", params={"fraction": 0.1, **params}, headers=headers)
    assert r.status_code == 200, r.text
    board: dict[str, Any] = r.json()["boards"][0]
    return board


def _scores(board: dict[str, Any]) -> dict[str, float]:
    return {e["label"]: round(e["score"], 6) for e in board["entries"] if e["rank"] is not None}


def test_a_team_picks_its_own_scored_submissions_within_the_limit(
    client: TestClient, tokens: dict[str, str], ids: dict[str, int]
) -> None:
    alpha = tokens["alpha"]
    r = _change(client, alpha, pick=[ids["a1"], ids["a2"]], reason="our two best")
    assert r.status_code == 200, r.text
    (picks,) = r.json()
    assert (picks["dataset"], picks["team"], picks["limit"]) == ("tiny", "alpha", 2)
    assert picks["hidden_tasks"] == ["test2"] and picks["open"] and picks["closes_at"] is None
    assert [s["id"] for s in picks["picks"]] == [ids["a1"], ids["a2"]]
    assert all(s["picked"] for s in picks["picks"])

    over = _change(client, alpha, pick=[ids["a3"]])
    assert over.status_code == 422
    msg = _message(over)
    assert "at most 2 picks per board" in msg and "fraction 0.1" in msg
    assert f"picked now: {ids['a1']}, {ids['a2']}" in msg
    other_board = _change(client, alpha, pick=[ids["a_25"]])  # its own board: its own limit
    assert other_board.status_code == 200

    swap = _change(client, alpha, pick=[ids["a3"]], unpick=[ids["a1"]])
    assert swap.status_code == 200
    listed = client.get("/api/picks", params={"dataset": "tiny"}, headers=auth(alpha))
    assert _picked(listed) == [ids["a2"], ids["a3"], ids["a_25"]]
    again = _change(client, alpha, pick=[ids["a3"]])  # already picked: nothing changes
    assert _picked(again) == _picked(listed)


def test_picks_are_events_for_the_team_and_organizers(
    client: TestClient, tokens: dict[str, str], ids: dict[str, int], engine: Engine
) -> None:
    sid = ids["a1"]
    before = _versions(engine)
    assert _change(client, tokens["alpha"], pick=[sid], reason="best public").status_code == 200
    assert _versions(engine) == before + 1, "a pick of a scored row bumps the board"
    assert _change(client, tokens["alpha"], pick=[sid]).status_code == 200
    assert _change(client, tokens["alpha"], unpick=[sid]).status_code == 200
    for who in ("alpha", "ops"):
        detail = client.get(f"/api/submissions/{sid}", headers=auth(tokens[who])).json()
        events = [(e["action"], e["actor"], e["reason"]) for e in detail["events"]]
        assert events[-2:] == [
            ("pick", "participant:alpha", "best public"),
            ("unpick", "participant:alpha", None),
        ], "one event per change (the repeated pick made none)"
        assert detail["picked"] is False
    assert client.get(f"/api/submissions/{sid}", headers=auth(tokens["beta"])).status_code == 404
    with Session(engine) as db:  # the public pages' timeline leaves picks out
        public = public_rows.events(db=db, submission_id=sid, organizer=False)
    assert "pick" not in {e.action for e in public}


def _versions(engine: Engine) -> int:
    with Session(engine) as db:
        return board_versions(db)["tiny"]


def test_what_cannot_be_picked(
    client: TestClient, tokens: dict[str, str], ids: dict[str, int], engine: Engine
) -> None:
    alpha = tokens["alpha"]
    assert _change(client, tokens["beta"], pick=[ids["a1"]]).status_code == 404
    assert _change(client, alpha, pick=[999_999]).status_code == 404
    public_only = _change(client, alpha, pick=[ids["a_t1"]])
    assert public_only.status_code == 422 and "test1 only, a public task" in _message(public_only)
    queued = queue_one(engine, team="alpha")
    r = _change(client, alpha, pick=[queued])
    assert r.status_code == 409 and "only scored submissions" in _message(r)
    moderate(engine, _ctx(client), ids["b1"], "disqualify")
    r = _change(client, tokens["beta"], pick=[ids["b1"]])
    assert r.status_code == 409 and "disqualified" in _message(r)
    r = _change(client, alpha, pick=[ids["a1"], queued])  # all or nothing
    assert r.status_code == 409
    assert _picked(client.get("/api/picks", headers=auth(alpha))) == []
    for body in ({}, {"pick": [1], "unpick": [1]}, {"pick": [0]}, {"pick": [1] * 101}):
        assert _change(client, alpha, **body).status_code == 422, body


def test_picks_freeze_at_the_reveal(
    client: TestClient, tokens: dict[str, str], ids: dict[str, int]
) -> None:
    assert _change(client, tokens["alpha"], pick=[ids["a1"]]).status_code == 200
    _reveal(client)
    for body in ({"pick": [ids["a2"]]}, {"unpick": [ids["a1"]]}):
        r = _change(client, tokens["ops"], **body)  # organizers too
        assert r.status_code == 409 and "picks on tiny are final" in _message(r)
    (picks,) = client.get("/api/picks", headers=auth(tokens["alpha"])).json()
    assert not picks["open"] and [s["id"] for s in picks["picks"]] == [ids["a1"]]


def test_a_dataset_without_hidden_tests_needs_no_picks(
    client: TestClient, tokens: dict[str, str], ids: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = _ctx(client).catalog
    spec = catalog.spec("tiny")
    public = spec.model_copy(
        update={"tasks": tuple(t.model_copy(update={"hidden": False}) for t in spec.tasks)}
    )
    monkeypatch.setattr(catalog, "spec", lambda name: public)
    r = _change(client, tokens["alpha"], pick=[ids["a1"]])
    assert r.status_code == 422 and "tiny has no hidden test" in _message(r)


def test_who_sees_whose_picks(
    client: TestClient, tokens: dict[str, str], ids: dict[str, int]
) -> None:
    assert _change(client, tokens["alpha"], pick=[ids["a1"]]).status_code == 200
    beta = client.get("/api/picks", headers=auth(tokens["beta"])).json()
    assert [(p["team"], p["picks"]) for p in beta] == [("beta", [])]
    assert client.get("/api/picks", params={"team": "alpha"},
                      headers=auth(tokens["beta"])).status_code == 403  # fmt: skip
    org = client.get("/api/picks", params={"team": "alpha"}, headers=auth(tokens["ops"]))
    assert _picked(org) == [ids["a1"]]
    assert client.get("/api/picks", params={"team": "nobody"},
                      headers=auth(tokens["ops"])).status_code == 404  # fmt: skip
    assert client.get("/api/picks", params={"dataset": "tinny"},
                      headers=auth(tokens["ops"])).status_code == 404  # fmt: skip
    by_org = _change(client, tokens["ops"], pick=[ids["b1"]], reason="asked by mail")
    assert by_org.status_code == 200 and by_org.json()[0]["team"] == "beta"
    mine = client.get("/api/submissions", headers=auth(tokens["beta"])).json()
    assert {s["id"]: s["picked"] for s in mine} == {ids["b1"]: True}
    page = f"/submissions/{ids['b1']}"  # its page says so to its team and organizers only
    for token, shown in ((tokens["beta"], True), (tokens["ops"], True), (tokens["alpha"], False)):
        html = client.get(page, headers=auth(token)).text
        assert ('data-testid="picked"' in html) is shown
    assert 'data-testid="picked"' not in client.get(page).text


def test_hidden_boards_rank_final_picks_or_the_best_public(
    client: TestClient, tokens: dict[str, str], ids: dict[str, int]
) -> None:
    ops = tokens["ops"]
    # No picks: each team's 2 best by public score count on test2 (alpha: a1, a2 -> 0.70;
    # gamma: g1 and g_t2, which has no public score but is among gamma's two). On test1
    # every submission counts (alpha: a_t1, 0.99).
    before = {"alpha": 0.845, "gamma": 0.795, "beta": 0.725}
    assert _scores(_board(client, ops)) == before
    public = {"alpha": 0.99, "beta": 0.85, "gamma": 0.6}
    assert _scores(_board(client)) == public
    assert _change(client, tokens["alpha"], pick=[ids["a3"]]).status_code == 200
    after = {"alpha": 0.97, "gamma": 0.795, "beta": 0.725}
    assert _scores(_board(client, ops)) == after, "organizers see the provisional board"
    assert _scores(_board(client)) == public, "the public boards are unchanged"
    _reveal(client)
    board = _board(client)
    assert board["tasks"] == ["test1", "test2"] and _scores(board) == after
    task2 = _board(client, task="test2")
    assert _scores(task2) == {"gamma": 0.99, "alpha": 0.95, "beta": 0.6}
    alpha = next(e for e in task2["entries"] if e["label"] == "alpha")
    assert alpha["submission_ids"] == [ids["a3"]]
    task1 = _board(client, task="test1")  # public tasks rank every submission
    assert _scores(task1)["alpha"] == 0.99


@pytest.fixture(params=["sqlite-file", pytest.param("postgres", marks=pytest.mark.postgres)])
def file_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A database that concurrent sessions really share (not the one in-memory connection)."""
    if request.param == "postgres":
        engine = make_engine(_pg_url(request.getfixturevalue("pg_cluster")))
    else:
        engine = make_engine(f"sqlite:///{tmp_path / 'picks.db'}")
        migrate(engine)
    yield engine
    engine.dispose()


def test_concurrent_picks_never_pass_the_limit(
    file_engine: Engine, tmp_path: Path, server_configs: Path, data_root: Path
) -> None:
    settings = make_settings(tmp_path, server_configs=server_configs, data_root=data_root,
                             database_url=str(file_engine.url))  # fmt: skip
    ctx = ServerContext.from_settings(settings)
    with Session(file_engine) as db:
        ctx.catalog.sync(db)
    ensure_team(file_engine, "alpha")
    ids = seed(file_engine, ctx, [Planned("alpha", {"test1": 0.5, "test2": 0.5})] * 6)
    with Session(file_engine) as db:
        team = db.exec(select(Team).where(Team.name == "alpha")).one()
    assert team.id is not None
    me = Principal(token_id=0, team_id=team.id, team="alpha", scope="participant")
    start = threading.Barrier(len(ids))

    def pick(sid: int) -> bool:
        start.wait()
        with Session(file_engine, expire_on_commit=False) as db:
            try:
                picks.change_picks(db=db, ctx=ctx, principal=me, change=PickChange(pick=[sid]))
            except TdcError:
                return False
            return True

    with ThreadPoolExecutor(len(ids)) as pool:
        won = list(pool.map(pick, ids))
    assert sum(won) == 2
    with Session(file_engine) as db:
        held = db.exec(select(Submission.id).where(col(Submission.picked).is_(True))).all()
    assert sorted(held) == sorted(i for i, w in zip(ids, won, strict=True) if w)
