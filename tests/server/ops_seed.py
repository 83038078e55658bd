"""A server in every state for ``tdc-server check`` / ``backup`` / ``restore`` tests.

    db_url, seeded = ops_seed.db_url, ops_seed.seeded     # in a test module: its fixtures
    seeded = populate(client, tokens, pool, tmp_path)   # scored, running, queued, reference

The database must be one the CLI can open as well (``TDC_DATABASE_URL``): a migrated SQLite
file, or a PostgreSQL database of the session's throwaway cluster.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlmodel import SQLModel

from harness.datasets import Dataset
from server.db import make_engine, migrate
from server.settings import Settings
from submissions.client import TdcClient
from tests.infra.ci import unavailable
from tests.infra.postgres import find_bindir
from tests.server.conftest import auth
from tests.server.helpers import make_result, write_subset


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Overrides the server conftest's: a database the CLI can open too."""
    return shared_db_url(request, tmp_path)


@pytest.fixture
def seeded(
    client: TestClient,
    tokens: dict[str, str],
    tiny_dataset: Dataset,
    tmp_path: Path,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> Seeded:
    """A server in every state, with the CLI's TDC_* environment pointing at it."""
    monkeypatch.setenv("TDC_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("TDC_STORAGE_DIR", str(settings.storage_dir))
    bindir = find_bindir()  # pg_dump / pg_restore of the installed server, first on PATH
    if bindir is not None:
        monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
    return populate(client, tokens, tiny_dataset.uids("train"), tmp_path)


def shared_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """``request.param`` "sqlite": a migrated file; "postgres": a new migrated database."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'tdc.db'}"
        engine = make_engine(url)
        migrate(engine)
        engine.dispose()
        return url
    return new_pg_database(request, template="tdc_template")


def new_pg_database(request: pytest.FixtureRequest, *, template: str | None) -> str:
    cluster = request.getfixturevalue("pg_cluster")
    if cluster is None:
        unavailable("PostgreSQL server binaries not found (apt-get install postgresql)")
    return str(cluster.create_database(f"t_{uuid.uuid4().hex[:12]}", template=template))


@dataclass
class Seeded:
    scored: int
    running: int
    queued: int
    reference: int
    lease_token: str


def upload(client: TestClient, token: str, path: Path) -> int:
    with path.open("rb") as f:
        r = client.post(
            "/api/submissions",
            data={"dataset": "tiny", "fraction": "0.1"},
            files={"file": (path.name, f, "application/octet-stream")},
            headers=auth(token),
        )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def populate(
    client: TestClient, tokens: dict[str, str], pool: np.ndarray, tmp_path: Path
) -> Seeded:
    """Through the API: a scored, a running (leased) and a queued upload, and an oracle."""
    ops = TdcClient("", tokens["ops"], http=client)
    subsets = [write_subset(tmp_path / f"s{i}.npy", pool[30 * i : 30 * i + 30]) for i in range(3)]
    scored = upload(client, tokens["alpha"], subsets[0])
    running = upload(client, tokens["beta"], subsets[1])
    [job] = ops.claim("w1", max_jobs=1)
    assert job.id == scored
    ops.post_result(scored, job.lease_token, make_result(sha256=job.identity.sha256))
    [job] = ops.claim("w2", max_jobs=1, lease_seconds=600)
    assert job.id == running
    queued = upload(client, tokens["alpha"], subsets[2])
    oracle = make_result(sha256="a" * 64, tasks=("test1",), task="test1")
    [ref] = ops.post_references([oracle]).submissions
    return Seeded(scored=scored, running=running, queued=queued, reference=ref.id,
                  lease_token=job.lease_token)  # fmt: skip


def table_rows(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (and the alembic revision), in primary-key order."""
    from server import models  # noqa: F401  (registers the tables)

    out: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for table in SQLModel.metadata.sorted_tables:
            stmt = select(table).order_by(*table.primary_key.columns)
            out[table.name] = [tuple(r) for r in conn.execute(stmt)]
        out["alembic_version"] = [tuple(r) for r in conn.exec_driver_sql(
            "SELECT version_num FROM alembic_version")]  # fmt: skip
    return out
