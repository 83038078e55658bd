"""BoardClock: the boards' version is re-read after a commit or after ``revalidate_s``, and only
then; a commit racing with a read can never leave a stale version trusted."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session

from server.services.freshness import BoardClock, Stamp


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fake_time(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    t = FakeTime()
    monkeypatch.setattr("server.services.freshness.time.monotonic", t)
    return t


@pytest.fixture
def clock(engine: Engine) -> Iterator[BoardClock]:
    c = BoardClock(revalidate_s=60.0)
    c.watch(engine)
    yield c
    c.unwatch(engine)


def _write(engine: Engine) -> None:
    with Session(engine) as db:
        db.connection().execute(text("UPDATE dataset SET pool_size = pool_size"))
        db.commit()


def test_a_version_is_trusted_until_a_commit(engine: Engine, clock: BoardClock) -> None:
    assert clock.peek() is None, "nothing read yet"
    with Session(engine) as db:
        version = clock.read(db)
    assert clock.peek() == version and clock.reads == 1
    with Session(engine) as db:  # reading (and closing the session) is not a change
        db.connection().execute(text("SELECT 1"))
    assert clock.peek() == version
    _write(engine)
    assert clock.peek() is None, "a commit through the engine must force a re-read"
    with Session(engine) as db:
        assert clock.current(db) == version and clock.reads == 2
    assert clock.peek() == version


def test_other_processes_writes_are_seen_within_revalidate_s(
    engine: Engine, clock: BoardClock, fake_time: FakeTime
) -> None:
    with Session(engine) as db:
        clock.read(db)
    fake_time.now += 59.0
    assert clock.peek() is not None
    fake_time.now += 1.5
    assert clock.peek() is None, "past revalidate_s the version must be read again"


def test_zero_revalidate_reads_every_time(engine: Engine) -> None:
    c = BoardClock(revalidate_s=0.0)
    c.watch(engine)
    with Session(engine) as db:
        c.read(db)
        assert c.peek() is None
        c.current(db)
    assert c.reads == 2
    c.unwatch(engine)


def test_a_commit_during_a_read_leaves_the_version_untrusted(engine: Engine) -> None:
    """The read sees the old version, the commit lands while it runs: must not be trusted."""

    def read_racing_a_commit(db: Session) -> Stamp:
        _write(engine)  # another request commits while this one reads
        return (1, 1)

    c = BoardClock(revalidate_s=60.0, read=read_racing_a_commit)
    c.watch(engine)
    with Session(engine) as db:
        c.read(db)
    assert c.peek() is None
    c.unwatch(engine)


def test_unwatch_stops_listening_and_is_idempotent(engine: Engine) -> None:
    c = BoardClock(revalidate_s=60.0)
    c.watch(engine)
    c.unwatch(engine)
    c.unwatch(engine)
    with Session(engine) as db:
        c.read(db)
    _write(engine)
    assert c.peek() is not None, "an unwatched engine's commits are not followed"


def test_an_aged_version_is_served_while_one_request_rereads_it(
    engine: Engine, fake_time: FakeTime
) -> None:
    """Past revalidate_s one caller re-reads; the others keep the aged (not committed-over)
    version meanwhile instead of all querying at once."""
    seen: list[Stamp | None] = []

    def slow_read(db: Session) -> Stamp:
        seen.append(c.peek(stale_ok=True))  # another request, while this read runs
        seen.append(c.peek())
        return (7, 7)

    c = BoardClock(revalidate_s=1.0, read=slow_read)
    c.watch(engine)
    with Session(engine) as db:
        c.read(db)
        seen.clear()
        fake_time.now += 2
        assert c.peek(stale_ok=True) is None, "nobody is re-reading yet: must read"
        assert c.current(db) == (7, 7)
    assert seen == [(7, 7), None], "aged version served only to stale_ok callers, mid-read"
    _write(engine)
    assert c.peek(stale_ok=True) is None, "a commit makes it stale even for stale_ok"
    c.unwatch(engine)


def test_concurrent_callers_share_one_read(engine: Engine) -> None:
    import threading

    gate = threading.Event()

    def blocking_read(db: Session) -> Stamp:
        gate.wait(timeout=30)
        return (1, 1)

    c = BoardClock(revalidate_s=60.0, read=blocking_read)
    results: list[Stamp] = []

    def call() -> None:
        with Session(engine) as db:
            results.append(c.current(db))

    threads = [threading.Thread(target=call) for _ in range(6)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join(timeout=30)
    assert results == [(1, 1)] * 6 and c.reads == 1


def test_timeline_only_events_do_not_move_the_boards(
    engine: Engine, tokens: dict[str, str]
) -> None:
    from server.models import SubmissionEvent, utcnow
    from server.services.boards import TIMELINE_ONLY, stamp
    from tests.server.helpers import insert_submission

    sid = insert_submission(engine, team="alpha")
    with Session(engine) as db:
        before = stamp(db)
        for action in TIMELINE_ONLY:
            db.add(SubmissionEvent(submission_id=sid, action=action, to_state="running",
                                   actor="worker", reason="x", created_at=utcnow()))  # fmt: skip
        db.commit()
        assert stamp(db) == before, "a job id or pending reason must not rebuild the boards"
        db.add(SubmissionEvent(submission_id=sid, action="hide", to_state="queued",
                               actor="ops", reason="r", created_at=utcnow()))  # fmt: skip
        db.commit()
        assert stamp(db) != before
