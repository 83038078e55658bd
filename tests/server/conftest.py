"""Server fixtures: the tiny dataset as the server's only prepared dataset, a database per
test (in-memory SQLite, and a throwaway PostgreSQL cluster), an app, a client and tokens.

    def test_x(client, tokens):                       # runs on sqlite and postgres
        client.get("/api/submissions", headers=auth(tokens["alpha"]))

PostgreSQL: in CI (CI=true) a missing server fails the run; elsewhere those tests skip.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session

from harness.datasets import Dataset
from server.app import create_app
from server.db import create_schema, make_engine, migrate
from server.services.auth import create_team, issue_token
from server.settings import Settings
from submissions.client import TdcClient
from tests.infra.ci import unavailable
from tests.infra.postgres import PostgresCluster, PostgresUnavailable
from tests.server.helpers import write_configs


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="session")
def server_configs(tiny_dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A configs dir whose datasets.yaml holds the tiny spec; recipes from the repository."""
    return write_configs(tiny_dataset, tmp_path_factory.mktemp("configs"))


@pytest.fixture(scope="session")
def data_root(tiny_dataset: Dataset) -> Path:
    return tiny_dataset.dir.root.parent


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster | None]:
    try:
        cluster = PostgresCluster.start()
    except PostgresUnavailable as err:
        yield None
        _ = err
        return
    try:
        url = cluster.create_database("tdc_template")
        engine = make_engine(url)
        migrate(engine)
        engine.dispose()
        yield cluster
    finally:
        cluster.stop()


def _pg_url(cluster: PostgresCluster | None) -> str:
    if cluster is None:
        unavailable("PostgreSQL server binaries not found (apt-get install postgresql)")
    assert cluster is not None
    return cluster.create_database(f"t_{uuid.uuid4().hex[:12]}", template="tdc_template")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    if request.param == "sqlite":
        return "sqlite://"
    return _pg_url(request.getfixturevalue("pg_cluster"))


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    if db_url == "sqlite://":
        create_schema(eng)
    yield eng
    eng.dispose()


def make_settings(
    tmp_path: Path, *, server_configs: Path, data_root: Path, **over: Any
) -> Settings:
    values: dict[str, Any] = {
        "database_url": "sqlite://",
        "storage_dir": tmp_path / "storage",
        "data_root": data_root,
        "configs_dir": server_configs,
        "runs_dir": tmp_path / "runs",
        "base_url": "http://testserver",
        "quota_per_day": 5,
        "retry_backoff_s": 0,
        "board_rank_process": False,  # a child per app is slow; test_board_serving runs one
    }
    values.update(over)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def settings(tmp_path: Path, server_configs: Path, data_root: Path, db_url: str) -> Settings:
    return make_settings(
        tmp_path, server_configs=server_configs, data_root=data_root, database_url=db_url
    )


@pytest.fixture
def app(settings: Settings, engine: Engine) -> FastAPI:
    return create_app(settings, engine=engine)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:  # runs the lifespan: datasets synced
        yield c


@pytest.fixture
def tokens(engine: Engine, client: TestClient) -> dict[str, str]:
    """Tokens of teams alpha and beta (participants) and ops (organizer)."""
    out = {}
    with Session(engine) as db:
        for name, scope in (
            ("alpha", "participant"),
            ("beta", "participant"),
            ("ops", "organizer"),
        ):
            team = create_team(db=db, name=name)
            out[name], _ = issue_token(db=db, team=team, scope=scope)  # type: ignore[arg-type]
    return out


Make = Callable[[str], TdcClient]


@pytest.fixture
def as_team(client: TestClient, tokens: dict[str, str]) -> Make:
    """A TdcClient over the test app for a team of ``tokens`` (``as_team("ops")``)."""
    return lambda team: TdcClient("", tokens[team], http=client)
