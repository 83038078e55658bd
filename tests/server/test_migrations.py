"""The alembic migrations create exactly the schema of the SQLModel tables (SQLite file and
PostgreSQL), upgrading twice is a no-op, and downgrading removes every table."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, Engine, inspect
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


def test_a_populated_database_is_upgraded_keeping_its_rows(empty_engine: Engine) -> None:
    """Upgrading a database that already holds submissions (the demo's, a live server's) from
    the first revision keeps every row; on SQLite, a migration that rebuilt a table referenced
    by foreign keys failed here ("FOREIGN KEY constraint failed" on DROP TABLE)."""
    from sqlalchemy import text

    migrate(empty_engine, revision="0001")
    with empty_engine.begin() as conn:
        _insert_submission(conn, state="queued")
        conn.execute(text("INSERT INTO submissionevent (submission_id, action, to_state, "
                          "actor, created_at) VALUES (1, 'submit', 'queued', 'participant:alpha', "
                          "'2026-01-01')"))  # fmt: skip
    migrate(empty_engine)
    with empty_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM submissionevent")).scalar_one() == 1
        row = conn.execute(text("SELECT id, picked FROM submission")).one()
    assert tuple(row) == (1, False)


def _insert_submission(conn: Connection, *, state: str) -> None:
    """Dataset ``tiny``, team ``alpha`` and its submission 1, in columns every revision has."""
    from sqlalchemy import text

    conn.execute(text(
        "INSERT INTO dataset (name, task_type, version, description, default_recipe, "
        "primary_metric, higher_is_better, synced_at) VALUES ('tiny', 'classification', "
        "'0.1', '', 'linear_probe', 'accuracy', true, '2026-01-01')"))  # fmt: skip
    conn.execute(text("INSERT INTO team (id, name, created_at, upload_seq) "
                      "VALUES (1, 'alpha', '2026-01-01', 0)"))  # fmt: skip
    conn.execute(text(
        "INSERT INTO submission (id, team_id, dataset, fraction, recipe, kind, sha256, "
        "file_sha256, size, file_bytes, state, attempts, hidden, disqualified, "
        "counts_for_quota, created_at, updated_at) VALUES (1, 1, 'tiny', 0.1, "
        "'linear_probe', 'submission', :s, :s, 30, 100, :state, 0, false, false, true, "
        "'2026-01-01', '2026-01-01')"), {"s": "a" * 64, "state": state})  # fmt: skip


def test_a_failed_upgrade_changes_nothing(empty_engine: Engine) -> None:
    """A migration failing half-way leaves the schema of the revision it started from (on
    SQLite too, whose driver would otherwise commit each DDL statement by itself)."""
    import sqlalchemy as sa
    from sqlalchemy import text

    migrate(empty_engine, revision="0001")
    with empty_engine.begin() as conn:  # makes 0003's ALTER fail after 0002's succeeded
        conn.execute(text("ALTER TABLE submission ADD COLUMN picked BOOLEAN"))
    with pytest.raises(sa.exc.SQLAlchemyError):
        migrate(empty_engine)
    with empty_engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == "0001"
    assert "board_version" not in {c["name"] for c in inspect(empty_engine).get_columns("dataset")}


def test_stacked_outcomes_migration_keeps_outcome_rows_as_one_seed(empty_engine: Engine) -> None:
    """0005 adds ``outcome.seeds`` to a database already holding outcomes: they read as one
    training seed each, and load as before."""
    from sqlalchemy import text
    from sqlmodel import Session

    from server.services.outcomes import load_outcomes
    from submissions.outcomes import encode_array

    migrate(empty_engine, revision="0004")
    bits = [True, False, True, True, False]
    with empty_engine.begin() as conn:
        _insert_submission(conn, state="scored")
        conn.execute(text(
            "INSERT INTO outcome (submission_id, task, seed, kind, name, n, uids_sha256, data) "
            "VALUES (1, 'test1', 0, 'correct', 'correct', 5, :d, :b)"),
            {"d": "d" * 64, "b": encode_array("bits", bits)})  # fmt: skip
    migrate(empty_engine)
    with empty_engine.connect() as conn:
        assert conn.execute(text("SELECT seeds FROM outcome")).scalar_one() == 1
    with Session(empty_engine) as db:
        loaded = load_outcomes(db=db, submission_ids=[1], task="test1")
    assert loaded[1].tolist() == [[1.0, 0.0, 1.0, 1.0, 0.0]]
