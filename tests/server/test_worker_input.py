"""What the worker API refuses before anything is stored: metric values that are not finite
or outside their declared range, and free text past its bound (the raw JSON a hostile or
buggy worker could send, not what ``TdcClient`` would build)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select

from server.models import Evaluation, Result, Submission, SubmissionEvent, TaskScore
from submissions.client import TdcClient
from submissions.schemas import State
from tests.server.conftest import auth
from tests.server.helpers import insert_submission, make_result

API = "/api/organizer/submissions"


def _claimed(client: TestClient, engine: Engine, token: str) -> tuple[int, str, str]:
    """A submission of alpha leased by the organizer: (id, lease token, subset sha256)."""
    sid = insert_submission(engine, team="alpha")
    [job] = TdcClient("", token, http=client).claim("w1")
    with Session(engine) as db:
        sub = db.get(Submission, sid)
        assert sub is not None
        return sid, job.lease_token, sub.sha256


def _post_raw(client: TestClient, path: str, body: dict[str, Any], token: str) -> Any:
    """POST ``body`` as JSON, NaN and Infinity written as the JavaScript literals."""
    headers = {**auth(token), "Content-Type": "application/json"}
    return client.post(path, content=json.dumps(body, allow_nan=True), headers=headers)


def _post_result(client: TestClient, sid: int, lease: str, result: Any, token: str) -> Any:
    return _post_raw(client, f"{API}/{sid}/result", {"lease_token": lease, "result": result}, token)


def _values(result: dict[str, Any], where: str) -> dict[str, float]:
    """One group of values of the first task of a result as JSON (mean, std, seeds, per_class)."""
    task = result["tasks"][0]
    if where in ("seeds", "per_class"):
        return task["seeds"][0]["metrics" if where == "seeds" else "per_class"]
    return task[where]


def _stored(engine: Engine, sid: int) -> tuple[str, list[str], int]:
    """(state, event actions, number of score rows) of a submission."""
    with Session(engine) as db:
        sub = db.get(Submission, sid)
        assert sub is not None
        events = db.exec(select(SubmissionEvent.action).where(SubmissionEvent.submission_id == sid))
        scores = [
            *db.exec(select(Result.id).where(Result.submission_id == sid)),
            *db.exec(select(TaskScore.id).where(TaskScore.submission_id == sid)),
            *db.exec(select(Evaluation.submission_id).where(Evaluation.submission_id == sid)),
        ]
        return sub.state, list(events), len(scores)


BAD_VALUES = [
    ("seeds", "accuracy", math.nan, "not a finite number"),
    ("mean", "accuracy", math.inf, "not a finite number"),
    ("mean", "balanced_accuracy", -math.inf, "not a finite number"),
    ("seeds", "accuracy", 1e9, "outside [0, 1]"),
    ("mean", "accuracy", -0.5, "outside [0, 1]"),
    ("mean", "mse", -1.0, "outside [0, inf)"),
    ("std", "accuracy", -0.1, "outside [0, 1]"),
    ("per_class", "3", 1.5, "outside [0, 1]"),
]


@pytest.mark.parametrize(("where", "metric", "value", "said"), BAD_VALUES)
def test_results_with_bad_metric_values_are_refused(
    client: TestClient,
    engine: Engine,
    tokens: dict[str, str],
    where: str,
    metric: str,
    value: float,
    said: str,
) -> None:
    sid, lease, sha = _claimed(client, engine, tokens["ops"])
    body = make_result(sha256=sha).model_dump(mode="json")
    _values(body, where)[metric] = value
    r = _post_result(client, sid, lease, body, tokens["ops"])
    assert r.status_code == 422, r.text
    [problem] = r.json()["problems"]
    assert metric in problem["message"] and said in problem["message"]
    assert "test1" in problem["message"]  # says where the value is
    assert _stored(engine, sid) == (State.running, ["submit", "claim"], 0)


def test_a_valid_result_is_still_accepted(
    client: TestClient, engine: Engine, tokens: dict[str, str]
) -> None:
    sid, lease, sha = _claimed(client, engine, tokens["ops"])
    body = make_result(sha256=sha, acc=1.0).model_dump(mode="json")
    body["tasks"][0]["mean"]["mse"] = 0.0
    r = _post_result(client, sid, lease, body, tokens["ops"])
    assert r.status_code == 200, r.text
    assert _stored(engine, sid)[0] == State.scored


MEGABYTE = "x" * 1_000_000


@pytest.mark.parametrize(
    ("route", "field"),
    [
        ("heartbeat", "job_id"),
        ("heartbeat", "job_state"),
        ("heartbeat", "lease_token"),
        ("fail", "message"),
    ],
)
def test_long_free_text_from_a_worker_is_refused(
    client: TestClient, engine: Engine, tokens: dict[str, str], route: str, field: str
) -> None:
    sid, lease, _ = _claimed(client, engine, tokens["ops"])
    body: dict[str, Any] = {"lease_token": lease}
    if route == "fail":
        body |= {"kind": "infra", "message": "m"}
    body[field] = MEGABYTE
    r = _post_raw(client, f"{API}/{sid}/{route}", body, tokens["ops"])
    assert r.status_code == 422, r.text[:300]
    assert field in r.json()["problems"][0]["message"]
    assert len(r.content) < 10_000  # the answer does not echo the megabyte
    with Session(engine) as db:
        sub = db.get(Submission, sid)
        assert sub is not None and sub.executor_job_id is None
    assert _stored(engine, sid) == (State.running, ["submit", "claim"], 0)


def test_long_worker_name_is_refused_and_nothing_is_claimed(
    client: TestClient, engine: Engine, tokens: dict[str, str]
) -> None:
    sid = insert_submission(engine, team="alpha")
    r = _post_raw(client, "/api/organizer/claim", {"worker": MEGABYTE}, tokens["ops"])
    assert r.status_code == 422 and "worker" in r.json()["problems"][0]["message"]
    assert _stored(engine, sid) == (State.queued, ["submit"], 0)


def test_long_manifest_text_is_refused(
    client: TestClient, engine: Engine, tokens: dict[str, str]
) -> None:
    sid, lease, sha = _claimed(client, engine, tokens["ops"])
    body = make_result(sha256=sha).model_dump(mode="json")
    body["manifest"]["job_id"] = MEGABYTE
    r = _post_result(client, sid, lease, body, tokens["ops"])
    assert r.status_code == 422 and "job_id" in r.json()["problems"][0]["message"]
    assert _stored(engine, sid) == (State.running, ["submit", "claim"], 0)


def test_references_with_bad_metric_values_are_refused(
    client: TestClient, engine: Engine, tokens: dict[str, str]
) -> None:
    body = make_result(sha256="0" * 64, tasks=("test1",), task="test1").model_dump(mode="json")
    body["tasks"][0]["mean"]["accuracy"] = math.nan
    r = _post_raw(client, "/api/organizer/references", {"results": [body]}, tokens["ops"])
    assert r.status_code == 422, r.text
    assert "accuracy is nan, not a finite number" in r.json()["problems"][0]["message"]
    with Session(engine) as db:
        assert db.exec(select(Submission)).all() == []


@pytest.mark.parametrize("team", ["a/b", "line\r\nbreak", ".."])
def test_a_reference_team_name_is_validated(
    client: TestClient, engine: Engine, tokens: dict[str, str], team: str
) -> None:
    body = make_result(sha256="0" * 64, tasks=("test1",), task="test1").model_dump(mode="json")
    r = _post_raw(
        client, "/api/organizer/references", {"team": team, "results": [body]}, tokens["ops"]
    )
    assert r.status_code == 422, r.text
    assert "invalid team name" in r.json()["problems"][0]["message"]
    with Session(engine) as db:
        assert db.exec(select(Submission)).all() == []
