"""``GET /api/site.zip``: who gets which view, and the cache that follows the database."""

from __future__ import annotations

import io
import zipfile

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.server.board_seed import build_world, moderate
from tests.server.conftest import auth
from tests.server.helpers import count_calls


def names(body: bytes) -> set[str]:
    with zipfile.ZipFile(io.BytesIO(body)) as zf:
        assert zf.testzip() is None
        return set(zf.namelist())


def test_views_by_token(
    app: FastAPI, engine: Engine, client: TestClient, tokens: dict[str, str]
) -> None:
    ids = build_world(engine, app.state.ctx).ids
    hidden = f"submission-{ids['epsilon']}.html"
    public = client.get("/api/site.zip")
    assert public.status_code == 200 and public.headers["content-type"] == "application/zip"
    files = names(public.content)
    assert {"index.html", "static/style.css", f"submission-{ids['alpha_all']}.html"} <= files
    assert hidden not in files
    assert all(not n.startswith("/") and ".." not in n.split("/") for n in files)
    # a token does not change the public view (a bad one is not even looked at)
    assert names(client.get("/api/site.zip", headers=auth(tokens["ops"])).content) == files
    assert client.get("/api/site.zip", headers=auth("tdc_bogus")).status_code == 200

    organizer = client.get("/api/site.zip?organizer=1", headers=auth(tokens["ops"]))
    assert organizer.status_code == 200 and hidden in names(organizer.content)
    assert "no-store" in organizer.headers["cache-control"]
    assert client.get("/api/site.zip?organizer=1").status_code == 401
    assert client.get("/api/site.zip?organizer=1", headers=auth("tdc_bogus")).status_code == 401
    denied = client.get("/api/site.zip?organizer=1", headers=auth(tokens["alpha"]))
    assert denied.status_code == 403 and denied.json()["problems"][0]["code"] == "forbidden"


def test_archive_is_cached_until_the_database_changes(
    app: FastAPI,
    engine: Engine,
    client: TestClient,
    tokens: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ids = build_world(engine, app.state.ctx).ids
    zipped = count_calls(monkeypatch, "server.routes.site.site_zip")
    first = client.get("/api/site.zip").content
    assert client.get("/api/site.zip").content == first
    assert len(zipped) == 1, "an unchanged database is served from the cache"
    moderate(engine, app.state.ctx, ids["alpha_all"], "hide")
    after = names(client.get("/api/site.zip").content)
    assert f"submission-{ids['alpha_all']}.html" in names(first)
    assert f"submission-{ids['alpha_all']}.html" not in after
