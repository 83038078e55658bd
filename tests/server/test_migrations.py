"""The alembic migrations create exactly the schema of the SQLModel tables (SQLite file and
PostgreSQL), upgrading twice is a no-op, and downgrading removes every table."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect
from sqlmodel import SQLModel

from server import models  # noqa: F401  (the tables)
from server.db import alembic_config, make_engine, migrate
from tests.infra.ci import unavailable
from tests.infra.postgres import PostgresCluster


@pytest.fixture(params=["sqlite-file", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite-file":
        eng = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    else:
        cluster: PostgresCluster | None = request.getfixturevalue("pg_cluster")
        if cluster is None:
            unavailable("PostgreSQL server binaries not found")
        assert cluster is not None
        eng = make_engine(cluster.create_database(f"mig_{tmp_path.name[-20:].lower()}"))
    yield eng
    eng.dispose()


def test_migration_matches_the_models(empty_engine: Engine) -> None:
    migrate(empty_engine)
    migrate(empty_engine)  # idempotent
    with empty_engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == []
    tables = set(inspect(empty_engine).get_table_names()) - {"alembic_version"}
    assert tables == set(SQLModel.metadata.tables)


def test_downgrade_removes_everything(empty_engine: Engine) -> None:
    migrate(empty_engine)
    cfg = alembic_config(empty_engine)
    with empty_engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    assert set(inspect(empty_engine).get_table_names()) <= {"alembic_version"}
