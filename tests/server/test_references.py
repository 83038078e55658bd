"""Oracle reference rows: ``POST /api/organizer/references``, ``TdcClient.post_references``
and ``tdc-harness oracle --post`` against a live loopback server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from harness.cli.main import main
from harness.datasets import Dataset
from server.context import ServerContext
from server.models import Submission, SubmissionEvent, TaskScore
from server.settings import Settings
from submissions.client import ApiError, TdcClient
from submissions.schemas import EvalResult, ReferencePost
from tests.server.board_seed import Planned, seed
from tests.server.conftest import auth
from tests.server.helpers import make_result, start_live

QUERY_SHA = "a" * 64


def _oracle(task: str, acc: float) -> EvalResult:
    return make_result(sha256=QUERY_SHA, tasks=(task,), task=task, acc=acc)


def _post(client: TestClient, token: str, results: list[EvalResult], **kw: Any) -> Any:
    body = ReferencePost(results=results, **kw).model_dump(mode="json")
    return client.post("/api/organizer/references", json=body, headers=auth(token))


def _entries(client: TestClient, token: str | None = None) -> list[dict[str, Any]]:
    headers = auth(token) if token else {}
    r = client.get("/api/leaderboard/tiny", params={"fraction": 0.1}, headers=headers)
    assert r.status_code == 200, r.text
    (board,) = r.json()["boards"]
    return board["entries"]  # type: ignore[no-any-return]


def test_oracle_rows_are_recorded_once_and_shown_unranked(
    client: TestClient, tokens: dict[str, str], engine: Engine, settings: Settings
) -> None:
    seed(
        engine,
        ServerContext.from_settings(settings),
        [Planned("alpha", {"test1": 0.8, "test2": 0.7})],
    )
    results = [_oracle("test1", 0.95), _oracle("test2", 0.9)]
    first = _post(client, tokens["ops"], results)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["created"] == 2
    subs = body["submissions"]
    assert [(s["kind"], s["team"], s["state"], s["task"]) for s in subs] == [
        ("oracle", "oracle", "scored", "test1"),
        ("oracle", "oracle", "scored", "test2"),
    ]
    assert all(s["size"] == 30 and s["sha256"] == QUERY_SHA for s in subs)

    again = _post(client, tokens["ops"], results)  # idempotent: same rows, nothing new
    assert again.status_code == 200 and again.json()["created"] == 0
    assert [s["id"] for s in again.json()["submissions"]] == [s["id"] for s in subs]
    with Session(engine) as db:
        rows = db.exec(select(Submission).where(Submission.kind == "oracle")).all()
        assert len(rows) == 2
        ids = [r.id for r in rows]
        events = db.exec(
            select(SubmissionEvent).where(col(SubmissionEvent.submission_id).in_(ids))
        ).all()
        assert (
            sorted((e.action, e.from_state, e.to_state) for e in events)
            == [("reference", None, "scored")] * 2
        )
        assert (
            len(db.exec(select(TaskScore).where(col(TaskScore.submission_id).in_(ids))).all()) == 2
        )

    # Public board (test2 hidden): the oracle leads, unranked; alpha is ranked first.
    public = _entries(client)
    assert [(e["rank"], e["kind"], e["label"]) for e in public] == [
        (None, "oracle", "oracle"),
        (1, "submission", "alpha"),
    ]
    assert public[0]["tasks"]["test1"]["mean"] == pytest.approx(0.95)
    # Organizer view: both tasks' values on the one oracle entry.
    full = _entries(client, tokens["ops"])
    oracle = next(e for e in full if e["kind"] == "oracle")
    assert oracle["rank"] is None and oracle["score"] == pytest.approx(0.925)
    assert {t: c["mean"] for t, c in oracle["tasks"].items()} == pytest.approx(
        {"test1": 0.95, "test2": 0.9}
    )


def test_participants_get_403_and_bad_results_422(
    client: TestClient, tokens: dict[str, str], engine: Engine
) -> None:
    r = _post(client, tokens["alpha"], [_oracle("test1", 0.9)])
    assert r.status_code == 403
    wrong_task = make_result(sha256=QUERY_SHA, tasks=("test2",), task="test1")
    bad_fraction = make_result(sha256=QUERY_SHA, tasks=("test1",), task="test1", fraction=0.3)
    for bad in (wrong_task, bad_fraction):
        r = _post(client, tokens["ops"], [_oracle("test2", 0.9), bad])
        assert r.status_code == 422, r.text
    with Session(engine) as db:  # all or nothing: the valid first result was not kept
        assert db.exec(select(Submission).where(Submission.kind == "oracle")).all() == []


def test_client_post_references_with_a_team_and_name(
    client: TestClient, tokens: dict[str, str]
) -> None:
    # Starlette's TestClient is an httpx-compatible client (mypy sees another httpx).
    organizer = TdcClient("http://testserver", tokens["ops"], http=client)  # type: ignore[arg-type]
    recorded = organizer.post_references([_oracle("test1", 0.9)], team="refs", name="oracle LP")
    assert recorded.created == 1
    (sub,) = recorded.submissions
    assert (sub.kind, sub.team, sub.name) == ("oracle", "refs", "oracle LP")
    participant = TdcClient("http://testserver", tokens["alpha"], http=client)  # type: ignore[arg-type]
    with pytest.raises(ApiError) as err:
        participant.post_references([_oracle("test1", 0.9)])
    assert err.value.status == 403
    labels = [(e["rank"], e["label"]) for e in _entries(client)]
    assert labels == [(None, "oracle LP")]


def test_cli_oracle_post_to_a_live_server(
    tiny_dataset: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = start_live(tmp_path, tiny_dataset, teams={"ops": "organizer"})
    try:
        monkeypatch.delenv("TDC_ORGANIZER_TOKEN", raising=False)
        monkeypatch.setenv("TDC_DATA_ROOT", str(tiny_dataset.dir.root.parent))
        monkeypatch.setenv("TDC_CONFIGS_DIR", str(tmp_path / "configs"))
        argv = ["oracle", "-d", "tiny", "--task", "test1", "--seeds", "0", "--post"]
        assert main([*argv, "--server", live.url]) == 2  # no token: refused before training
        for _ in range(2):  # the second post adds nothing
            assert main([*argv, "--server", live.url, "--token", live.tokens["ops"]]) == 0
        with TdcClient(live.url, None) as api:
            (board, *_) = api.leaderboard("tiny")["boards"]
        (entry,) = board["entries"]
        assert (entry["rank"], entry["kind"], entry["team"]) == (None, "oracle", "oracle")
        assert entry["subset_size"] == tiny_dataset.split_size("val1")
        assert entry["tasks"]["test1"]["mean"] > 0.8  # chance is 1/3
    finally:
        live.server.stop()


def test_demo_loop_oracle_step_posts_each_fraction_once(
    demo_dataset: Dataset, tmp_path: Path
) -> None:
    from types import SimpleNamespace

    from harness.cli.demo import DemoRun
    from harness.cli.demo_loop import FRACTIONS, oracle_step
    from harness.settings import HarnessSettings

    live = start_live(tmp_path, demo_dataset, teams={"ops": "organizer"})
    try:
        settings = HarnessSettings(data_root=demo_dataset.dir.root.parent)
        run = DemoRun(settings=settings, dataset=demo_dataset)
        run.notes["server"] = SimpleNamespace(url=live.url, organizer_token=live.tokens["ops"])
        oracle_step(run)
        assert run.notes["oracle"] == len(FRACTIONS) * len(demo_dataset.spec.tasks)
        oracle_step(run)  # a rerun of the demo adds nothing
        assert run.notes["oracle"] == 0
        with TdcClient(live.url, None) as api:
            boards = api.leaderboard("demo")["boards"]
        on = {b["fraction"]: [e["kind"] for e in b["entries"]] for b in boards}
        assert {f: on[f] for f in FRACTIONS} == {f: ["oracle"] for f in FRACTIONS}
    finally:
        live.server.stop()


def test_a_baseline_reference_needs_its_selection_record(
    client: TestClient, tokens: dict[str, str]
) -> None:
    r = _post(client, tokens["ops"], [_oracle("test1", 0.9)], kind="baseline", team="baselines")
    assert r.status_code == 422 and "selection record" in r.text


def test_demo_loop_references_step_posts_seed_averaged_rows_once(
    demo_dataset: Dataset, tmp_path: Path
) -> None:
    from types import SimpleNamespace

    from harness.cli.demo import DemoRun
    from harness.cli.demo_loop import references_step
    from harness.settings import HarnessSettings

    live = start_live(tmp_path, demo_dataset, teams={"ops": "organizer"})
    try:
        settings = HarnessSettings(data_root=demo_dataset.dir.root.parent, runs_dir=tmp_path)
        run = DemoRun(settings=settings, dataset=demo_dataset)
        run.notes["server"] = SimpleNamespace(url=live.url, organizer_token=live.tokens["ops"])
        references_step(run)
        assert run.notes["references"] > 0
        references_step(run)  # a rerun trains nothing new and adds no row
        assert run.notes["references"] == 0
        with TdcClient(live.url, None) as api:
            (board,) = api.leaderboard("demo", fraction=0.1)["boards"]
        entries = {e["label"]: e for e in board["entries"]}
        assert {e["kind"] for e in entries.values()} == {"baseline"}
        assert {"clip_score", "clip_score · captions=label", "tsds", "match_dist", "zcore"} <= set(
            entries
        )
        assert "match_label (= random_filter on test1, test4)" in entries  # all 10 classes
        cell = entries["random_filter"]["tasks"]["test1"]
        assert cell["n_seeds"] == 3 and cell["std"] > 0
        assert entries["clip_score"]["tasks"]["test1"]["n_seeds"] == 1  # one subset, one row
    finally:
        live.server.stop()
