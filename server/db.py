"""Engines and sessions. No module-level engine: ``create_app`` makes one from the settings.

    engine = make_engine("sqlite:///./tdc.db")       # WAL, busy timeout, foreign keys on
    migrate(engine)                                  # alembic upgrade head (server.migrations)
    with Session(engine) as db: ...

SQLite gets WAL (readers never wait for the writer) and a long busy timeout (writers queue
instead of failing); ``sqlite://`` (in memory) shares one connection across threads so a
test's app and its fixtures see the same database.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.pool import StaticPool
from sqlmodel import Session, SQLModel

log = logging.getLogger(__name__)


def make_engine(url: str, *, pool_size: int = 10, max_overflow: int = 30) -> Engine:
    """An engine for ``url`` with the per-backend settings this server relies on."""
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    return create_engine(
        url, pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=True, future=True
    )


def _sqlite_engine(url: str) -> Engine:
    memory = url in ("sqlite://", "sqlite:///:memory:")
    kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": 60}}
    if memory:
        kwargs["poolclass"] = StaticPool
    else:
        path = url.split("///", 1)[-1]
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        if not memory:
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.close()

    return engine


def create_schema(engine: Engine) -> None:
    """Create every table from the models (tests on in-memory SQLite; real use: ``migrate``)."""
    from server import models  # noqa: F401  (registers the tables)

    SQLModel.metadata.create_all(engine)


def migrate(engine: Engine, *, revision: str = "head") -> None:
    """Upgrade the database to ``revision`` with the bundled alembic migrations."""
    from alembic import command

    cfg = alembic_config(engine)
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            # pysqlite opens a transaction before DML only, so a migration's DDL would commit
            # on its own and a failed upgrade leave the schema half changed under the old
            # revision number. SQLite's DDL is transactional: all of it in one transaction.
            conn.exec_driver_sql("BEGIN")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return cfg


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session for scripts and the CLI (routes get theirs from the dependency)."""
    with Session(engine, expire_on_commit=False) as db:
        yield db
