"""``tdc-server submissions``: list, show and every moderation, on SQLite and PostgreSQL.

Each change goes through ``organizer_ops.moderate`` (as the API does) and appends exactly one
event with the console's actor and the reason; refusals exit 1 with a message per ID.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import get_args

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, update
from sqlmodel import Session, col, select

from server.cli import main
from server.cli_submissions import ACTIONS
from server.context import ServerContext
from server.db import make_engine, migrate
from server.errors import IllegalTransition
from server.models import Dataset, Evaluation, Result, Submission, SubmissionEvent, TaskScore
from server.services import organizer_ops, transitions
from server.services.auth import create_team
from submissions.schemas import ClaimRequest, ResultPost, State, SubmissionDetail
from tests.server.conftest import auth, make_settings
from tests.server.helpers import insert_submission, live_env, make_result

ACTOR = "organizer:cli:ana"


@pytest.fixture
def ctx(
    db_url: str,
    tmp_path: Path,
    server_configs: Path,
    data_root: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[Engine, ServerContext]]:
    """A migrated database with teams alpha and beta, the TDC_* environment pointing at it."""
    url = f"sqlite:///{tmp_path / 'tdc.db'}" if db_url == "sqlite://" else db_url
    env = live_env(tmp_path, url=url, server_configs=server_configs, data_root=data_root)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr("server.cli_submissions.getpass.getuser", lambda: "ana")
    settings = make_settings(tmp_path, server_configs=server_configs, data_root=data_root,
                             database_url=url, storage_dir=tmp_path / "storage")  # fmt: skip
    engine = make_engine(url)
    migrate(engine)
    context = ServerContext.from_settings(settings)
    with Session(engine) as db:
        context.catalog.sync(db)
        create_team(db=db, name="alpha")
        create_team(db=db, name="beta")
        db.commit()
    yield engine, context
    engine.dispose()


def _events(engine: Engine, sid: int) -> list[SubmissionEvent]:
    with Session(engine) as db:
        stmt = select(SubmissionEvent).where(SubmissionEvent.submission_id == sid)
        return list(db.exec(stmt.order_by(col(SubmissionEvent.id))).all())


def _row(engine: Engine, sid: int) -> Submission:
    with Session(engine) as db:
        sub = db.get(Submission, sid)
        assert sub is not None
        return sub


def _score(engine: Engine, ctx: ServerContext, sid: int, acc: float = 0.8) -> None:
    """Claim ``sid`` (the only queued row) and post a result for it, as a worker does."""
    with Session(engine) as db:
        [job] = organizer_ops.claim(db=db, ctx=ctx, request=ClaimRequest(worker="w"), actor="t")
        assert job.id == sid
        post = ResultPost(lease_token=job.lease_token,
                          result=make_result(sha256=_row(engine, sid).sha256, acc=acc))  # fmt: skip
        organizer_ops.post_result(db=db, ctx=ctx, submission_id=sid, post=post, actor="t")


def _store_file(ctx: ServerContext, sub: Submission) -> Path:
    path = ctx.storage.path_for(sub.file_sha256)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"stored subset")
    return path


def _board_version(engine: Engine) -> int:
    with Session(engine) as db:
        row = db.get(Dataset, "tiny")
        assert row is not None
        return row.board_version


# --- the command line ------------------------------------------------------------------------


def test_actions_are_the_services_moderations() -> None:
    assert set(ACTIONS) == set(organizer_ops.MODERATIONS) == set(get_args(organizer_ops.Moderation))


@pytest.mark.parametrize("command", ["list", "show", *ACTIONS])
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["submissions", command, "--help"]) == 0
    out = capsys.readouterr().out
    assert f"submissions {command}" in out
    assert ("--reason" in out) == (command in ACTIONS)


def test_group_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["submissions", "--help"]) == 0
    out = capsys.readouterr().out
    assert all(c in out for c in ["list", "show", *ACTIONS])
    assert main(["--help"]) == 0
    assert "submissions" in capsys.readouterr().out


@pytest.mark.parametrize("reason", [None, "", "   ", "x" * 2001])
def test_a_change_needs_a_reason(reason: str | None, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["submissions", "hide", "1"] + ([] if reason is None else ["--reason", reason])
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--reason" in err and "Traceback" not in err


def test_an_unmigrated_database_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TDC_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    monkeypatch.setenv("TDC_STORAGE_DIR", str(tmp_path / "storage"))
    assert main(["submissions", "list"]) == 2
    assert "tdc-server migrate" in capsys.readouterr().err


# --- on SQLite and PostgreSQL ----------------------------------------------------------------


def test_each_change_appends_one_event_with_actor_and_reason(
    ctx: tuple[Engine, ServerContext], capsys: pytest.CaptureFixture[str]
) -> None:
    engine, _ = ctx
    a = insert_submission(engine, team="alpha")
    for action in ("hide", "unhide", "disqualify", "requalify"):
        before = len(_events(engine, a))
        assert main(["submissions", action, str(a), "--reason", f"why {action}"]) == 0
        assert capsys.readouterr().out.startswith(f"submission {a}: {ACTIONS[action][0]} (queued")
        new = _events(engine, a)[before:]
        assert [(e.action, e.actor, e.reason) for e in new] == [(action, ACTOR, f"why {action}")]
    with Session(engine) as db:  # a worker fails it for the participant: requeue
        sub = db.get(Submission, a)
        assert sub is not None
        transitions.transition(db=db, sub=sub, to=State.running, action="claim", actor="t")
        transitions.transition(db=db, sub=sub, to=State.failed_user, action="fail_user", actor="t")
        db.commit()
    for action, state in (("requeue", State.queued), ("cancel", State.cancelled)):
        before = len(_events(engine, a))
        assert main(["submissions", action, str(a), "--reason", f"why {action}"]) == 0
        [event] = _events(engine, a)[before:]
        assert (event.action, event.to_state, event.actor) == (action, state, ACTOR)
        assert event.reason == f"why {action}"
    row = _row(engine, a)
    assert row.state == "cancelled" and not row.hidden and not row.counts_for_quota


def test_refusals_exit_1_with_a_line_per_id(
    ctx: tuple[Engine, ServerContext], capsys: pytest.CaptureFixture[str]
) -> None:
    engine, _ = ctx
    a, b = insert_submission(engine, team="alpha", tag="a"), insert_submission(engine, team="beta")
    assert main(["submissions", "hide", str(a), str(b), "999", str(a), "--reason", "dup"]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == [f"submission {a}: hidden (queued, hidden)",
                                f"submission {b}: hidden (queued, hidden)"]  # fmt: skip
    assert "submission 999: error: submission 999 not found" in err
    assert "1 of 3 submissions not changed" in err and "Traceback" not in err
    assert main(["submissions", "hide", str(a), "--reason", "again"]) == 1
    assert f"submission {a} is already hidden" in capsys.readouterr().err
    assert main(["submissions", "requalify", str(a), "--reason", "x"]) == 1
    assert f"submission {a} is not disqualified" in capsys.readouterr().err
    assert main(["submissions", "requeue", str(a), "--reason", "x"]) == 1
    assert "a queued submission cannot become queued" in capsys.readouterr().err
    assert [e.action for e in _events(engine, a)] == ["submit", "hide"]


def test_list_filters_and_json(
    ctx: tuple[Engine, ServerContext], capsys: pytest.CaptureFixture[str]
) -> None:
    engine, _ = ctx
    a, b = insert_submission(engine, team="alpha", tag="a"), insert_submission(engine, team="beta")
    assert main(["submissions", "cancel", str(b), "--reason", "spam"]) == 0
    assert main(["submissions", "hide", str(a), "--reason", "dup"]) == 0
    capsys.readouterr()
    assert main(["submissions", "list"]) == 0
    header, *lines = capsys.readouterr().out.splitlines()
    assert header.split() == ["id", "team", "dataset", "fraction", "task", "state", "flags",
                              "kind", "created", "error"]  # fmt: skip
    assert [ln.split()[:7] for ln in lines] == [
        [str(b), "beta", "tiny", "0.1", "all", "cancelled", "-"],
        [str(a), "alpha", "tiny", "0.1", "all", "queued", "hidden"],
    ]
    assert main(["submissions", "list", "--team", "alpha", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["id"], row["state"], row["hidden"], row["disqualified"]) == (
        a,
        "queued",
        True,
        False,
    )
    assert main(["submissions", "list", "--state", "cancelled", "--dataset", "tiny", "--json"]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == [b]
    assert main(["submissions", "list", "--limit", "1", "--json"]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == [b]
    assert main(["submissions", "list", "--state", "running"]) == 0
    assert capsys.readouterr().err.strip() == "no submissions match"
    assert main(["submissions", "list", "--team", "nobody"]) == 2
    assert "no team named 'nobody'" in capsys.readouterr().err
    assert main(["submissions", "list", "--dataset", "tinny"]) == 2
    assert "tiny" in capsys.readouterr().err
    assert main(["submissions", "list", "--state", "lost"]) == 2


def test_show_prints_the_timeline(
    ctx: tuple[Engine, ServerContext], capsys: pytest.CaptureFixture[str]
) -> None:
    engine, context = ctx
    a = insert_submission(engine, team="alpha")
    _score(engine, context, a)
    assert main(["submissions", "disqualify", str(a), "--reason", "used test labels"]) == 0
    capsys.readouterr()
    assert main(["submissions", "show", str(a)]) == 0
    out = capsys.readouterr().out
    assert f"submission {a}" in out and "scored  (disqualified)" in out
    assert "test1  n=60  seeds=1  accuracy 0.8000 ± 0.0000" in out
    events = out.split("\nevents\n")[1].splitlines()
    assert [ln.split()[2] for ln in events] == ["submit", "claim", "score", "disqualify"]
    assert events[-1].endswith(f"scored -> scored       {ACTOR}  used test labels")
    assert main(["submissions", "show", str(a), "--json"]) == 0
    detail = SubmissionDetail.model_validate_json(capsys.readouterr().out)
    assert detail.disqualified and [e.actor for e in detail.events][-1] == ACTOR
    assert detail.attempts == 1 and detail.manifest is not None
    assert main(["submissions", "show", "999"]) == 1
    assert capsys.readouterr().err.strip() == "error: submission 999 not found"


def test_rescore_sends_a_scored_submission_back(
    ctx: tuple[Engine, ServerContext], capsys: pytest.CaptureFixture[str]
) -> None:
    engine, context = ctx
    a = insert_submission(engine, team="alpha")
    path = _store_file(context, _row(engine, a))
    assert main(["submissions", "rescore", str(a), "--reason", "x"]) == 1
    assert "is queued: only scored submissions are rescored" in capsys.readouterr().err
    _score(engine, context, a)
    assert main(["submissions", "requeue", str(a), "--reason", "x"]) == 1
    assert "rescore moves it to queued" in capsys.readouterr().err
    version = _board_version(engine)
    assert main(["submissions", "rescore", str(a), "--reason", "harness fix #12"]) == 0
    assert capsys.readouterr().out.strip() == f"submission {a}: queued to be rescored (queued)"
    row = _row(engine, a)
    assert (row.state, row.attempts, row.scored_at, row.lease_token) == ("queued", 0, None, None)
    assert _board_version(engine) == version + 1  # off the boards now
    with Session(engine) as db:
        for table in (TaskScore, Result, Evaluation):
            assert db.exec(select(table).where(table.submission_id == a)).all() == []
    event = _events(engine, a)[-1]
    assert (event.action, event.from_state, event.to_state, event.actor) == (
        "rescore", "scored", "queued", ACTOR)  # fmt: skip
    assert event.reason == (
        "harness fix #12 [previous: test1 0.8000 ± 0.0000, test2 0.8000 ± 0.0000 "
        "(accuracy; code test, recipe hash abc)]"
    )
    _score(engine, context, a, acc=0.9)  # evaluated again: the new scores replace the old
    with Session(engine) as db:
        scores = db.exec(select(TaskScore).where(TaskScore.submission_id == a)).all()
        assert sorted(s.primary for s in scores) == [0.9, 0.9]  # type: ignore[type-var]
    path.unlink()
    assert main(["submissions", "rescore", str(a), "--reason", "x"]) == 1
    assert "is missing from storage" in capsys.readouterr().err
    with Session(engine) as db:  # a reference row has no file to evaluate
        stmt = update(Submission).where(col(Submission.id) == a)
        db.exec(stmt.values(file_bytes=0, kind="oracle"))  # type: ignore[call-overload]
        db.commit()
    assert main(["submissions", "rescore", str(a), "--reason", "x"]) == 1
    assert "oracle reference without a subset file" in capsys.readouterr().err
    assert _row(engine, a).state == "scored"
    assert [e.action for e in _events(engine, a)].count("rescore") == 1


def test_only_rescore_leaves_scored() -> None:
    with pytest.raises(IllegalTransition, match="rescore moves it to queued"):
        transitions.check(State.scored, State.queued)
    with pytest.raises(IllegalTransition):
        transitions.check(State.scored, State.queued, "requeue")
    transitions.check(State.scored, State.queued, "rescore")
    with pytest.raises(IllegalTransition):
        transitions.check(State.cancelled, State.queued, "rescore")


def test_the_api_moderates_the_same_way(
    client: TestClient, tokens: dict[str, str], engine: Engine
) -> None:
    a = insert_submission(engine, team="alpha")
    url = f"/api/organizer/submissions/{a}"
    ops = auth(tokens["ops"])
    assert client.post(f"{url}/hide", json={"reason": "dup"}, headers=ops).status_code == 200
    again = client.post(f"{url}/hide", json={"reason": "dup"}, headers=ops)
    assert again.status_code == 409 and "already hidden" in again.text
    rescore = client.post(f"{url}/rescore", json={"reason": "fix"}, headers=ops)
    assert rescore.status_code == 409 and "only scored submissions" in rescore.text
    assert [e.action for e in _events(engine, a)] == ["submit", "hide"]
