"""The organizer (worker) API through ``TdcClient``: leases, results exactly once, failures,
retries with backoff, moderation, and what participants may and may not see."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, update
from sqlmodel import Session, select

from server.models import Submission, SubmissionEvent, utcnow
from server.services.submissions import quota_used
from submissions.client import ApiError
from submissions.schemas import State
from tests.server.conftest import Make
from tests.server.helpers import insert_submission, make_result, sha_of


def test_job_state_changes_are_recorded_once_and_shown_to_the_team(
    as_team: Make, engine: Engine
) -> None:
    sid = insert_submission(engine, team="alpha")
    ops = as_team("ops")
    [job] = ops.claim("w1")
    beats = [
        ("5_0", "pending (Priority)"),
        ("5_0", "pending (Priority)"),  # unchanged: nothing new on the timeline
        ("5_0", "pending (Resources)"),
        ("5_0", None),  # a plain lease renewal says nothing
        ("5_0", "running"),
        ("9_0", "running"),  # a new job: its state is news even if the words are the same
    ]
    for job_id, state in beats:
        ops.heartbeat(sid, job.lease_token, job_id=job_id, job_state=state)
    seen = [(e.action, e.reason) for e in as_team("alpha").get(sid).events]
    assert seen[2:] == [
        ("job", "5_0"),
        ("job_state", "pending (Priority)"),
        ("job_state", "pending (Resources)"),
        ("job_state", "running"),
        ("job", "9_0"),
        ("job_state", "running"),
    ]


def test_participants_get_403_on_every_organizer_route(as_team: Make, engine: Engine) -> None:
    sid = insert_submission(engine, team="alpha")
    alpha = as_team("alpha")
    calls = [
        lambda: alpha.claim("w"),
        lambda: alpha.heartbeat(sid, "x"),
        lambda: alpha.download_file(sid, __import__("pathlib").Path("/nonexistent/x")),
        lambda: alpha.post_result(sid, "x", make_result(sha256="0" * 64)),
        lambda: alpha.fail(sid, "x", kind="user", message="m"),
        lambda: alpha.requeue(sid, "r"),
        lambda: alpha.hide(sid, "r"),
        lambda: alpha.disqualify(sid, "r"),
        lambda: alpha.list_all(),
    ]
    for call in calls:
        with pytest.raises(ApiError) as err:
            call()
        assert err.value.status == 403
    assert alpha.get(sid).state == State.queued  # nothing changed


def test_claim_heartbeat_result_exactly_once(as_team: Make, engine: Engine) -> None:
    sid = insert_submission(engine, team="alpha")
    ops = as_team("ops")
    [job] = ops.claim("w1", max_jobs=5, lease_seconds=60)
    assert (job.id, job.attempts) == (sid, 1)
    assert ops.claim("w2") == []  # already leased
    beat = ops.heartbeat(sid, job.lease_token, lease_seconds=120, job_id="77_0")
    assert beat.lease_expires_at > job.lease_expires_at
    with pytest.raises(ApiError) as err:
        ops.heartbeat(sid, "wrong-token")
    assert err.value.status == 409
    result = make_result(sha256=sha_of(engine, sid))
    with pytest.raises(ApiError) as err:
        ops.post_result(sid, "wrong-token", result)
    assert err.value.status == 409
    first = ops.post_result(sid, job.lease_token, result)
    assert first.state == State.scored
    again = ops.post_result(sid, job.lease_token, make_result(sha256=sha_of(engine, sid), acc=0.1))
    assert again.state == State.scored and again.updated_at == first.updated_at
    detail = ops.get(sid)
    assert {s.task: s.mean["accuracy"] for s in detail.scores} == {"test1": 0.8, "test2": 0.8}
    assert detail.executor_job_id == "77_0" and detail.manifest is not None
    assert [e.action for e in detail.events] == ["submit", "claim", "job", "score"]


def test_hidden_task_scores_and_other_teams_are_private(as_team: Make, engine: Engine) -> None:
    sid = insert_submission(engine, team="alpha")
    ops = as_team("ops")
    [job] = ops.claim("w")
    ops.post_result(sid, job.lease_token, make_result(sha256=sha_of(engine, sid)))
    mine = as_team("alpha").get(sid)
    assert [s.task for s in mine.scores] == ["test1"]  # test2 is hidden, not revealed
    assert mine.attempts is None and mine.log_tail is None  # organizer-only fields
    assert [s.task for s in ops.get(sid).scores] == ["test1", "test2"]
    with pytest.raises(ApiError) as err:
        as_team("beta").get(sid)
    assert err.value.status == 404
    assert as_team("beta").list() == []


def test_result_must_match_the_submission(as_team: Make, engine: Engine) -> None:
    sid = insert_submission(engine, team="alpha", task="test1")
    ops = as_team("ops")
    [job] = ops.claim("w")
    for bad in (
        make_result(sha256=sha_of(engine, sid), task="test1"),  # both tasks for a 1-task entry
        make_result(sha256="f" * 64, task="test1", tasks=("test1",)),
        make_result(sha256=sha_of(engine, sid), task="test1", tasks=("test1",), fraction=0.25),
    ):
        with pytest.raises(ApiError) as err:
            ops.post_result(sid, job.lease_token, bad)
        assert err.value.status == 422
    good = make_result(sha256=sha_of(engine, sid), task="test1", tasks=("test1",))
    assert ops.post_result(sid, job.lease_token, good).state == State.scored


def test_user_failure_is_shown_to_the_participant(as_team: Make, engine: Engine) -> None:
    sid = insert_submission(engine, team="alpha")
    ops = as_team("ops")
    [job] = ops.claim("w")
    out = ops.fail(sid, job.lease_token, kind="user", message="subset has a single class")
    assert out.state == State.failed_user
    assert as_team("alpha").get(sid).error == "subset has a single class"
    with pytest.raises(ApiError) as err:  # the lease is gone
        ops.post_result(sid, job.lease_token, make_result(sha256=sha_of(engine, sid)))
    assert err.value.status == 409


def test_infra_failures_retry_then_fail_uncharged(
    as_team: Make, engine: Engine, settings: object
) -> None:
    sid = insert_submission(engine, team="alpha")
    ops, alpha = as_team("ops"), as_team("alpha")
    for attempt in (1, 2, 3):  # max_attempts = 3, backoff 0 s in tests
        [job] = ops.claim("w")
        assert job.attempts == attempt
        out = ops.fail(sid, job.lease_token, kind="infra", message="node lost", log_tail="OOM")
        if attempt < 3:
            assert out.state == State.queued
            assert "retried" in (alpha.get(sid).error or "")
    assert out.state == State.failed_infra
    mine = alpha.get(sid)
    assert "node lost" not in (mine.error or "") and "infrastructure" in (mine.error or "")
    assert all(e.reason is None for e in mine.events if e.action in ("fail_infra", "retry_infra"))
    org = ops.get(sid)
    assert org.error == "node lost" and org.log_tail == "OOM"
    with Session(engine) as db:
        used, _ = quota_used(db=db, team_id=1, dataset="tiny", now=utcnow())
        assert used == 0
    ops.requeue(sid, "fixed the node")
    [job] = ops.claim("w")
    assert job.attempts == 1


def test_expired_lease_is_reclaimed_as_an_infra_attempt(as_team: Make, engine: Engine) -> None:
    sid = insert_submission(engine, team="alpha")
    ops = as_team("ops")
    [job] = ops.claim("w1")
    with Session(engine) as db:  # the worker died: its lease ran out
        db.exec(  # type: ignore[call-overload]
            update(Submission)
            .where(Submission.id == sid)
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )
        db.commit()
    with pytest.raises(ApiError) as err:
        ops.post_result(sid, job.lease_token, make_result(sha256=sha_of(engine, sid)))
    assert err.value.status == 409
    [again] = ops.claim("w2")
    assert again.id == sid and again.attempts == 2 and again.lease_token != job.lease_token
    with pytest.raises(ApiError):
        ops.heartbeat(sid, job.lease_token)  # the old worker cannot come back
    with Session(engine) as db:
        actions = [
            e.action
            for e in db.exec(select(SubmissionEvent).where(SubmissionEvent.submission_id == sid))
        ]
    assert actions == ["submit", "claim", "lease_expired", "claim"]


def test_moderation_and_cancel(as_team: Make, engine: Engine) -> None:
    a, b = (
        insert_submission(engine, team="alpha", tag="a"),
        insert_submission(engine, team="alpha", tag="b"),
    )
    ops, alpha, beta = as_team("ops"), as_team("alpha"), as_team("beta")
    ops.hide(a, "duplicate account")
    ops.disqualify(a, "used test labels")
    detail = alpha.get(a)
    assert detail.hidden and detail.disqualified
    assert [e.action for e in detail.events][-2:] == ["hide", "disqualify"]
    ops.unhide(a, "appeal accepted")
    assert not alpha.get(a).hidden
    with pytest.raises(ApiError) as err:
        beta.cancel(b)
    assert err.value.status == 404
    assert alpha.cancel(b).state == State.cancelled
    with pytest.raises(ApiError) as err:
        alpha.cancel(b)
    assert err.value.status == 409
    with pytest.raises(ApiError) as err:
        ops.requeue(b, "no")  # cancelled is final
    assert err.value.status == 409
    assert {s.id for s in ops.list_all(state=State.cancelled)} == {b}
