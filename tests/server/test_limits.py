"""The byte cap (413, nothing left behind), quotas (429 + Retry-After; invalid uploads and
platform failures are free) and tokens (hashed, revocable, expiring)."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text, update
from sqlmodel import Session, select

from harness.datasets import Dataset
from server.app import create_app
from server.models import ApiToken, Submission, utcnow
from server.services.auth import create_team, issue_token, revoke_token
from server.settings import Settings
from submissions.client import TdcClient
from tests.server.conftest import auth, make_settings
from tests.server.helpers import write_subset
from tests.server.test_uploads import rows, stored_files, upload

CAP = 4000


@pytest.fixture
def capped(
    tmp_path: Path, server_configs: Path, data_root: Path, engine: Engine, db_url: str
) -> Iterator[tuple[TestClient, Settings]]:
    settings = make_settings(
        tmp_path, server_configs=server_configs, data_root=data_root, database_url=db_url,
        max_upload_bytes=CAP,
    )  # fmt: skip
    with TestClient(create_app(settings, engine=engine)) as c:
        yield c, settings


def _big_file(tmp_path: Path, pool: np.ndarray) -> Path:
    path = write_subset(tmp_path / "big.npy", pool[:150])  # 150 x 7 chars x 4 bytes > CAP
    assert path.stat().st_size > CAP
    return path


def _multipart(path: Path, boundary: str = "tdcboundary") -> Iterator[bytes]:
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="dataset"\r\n\r\ntiny\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="fraction"\r\n\r\n0.5\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="b.npy"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    data = path.read_bytes()
    for i in range(0, len(data), 512):
        yield data[i : i + 512]
    yield f"\r\n--{boundary}--\r\n".encode()


def test_over_the_cap_is_413_and_leaves_nothing(
    capped: tuple[TestClient, Settings],
    tokens: dict[str, str],
    tmp_path: Path,
    tiny_dataset: Dataset,
    engine: Engine,
) -> None:
    client, settings = capped
    big = _big_file(tmp_path, tiny_dataset.uids("train"))
    r = upload(client, tokens["alpha"], big, fraction=0.5)  # Content-Length: refused at once
    assert r.status_code == 413 and r.json()["problems"][0]["code"] == "payload_too_large"
    headers = {**auth(tokens["alpha"]), "Content-Type": "multipart/form-data; boundary=tdcboundary"}
    r = client.post("/api/submissions", content=_multipart(big), headers=headers)  # chunked
    assert r.status_code == 413, r.text
    assert stored_files(settings) == [] and rows(engine) == []
    small = write_subset(tmp_path / "small.npy", tiny_dataset.uids("train")[:20])
    r = client.post("/api/submissions", content=_multipart(small), headers=headers)
    assert r.status_code == 201, r.text  # the same path under the cap works


def test_quota_429_with_retry_after(
    client: TestClient, tokens: dict[str, str], tmp_path: Path, tiny_dataset: Dataset,
    engine: Engine,
) -> None:  # fmt: skip
    pool = tiny_dataset.uids("train")
    bad = write_subset(tmp_path / "bad.npy", np.array(["nope", *pool[:3]]))
    assert upload(client, tokens["alpha"], bad).status_code == 422  # free
    paths = [write_subset(tmp_path / f"s{i}.npy", pool[i * 10 : i * 10 + 10]) for i in range(7)]
    for p in paths[:5]:
        assert upload(client, tokens["alpha"], p).status_code == 201
    r = upload(client, tokens["alpha"], paths[5])
    assert r.status_code == 429
    retry = int(r.headers["retry-after"])
    assert 86000 < retry <= 86401
    assert "quota" in r.json()["problems"][0]["message"]
    assert upload(client, tokens["alpha"], paths[0]).status_code == 200  # a replay is free
    assert upload(client, tokens["beta"], paths[5]).status_code == 201  # per team
    with Session(engine) as db:  # a platform failure is refunded
        db.exec(  # type: ignore[call-overload]
            update(Submission)
            .where(Submission.id == 1)
            .values(state="failed_infra", counts_for_quota=False)
        )
        db.commit()
    assert upload(client, tokens["alpha"], paths[5]).status_code == 201
    with Session(engine) as db:  # the window rolls: an old upload no longer counts
        db.exec(  # type: ignore[call-overload]
            update(Submission)
            .where(Submission.id == 2)
            .values(created_at=utcnow() - timedelta(hours=24, seconds=1))
        )
        db.commit()
    assert upload(client, tokens["alpha"], paths[6]).status_code == 201


def test_tokens_are_stored_hashed_and_can_be_revoked(client: TestClient, engine: Engine) -> None:
    with Session(engine) as db:
        team = create_team(db=db, name="gamma")
        live, _ = issue_token(db=db, team=team, scope="participant")
        old, _ = issue_token(db=db, team=team, scope="participant", expires_days=1)
        revoked, _ = issue_token(db=db, team=team, scope="organizer")
        revoke_token(db=db, token_or_prefix=revoked[:12])
        db.exec(update(ApiToken).where(ApiToken.token_hash == _h(old)).values(  # type: ignore[call-overload]
            expires_at=utcnow() - timedelta(seconds=1)))  # fmt: skip
        db.commit()
        dump = "\n".join(
            str(tuple(r))
            for t in ("apitoken", "team")
            for r in db.exec(text(f"SELECT * FROM {t}"))  # type: ignore[call-overload]
        )
        for token in (live, old, revoked):
            assert token not in dump and token[4:] not in dump  # never stored in clear
            assert _h(token) in dump
    assert client.get("/api/submissions", headers=auth(live)).status_code == 200
    for token, why in ((old, "expired"), (revoked, "revoked")):
        r = client.get("/api/submissions", headers=auth(token))
        assert r.status_code == 401 and why in r.json()["problems"][0]["message"]
    with Session(engine) as db:
        row = db.exec(select(ApiToken).where(ApiToken.token_hash == _h(live))).one()
        assert row.last_used_at is not None


def _h(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def test_pool_uids_download_is_cacheable(
    client: TestClient, tiny_dataset: Dataset, tmp_path: Path
) -> None:
    api = TdcClient("", None, http=client)
    dest = tmp_path / "pool.npy"
    etag = api.pool_uids("tiny", dest)
    assert etag and np.array_equal(np.load(dest, allow_pickle=False), tiny_dataset.uids("train"))
    assert api.pool_uids("tiny", dest, etag=etag) is None  # 304: not downloaded again
    r = client.get("/api/datasets/tiny/pool-uids", headers={"If-None-Match": etag})
    assert r.status_code == 304 and r.content == b""


def test_dataset_info(client: TestClient) -> None:
    body: Any = client.get("/api/datasets/tiny").json()
    assert body["pool_size"] == 300 and body["prepared"] is True
    assert [(f["fraction"], f["budget"]) for f in body["fractions"]] == [
        (0.1, 30), (0.25, 75), (0.5, 150),
    ]  # fmt: skip
    assert [(t["name"], t["hidden"], t["revealed"]) for t in body["tasks"]] == [
        ("test1", False, True), ("test2", True, False),
    ]  # fmt: skip
    assert client.get("/api/datasets/nope").status_code == 404


def test_only_hosted_datasets_are_listed(
    tmp_path: Path, server_configs: Path, data_root: Path, engine: Engine, db_url: str
) -> None:
    """A configured dataset without a prepared pool here is no live board and no API entry."""
    configs = tmp_path / "configs"
    shutil.copytree(server_configs, configs)
    raw = yaml.safe_load((configs / "datasets.yaml").read_text())
    raw["datasets"]["ghost"] = {**raw["datasets"]["tiny"], "path": "ghost"}
    (configs / "datasets.yaml").write_text(yaml.safe_dump(raw))
    settings = make_settings(
        tmp_path, server_configs=configs, data_root=data_root, database_url=db_url
    )
    with TestClient(create_app(settings, engine=engine)) as client:
        assert [d["name"] for d in client.get("/api/datasets").json()] == ["tiny"]
        assert client.get("/api/datasets/ghost").json()["prepared"] is False
        home = client.get("/").text
        assert 'id="ds-tiny"' in home and 'id="ds-ghost"' not in home
        assert "Configured, not hosted here: ghost." in home


def test_oversized_headers_and_query_strings_are_refused(client: TestClient) -> None:
    """Finding 1: a megabyte of Accept header (or of query) is refused at the door, with the
    problem list and the security headers, instead of reaching a route or a cache key."""
    big = client.get("/datasets/tiny?fraction=0.1", headers={"Accept": "x" * (1 << 20)})
    assert big.status_code == 431
    assert big.json()["problems"][0]["code"] == "request_header_fields_too_large"
    assert big.headers["x-content-type-options"] == "nosniff"
    long_query = client.get(f"/api/leaderboard/tiny?fraction=0.1&pad={'y' * 5000}")
    assert long_query.status_code == 414 and "query string" in long_query.text
    within = client.get("/datasets/tiny?fraction=0.1", headers={"Accept": "x" * 8000})
    assert within.status_code == 200


def test_distinct_urls_and_headers_share_one_cached_board(client: TestClient) -> None:
    """Random query parameters and large headers never become cache keys: 300 such requests
    leave as many cached bodies as one."""
    client.get("/datasets/tiny?fraction=0.1")
    built = client.app.state.built  # type: ignore[attr-defined]
    before = (len(built._values), built._bytes)
    for i in range(300):
        r = client.get(f"/datasets/tiny?fraction=0.1&utm_source={i}",
                       headers={"Accept": f"text/html;q=0.{i % 10}," + "z" * 12000})  # fmt: skip
        assert r.status_code == 200
    assert (len(built._values), built._bytes) == before
