"""The submission state machine: the transition table, compare-and-set, and concurrent
claims from threads against a file SQLite database and against PostgreSQL."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from server.context import ServerContext
from server.db import make_engine, migrate
from server.errors import Conflict, IllegalTransition
from server.models import Submission, SubmissionEvent
from server.services import organizer_ops, transitions
from server.services.auth import create_team
from server.settings import Settings
from submissions.schemas import ClaimRequest, State
from tests.infra.postgres import PostgresCluster
from tests.server.conftest import _pg_url, make_settings
from tests.server.helpers import insert_submission

PAIRS = list(itertools.product(State, State))


@pytest.mark.parametrize(("frm", "to"), PAIRS, ids=[f"{a}->{b}" for a, b in PAIRS])
def test_transition_table_is_enforced(frm: State, to: State) -> None:
    allowed = {
        State.queued: {State.running, State.cancelled},
        State.running: {State.scored, State.failed_user, State.failed_infra, State.queued,
                        State.cancelled},
        State.failed_infra: {State.queued},
        State.failed_user: {State.queued},
    }.get(frm, set())  # fmt: skip
    if to in allowed:
        transitions.check(frm, to)
    else:
        with pytest.raises(IllegalTransition):
            transitions.check(frm, to)


@pytest.fixture
def team(engine: Engine) -> str:
    with Session(engine) as db:
        create_team(db=db, name="alpha")
    return "alpha"


def _sync(engine: Engine, settings: Settings) -> ServerContext:
    ctx = ServerContext.from_settings(settings)
    with Session(engine) as db:
        ctx.catalog.sync(db)
    return ctx


def test_illegal_transition_writes_nothing(engine: Engine, settings: Settings, team: str) -> None:
    _sync(engine, settings)
    sid = insert_submission(engine, team=team)
    with Session(engine) as db:
        sub = db.get(Submission, sid)
        assert sub is not None
        with pytest.raises(IllegalTransition):
            transitions.transition(db=db, sub=sub, to=State.scored, action="x", actor="t")
        db.commit()
        assert db.get(Submission, sid).state == "queued"  # type: ignore[union-attr]
        events = db.exec(select(SubmissionEvent).where(SubmissionEvent.submission_id == sid))
        assert [e.action for e in events] == ["submit"]


def test_compare_and_set_rejects_a_stale_writer(
    engine: Engine, settings: Settings, team: str
) -> None:
    _sync(engine, settings)
    sid = insert_submission(engine, team=team)
    with Session(engine) as a, Session(engine) as b:
        sa, sb = a.get(Submission, sid), b.get(Submission, sid)
        assert sa is not None and sb is not None
        transitions.transition(db=a, sub=sa, to=State.running, action="claim", actor="w1")
        a.commit()
        with pytest.raises(Conflict):  # b still believes it is queued
            transitions.transition(db=b, sub=sb, to=State.cancelled, action="cancel", actor="u")
        b.rollback()
    with Session(engine) as db:
        events = db.exec(select(SubmissionEvent).where(SubmissionEvent.submission_id == sid)).all()
        assert [(e.action, e.from_state, e.to_state, e.actor) for e in events] == [
            ("submit", None, "queued", "participant:alpha"),
            ("claim", "queued", "running", "w1"),
        ]


@pytest.fixture(params=["sqlite-file", pytest.param("postgres", marks=pytest.mark.postgres)])
def shared_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A database several connections really share (not one in-memory connection)."""
    if request.param == "sqlite-file":
        eng = make_engine(f"sqlite:///{tmp_path / 'claims.db'}")
        migrate(eng)
    else:
        cluster: PostgresCluster | None = request.getfixturevalue("pg_cluster")
        eng = make_engine(_pg_url(cluster))
    yield eng
    eng.dispose()


def test_concurrent_claims_never_double_claim(
    shared_engine: Engine, tmp_path: Path, server_configs: Path, data_root: Path
) -> None:
    settings = make_settings(tmp_path, server_configs=server_configs, data_root=data_root)
    ctx = _sync(shared_engine, settings)
    with Session(shared_engine) as db:
        create_team(db=db, name="alpha")
    ids = {insert_submission(shared_engine, team="alpha", tag=str(i)) for i in range(60)}
    claimed: list[list[int]] = [[] for _ in range(6)]
    barrier = threading.Barrier(6)

    def run(k: int) -> None:
        barrier.wait()
        with Session(shared_engine, expire_on_commit=False) as db:
            while True:
                got = organizer_ops.claim(
                    db=db, ctx=ctx, request=ClaimRequest(worker=f"w{k}", max_jobs=3), actor="t"
                )
                if not got:
                    return
                claimed[k] += [c.id for c in got]

    threads = [threading.Thread(target=run, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    flat = [i for c in claimed for i in c]
    assert len(flat) == len(set(flat)) == 60, "a submission was claimed twice or lost"
    assert set(flat) == ids
    assert sum(1 for c in claimed if c) >= 2, "the claims did not actually run concurrently"
    with Session(shared_engine) as db:
        subs = db.exec(select(Submission)).all()
        assert all(s.state == "running" and s.attempts == 1 for s in subs)
        n_claim_events = len(
            db.exec(select(SubmissionEvent).where(SubmissionEvent.action == "claim")).all()
        )
        assert n_claim_events == 60
