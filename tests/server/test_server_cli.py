"""``tdc-server``: migrate, teams, tokens (printed once, stored hashed, revocable)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session, select

from server.cli import main
from server.db import make_engine
from server.errors import InvalidRequest, Unauthorized
from server.models import ApiToken, Team
from server.services.auth import authenticate, issue_token


@pytest.fixture
def db_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("TDC_DATABASE_URL", url)
    return url


def test_team_and_token_lifecycle(db_env: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate"]) == 0
    assert main(["create-team", "lab"]) == 0
    assert main(["create-team", "lab"]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["issue-token", "nobody"]) == 2
    assert "no team named 'nobody'" in capsys.readouterr().err
    assert main(["issue-token", "lab", "--scope", "organizer", "--expires-days", "3"]) == 0
    out, err = capsys.readouterr()
    token = out.strip()
    assert token.startswith("tdc_") and len(token) > 40 and "shown once" in err
    engine = make_engine(db_env)
    with Session(engine) as db:
        principal = authenticate(db=db, token=token)
        assert (principal.team, principal.scope) == ("lab", "organizer")
        row = db.exec(select(ApiToken)).one()
        assert row.token_hash != token and row.expires_at is not None
    assert main(["revoke-token", token[:12]]) == 0
    with Session(engine) as db, pytest.raises(Unauthorized):
        authenticate(db=db, token=token)
    assert main(["issue-token", "new-team", "--create-team"]) == 0
    engine.dispose()


BAD_TEAM_NAMES = ["a/b", "line\r\nbreak", "tab\there", "nul\x00", "..", ".hidden", "-rf",
                  " lab", "lab ", "", "x" * 101, "caf\u00e9", "bell\x07"]  # fmt: skip


@pytest.mark.parametrize("name", BAD_TEAM_NAMES)
def test_bad_team_names_are_refused(
    db_env: str, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    assert main(["migrate"]) == 0
    assert main(["create-team", "--", name]) == 2
    assert main(["issue-token", "--create-team", "--", name]) == 2
    assert "invalid team name" in capsys.readouterr().err
    engine = make_engine(db_env)
    with Session(engine) as db:
        assert db.exec(select(Team)).all() == [] and db.exec(select(ApiToken)).all() == []
    engine.dispose()


def test_good_team_names_are_kept_as_given(db_env: str) -> None:
    assert main(["migrate"]) == 0
    names = ["lab", "Vision Lab 2", "team_a-b.c", "9", "x" * 100]
    for name in names:
        assert main(["create-team", name]) == 0
    engine = make_engine(db_env)
    with Session(engine) as db:
        assert sorted(t.name for t in db.exec(select(Team))) == sorted(names)
    engine.dispose()


@pytest.mark.parametrize("days", ["0", "-1", "-0.5", "nan", "inf", "1e9"])
def test_token_expiry_must_be_positive(
    db_env: str, capsys: pytest.CaptureFixture[str], days: str
) -> None:
    assert main(["migrate"]) == 0
    assert main(["create-team", "lab"]) == 0
    capsys.readouterr()
    assert main(["issue-token", "lab", "--expires-days", days]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "--expires-days" in err and "more than 0" in err
    engine = make_engine(db_env)
    with Session(engine) as db:
        assert db.exec(select(ApiToken)).all() == []
        team = db.exec(select(Team)).one()
        for bad in (0.0, -1.0, float(days)):
            with pytest.raises(InvalidRequest, match="more than 0"):
                issue_token(db=db, team=team, scope="participant", expires_days=bad)
        with pytest.raises(InvalidRequest, match="note"):
            issue_token(db=db, team=team, scope="participant", note="n" * 201)
    engine.dispose()
