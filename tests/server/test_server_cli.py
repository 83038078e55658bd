"""``tdc-server``: migrate, teams, tokens (printed once, stored hashed, revocable)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session, select

from server.cli import main
from server.db import make_engine
from server.errors import Unauthorized
from server.models import ApiToken
from server.services.auth import authenticate


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
