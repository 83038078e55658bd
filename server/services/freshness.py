"""When may the boards have changed? Answered without a database query on most requests.

    clock = BoardClock(revalidate_s=1.0)
    clock.watch(engine)                     # every commit through ``engine`` marks it stale
    clock.peek()                            # the trusted version, or None (no query)
    clock.current(db)                       # trusted, else one shared read (boards.stamp)

A board is a pure function of the event table (every change that can move a board appends a
``SubmissionEvent`` in its transaction), so its version is :func:`server.services.boards.stamp`.
Reading that per request costs a connection check-out and a query, more than serving a cached
board. The clock keeps the last version read and trusts it until either:

- a transaction committed through this process's engine (its connection went back to the pool
  after a commit): the change is seen by the very next request; or
- ``revalidate_s`` passed: changes made by *other* processes (a second server, an organizer's
  CLI) are seen within that time.

Why the pool check-in and not the commit event: SQLAlchemy's ``commit`` event fires before the
database commits, so a reader could re-read the old version in between and keep it. By the time
the connection is checked in, the commit is durable; any version read before it is superseded.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session

Stamp = tuple[int, int]
_WROTE = "tdc_board_clock_wrote"


class BoardClock:
    """The boards' current version, re-read only when it may be out of date (thread-safe)."""

    def __init__(
        self, *, revalidate_s: float, read: Callable[[Session], Stamp] | None = None
    ) -> None:
        from server.services.boards import stamp

        self.revalidate_s = revalidate_s
        self._read = read or stamp
        self._lock = threading.Lock()
        self._read_lock = threading.Lock()  # one re-read at a time: no herd of equal queries
        self._refreshing = False
        self._generation = 0  # bumped after every commit through a watched engine
        self._known: tuple[Stamp, int, float] | None = None  # (version, generation, when)
        self.reads = 0  # database reads so far (tests check the clock with it)

    def watch(self, engine: Engine) -> None:
        """Mark the version stale after each commit through ``engine``'s connections."""
        event.listen(engine, "commit", _mark_wrote)
        event.listen(engine.pool, "checkin", self._on_checkin)

    def unwatch(self, engine: Engine) -> None:
        if event.contains(engine.pool, "checkin", self._on_checkin):
            event.remove(engine.pool, "checkin", self._on_checkin)

    def peek(self, *, stale_ok: bool = False) -> Stamp | None:
        """The version if it is still trusted; ``None`` when it must be read again.

        ``stale_ok``: while another request re-reads a version that merely aged past
        ``revalidate_s`` (no commit here since), keep answering with it instead of queueing
        behind that read; a version made stale by a commit is never served.
        """
        known = self._known
        if known is None or self.revalidate_s <= 0:
            return None
        version, generation, when = known
        if generation != self._generation:
            return None
        if time.monotonic() - when < self.revalidate_s:
            return version
        return version if stale_ok and self._refreshing else None

    def read(self, db: Session) -> Stamp:
        """Read the version from the database and trust it from now on."""
        generation = self._generation  # before the query: a commit during it re-marks stale
        started = time.monotonic()
        version = self._read(db)
        with self._lock:
            self.reads += 1
            self._known = (version, generation, started)
        return version

    def current(self, db: Session) -> Stamp:
        """The trusted version, or a fresh read; concurrent callers share one read."""
        version = self.peek()
        if version is not None:
            return version
        with self._read_lock:
            version = self.peek()  # read by the caller this one queued behind
            if version is not None:
                return version
            self._refreshing = True
            try:
                return self.read(db)
            finally:
                self._refreshing = False

    def _on_checkin(self, _dbapi_conn: Any, record: Any) -> None:
        if record is not None and record.info.pop(_WROTE, False):
            with self._lock:
                self._generation += 1


def _mark_wrote(conn: Connection) -> None:
    conn.info[_WROTE] = True
