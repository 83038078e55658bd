"""Uploads: validation, content-addressed storage, idempotency, the byte cap, quotas,
tokens. Every test runs on in-memory SQLite and on PostgreSQL."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select

from harness.datasets import Dataset
from server.models import Submission, SubmissionEvent
from server.settings import Settings
from server.storage import Storage
from tests.server.conftest import auth
from tests.server.helpers import write_subset

POOL = 300


@pytest.fixture
def pool(tiny_dataset: Dataset) -> np.ndarray:
    return tiny_dataset.uids("train")


@pytest.fixture
def subset(tmp_path: Path, pool: np.ndarray) -> Iterator[Any]:
    def make(start: int = 0, n: int = 30, name: str = "s.npy") -> Path:
        return write_subset(tmp_path / name, pool[start : start + n])

    yield make


def upload(
    client: TestClient,
    token: str,
    path: Path,
    *,
    headers: dict[str, str] | None = None,
    **fields: Any,
) -> Any:
    data = {"dataset": "tiny", "fraction": "0.1", **{k: str(v) for k, v in fields.items()}}
    with path.open("rb") as f:
        return client.post(
            "/api/submissions",
            data=data,
            files={"file": (path.name, f, "application/octet-stream")},
            headers={**auth(token), **(headers or {})},
        )


def stored_files(settings: Settings) -> list[Path]:
    root = Storage(settings.storage_dir)
    return sorted(
        p for p in root.root.rglob("*") if p.is_file() and root.cache_dir not in p.parents
    )


def rows(engine: Engine) -> list[Submission]:
    with Session(engine) as db:
        return list(db.exec(select(Submission)).all())


def test_valid_upload_is_stored_by_content_and_queued(
    client: TestClient, tokens: dict[str, str], subset: Any, settings: Settings, engine: Engine
) -> None:
    path = subset()
    r = upload(client, tokens["alpha"], path, name="my method")
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["state"], body["team"], body["size"], body["recipe"]) == (
        "queued", "alpha", 30, "linear_probe",
    )  # fmt: skip
    assert body["url"] == f"http://testserver/submissions/{body['id']}"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    files = stored_files(settings)
    assert files == [Storage(settings.storage_dir).path_for(digest)]
    assert files[0].read_bytes() == path.read_bytes()
    with Session(engine) as db:
        events = db.exec(select(SubmissionEvent)).all()
        assert [(e.action, e.to_state) for e in events] == [("submit", "queued")]


def test_uploads_are_idempotent(
    client: TestClient, tokens: dict[str, str], subset: Any, engine: Engine
) -> None:
    a = upload(client, tokens["alpha"], subset())
    again = upload(client, tokens["alpha"], subset())  # same subset, same meta
    assert (a.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == a.json()["id"]
    other_task = upload(client, tokens["alpha"], subset(), task="test1")
    assert other_task.status_code == 201  # a different submission
    key = {"Idempotency-Key": "k-1"}
    first = upload(client, tokens["alpha"], subset(30), headers=key)
    replay = upload(client, tokens["alpha"], subset(30), headers=key)
    assert (first.status_code, replay.status_code) == (201, 200)
    assert replay.json()["id"] == first.json()["id"]
    reused = upload(client, tokens["alpha"], subset(60), headers=key)
    assert reused.status_code == 409
    assert len(rows(engine)) == 3
    other_team = upload(client, tokens["beta"], subset())
    assert other_team.status_code == 201 and other_team.json()["team"] == "beta"


def test_cancelled_subset_can_be_sent_again(
    client: TestClient, tokens: dict[str, str], subset: Any
) -> None:
    first = upload(client, tokens["alpha"], subset()).json()["id"]
    r = client.delete(f"/api/submissions/{first}", headers=auth(tokens["alpha"]))
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    second = upload(client, tokens["alpha"], subset())
    assert second.status_code == 201 and second.json()["id"] != first


@pytest.mark.parametrize(
    ("uids", "codes"),
    [
        (lambda pool: np.concatenate([pool[:5], ["nope-1", "nope-2"]]), {"unknown_uid"}),
        (lambda pool: pool[:31], {"over_budget"}),
        (lambda pool: np.concatenate([pool[:5], pool[:2]]), {"duplicate_uid"}),
        (lambda pool: np.array(["q1-00000", "t1-00003", *pool[:3]]), {"query_leak", "test_leak"}),
    ],
    ids=["unknown", "over-budget", "duplicates", "leakage"],
)
def test_invalid_subsets_get_422_and_leave_nothing(
    client: TestClient,
    tokens: dict[str, str],
    tmp_path: Path,
    pool: np.ndarray,
    settings: Settings,
    engine: Engine,
    uids: Any,
    codes: set[str],
) -> None:
    path = write_subset(tmp_path / "bad.npy", uids(pool))
    r = upload(client, tokens["alpha"], path)
    assert r.status_code == 422, r.text
    got = {p["code"] for p in r.json()["problems"]}
    assert codes <= got, got
    assert stored_files(settings) == [] and rows(engine) == []


def test_unreadable_file_and_bad_forms(
    client: TestClient, tokens: dict[str, str], tmp_path: Path, subset: Any
) -> None:
    junk = tmp_path / "junk.npy"
    junk.write_bytes(b"\x80\x04K\x01.")  # a pickle
    r = upload(client, tokens["alpha"], junk)
    assert r.status_code in (400, 422) and r.json()["problems"]
    h = auth(tokens["alpha"])
    cases = [
        ({"data": {"dataset": "tiny", "fraction": "0.1"}}, 422),  # no file part
        ({"data": {"dataset": "tiny", "fraction": "0.3"}, "files": _file(subset())}, 422),
        ({"data": {"dataset": "tiny", "fraction": "x"}, "files": _file(subset())}, 422),
        ({"data": {"dataset": "nope", "fraction": "0.1"}, "files": _file(subset())}, 404),
        (
            {
                "data": {"dataset": "tiny", "fraction": "0.1", "task": "t9"},
                "files": _file(subset()),
            },
            404,
        ),
        ({"data": {"dataset": "tiny", "fraction": "0.1", "x": "1"}, "files": _file(subset())}, 422),
        ({"json": {"dataset": "tiny"}}, 415),
    ]
    for kwargs, status in cases:
        if "data" in kwargs and "files" not in kwargs:
            kwargs["files"] = {"other": ("x", b"1")}
        r = client.post("/api/submissions", headers=h, **kwargs)  # type: ignore[arg-type]
        assert r.status_code == status, (kwargs.get("data"), r.text)
        assert r.json()["problems"][0]["message"]


def _file(path: Path) -> dict[str, Any]:
    return {"file": (path.name, path.read_bytes(), "application/octet-stream")}


def test_participants_cannot_upload_baselines_organizers_can(
    client: TestClient, tokens: dict[str, str], subset: Any
) -> None:
    r = upload(client, tokens["alpha"], subset(), kind="baseline")
    assert r.status_code == 403
    r = upload(client, tokens["alpha"], subset(), team="beta")
    assert r.status_code == 403
    r = upload(client, tokens["ops"], subset(), kind="baseline", team="baselines", name="random")
    assert r.status_code == 201 and r.json()["team"] == "baselines"
    assert r.json()["kind"] == "baseline"


def test_no_or_bad_token_is_401_before_reading_the_body(
    client: TestClient, subset: Any, settings: Settings
) -> None:
    with subset().open("rb") as f:
        r = client.post("/api/submissions", data={"dataset": "tiny", "fraction": "0.1"},
                        files={"file": ("s.npy", f)})  # fmt: skip
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    r = upload(client, "tdc_not-a-token", subset())
    assert r.status_code == 401
    assert stored_files(settings) == []


def test_one_idempotency_key_raced_by_a_different_upload_is_409_and_stores_nothing(
    app: Any, client: TestClient, tokens: dict[str, str], subset: Any, settings: Settings,
    engine: Engine,
) -> None:  # fmt: skip
    """Upload B (same key, other subset) completes while upload A is being validated:
    A must get 409 (not 200 with B's row) and leave no stored file that no row references."""
    ctx, key = app.state.ctx, {"Idempotency-Key": "k-race"}
    validate, raced, started = ctx.validator, [], []

    def racing(path: Path, **kw: Any) -> Any:
        if not started:  # the first call is A's: B runs to completion meanwhile
            started.append(True)
            b = subset(60, name="b.npy")
            with ThreadPoolExecutor(1) as other:
                raced.append(other.submit(upload, TestClient(app), tokens["alpha"], b,
                                          headers=key).result())  # fmt: skip
        return validate(path, **kw)

    ctx.validator = racing
    a = upload(client, tokens["alpha"], subset(0, name="a.npy"), headers=key)
    assert raced[0].status_code == 201
    assert a.status_code == 409, a.text
    assert "Idempotency-Key" in a.text
    assert [s.id for s in rows(engine)] == [raced[0].json()["id"]]
    b_digest = hashlib.sha256(subset(60, name="b.npy").read_bytes()).hexdigest()
    stored = [p.stem for p in stored_files(settings) if p.suffix == ".npy"]
    assert stored == [b_digest]  # B's file only: A's was never stored
