"""What every ``tdc-server`` command reads: the settings and the database, errors explained.

    settings = server_settings()                  # TDC_* environment (server.settings.Settings)
    with database(settings) as engine: ...        # unreachable / unmigrated -> ConfigError

Commands import this module rather than ``server.cli`` (which imports the command modules).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from server.settings import Settings


def server_settings() -> Settings:
    from server.settings import Settings
    from submissions.config import load_settings

    return load_settings(Settings)


@contextmanager
def database(settings: Settings) -> Iterator[Engine]:
    """An engine, disposed at the end; a database that is unreachable or not migrated is a
    ConfigError that says so (exit 2), never a traceback."""
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from server.db import make_engine
    from submissions.errors import ConfigError

    engine = make_engine(settings.database_url)
    try:
        yield engine
    except (OperationalError, ProgrammingError) as err:
        raise ConfigError(
            f"cannot use the database at {engine.url.render_as_string(hide_password=True)} "
            f"(reachable, and migrated with `tdc-server migrate`?): {err.orig}"
        ) from None
    finally:
        engine.dispose()
