"""``TdcClient.submit`` retries: a 503 (the server's database or storage briefly down) is
sent again after its Retry-After under the same Idempotency-Key; other refusals are not."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from submissions import client as client_module
from submissions.client import ApiError
from tests.submissions.helpers import client_for

ROW = {"id": 7, "team": "alpha", "dataset": "demo", "fraction": 0.1, "task": None,
       "recipe": "linear_probe", "sha256": "a" * 64, "size": 3, "state": "queued",
       "kind": "submission", "name": None, "error": None,
       "created_at": "2026-12-06T00:00:00Z", "updated_at": "2026-12-06T00:00:00Z",
       "url": "http://tdc.test/submissions/7"}  # fmt: skip


def answers(*statuses: int) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        status = statuses[len(seen) - 1]
        if status == 201:
            return httpx.Response(201, json=ROW)
        problem = {"code": "unavailable", "message": "the database is unavailable right now"}
        return httpx.Response(status, json={"problems": [problem]}, headers={"Retry-After": "2"})

    return httpx.MockTransport(handler), seen


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(client_module.time, "sleep", slept.append)
    return slept


def test_a_503_is_sent_again_after_its_retry_after(tmp_path: Path, waits: list[float]) -> None:
    path = tmp_path / "s.npy"
    path.write_bytes(b"x" * 100)
    transport, seen = answers(503, 201)
    with client_for(transport) as client:
        row = client.submit(path, dataset="demo", fraction=0.1)
    assert row.id == 7 and waits == [2.0] and len(seen) == 2
    keys = {r.headers["idempotency-key"] for r in seen}
    assert len(keys) == 1  # the same upload: counted once however often it is sent


@pytest.mark.parametrize("status", [422, 500])
def test_other_refusals_are_not_retried(tmp_path: Path, waits: list[float], status: int) -> None:
    path = tmp_path / "s.npy"
    path.write_bytes(b"x" * 100)
    transport, seen = answers(status, 201)
    with client_for(transport) as client, pytest.raises(ApiError) as err:
        client.submit(path, dataset="demo", fraction=0.1)
    assert err.value.status == status and len(seen) == 1 and waits == []


def test_a_server_that_stays_down_is_reported(tmp_path: Path, waits: list[float]) -> None:
    path = tmp_path / "s.npy"
    path.write_bytes(b"x" * 100)
    transport, seen = answers(503, 503, 503)
    with client_for(transport) as client, pytest.raises(ApiError) as err:
        client.submit(path, dataset="demo", fraction=0.1)
    assert err.value.status == 503 and len(seen) == 3 and waits == [2.0, 2.0]
