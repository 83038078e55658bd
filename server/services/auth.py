"""Teams and API tokens. A token's text is shown once; only its sha256 is stored.

    team = create_team(db=db, name="lab")
    text, row = issue_token(db=db, team=team, scope="participant", expires_days=90)
    principal = authenticate(db=db, token=text, touch_s=60)    # Unauthorized if bad
    revoke_token(db=db, token_or_prefix=text)

Tokens are 256-bit random (``secrets``), so an unsalted sha256 is enough: there is nothing
to brute-force, and lookup by hash stays a single indexed query.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from server.errors import Conflict, Forbidden, InvalidRequest, NotFound, Unauthorized
from server.models import ApiToken, Team, utcnow

Scope = Literal["participant", "organizer"]
SCOPES: tuple[Scope, ...] = ("participant", "organizer")
TOKEN_PREFIX = "tdc_"
# A team name is part of URLs (/teams/NAME), export file names and terminal output: 1 to 100
# ASCII letters, digits, "_", "-", "." and spaces, starting with a letter or a digit and not
# ending with a space. No "/", no control characters, no "." or ".." path segments.
TEAM_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_.\- ]{0,98}[A-Za-z0-9_.\-])?")
TEAM_NAME_RULE = (
    "1 to 100 ASCII letters, digits, '_', '-', '.' and spaces, starting with a letter or "
    "a digit and not ending with a space"
)
MAX_EXPIRES_DAYS = 36_500  # 100 years; omit the expiry for a token that never expires
MAX_NOTE_CHARS = 200  # ApiToken.note


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's team and scope."""

    token_id: int
    team_id: int
    team: str
    scope: Scope

    @property
    def is_organizer(self) -> bool:
        return self.scope == "organizer"

    @property
    def actor(self) -> str:
        return f"{self.scope}:{self.team}"

    def require_organizer(self) -> None:
        if not self.is_organizer:
            raise Forbidden("this action needs an organizer token")


def hash_token(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def check_team_name(name: str) -> str:
    """``name`` if it is a valid team name (:data:`TEAM_NAME`), else InvalidRequest."""
    if TEAM_NAME.fullmatch(name) is None:
        shown = repr(name[:100]) + ("..." if len(name) > 100 else "")
        raise InvalidRequest(f"invalid team name {shown}: a team name has {TEAM_NAME_RULE}")
    return name


def create_team(*, db: Session, name: str) -> Team:
    team = Team(name=check_team_name(name))
    db.add(team)
    try:
        db.commit()
    except IntegrityError:
        db.rollback()
        raise Conflict(f"team {name!r} exists") from None
    db.refresh(team)
    return team


def get_team(*, db: Session, name: str) -> Team:
    team = db.exec(select(Team).where(Team.name == name)).first()
    if team is None:
        raise NotFound(f"no team named {name!r}")
    return team


def lock_teams(db: Session, team_ids: Iterable[int] | None = None) -> None:
    """Take the teams' row locks (PostgreSQL; SQLite: its one write lock) until the caller
    commits or rolls back, in id order (no deadlock between two lockers); None: every team.
    A team's uploads and pick changes hold it, so checks made under it cannot be raced."""
    stmt = update(Team).values(upload_seq=col(Team.upload_seq) + 1)
    if team_ids is None:
        db.connection().execute(stmt)
        return
    for tid in sorted(set(team_ids)):
        db.connection().execute(stmt.where(col(Team.id) == tid))


def get_or_create_team(*, db: Session, name: str) -> Team:
    try:
        return get_team(db=db, name=name)
    except NotFound:
        try:
            return create_team(db=db, name=name)
        except Conflict:  # created concurrently
            return get_team(db=db, name=name)


def issue_token(
    *,
    db: Session,
    team: Team,
    scope: Scope,
    expires_days: float | None = None,
    note: str | None = None,
) -> tuple[str, ApiToken]:
    """A new token for ``team``: its text (shown once, never stored) and its row."""
    if scope not in SCOPES:
        raise Conflict(f"scope must be one of {', '.join(SCOPES)}")
    check_token_options(expires_days=expires_days, note=note)
    assert team.id is not None
    text = TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires = utcnow() + timedelta(days=expires_days) if expires_days else None
    row = ApiToken(
        token_hash=hash_token(text),
        prefix=text[:12],
        scope=scope,
        team_id=team.id,
        expires_at=expires,
        note=note,
    )
    db.add(row)
    db.commit()
    db.refresh(row)
    return text, row


def check_token_options(*, expires_days: float | None, note: str | None) -> None:
    """InvalidRequest unless the expiry is None or in (0, MAX_EXPIRES_DAYS] days and the note
    fits its column."""
    if expires_days is not None and not 0 < expires_days <= MAX_EXPIRES_DAYS:
        raise InvalidRequest(
            f"a token's expiry must be more than 0 and at most {MAX_EXPIRES_DAYS} days, not "
            f"{expires_days:g} (omit it for a token that never expires)"
        )
    if note is not None and len(note) > MAX_NOTE_CHARS:
        raise InvalidRequest(f"a token's note has at most {MAX_NOTE_CHARS} characters")


def revoke_token(*, db: Session, token_or_prefix: str) -> ApiToken:
    """Revoke by full text or by the 12-character prefix ``issue-token`` printed."""
    stmt = select(ApiToken).where(
        (ApiToken.token_hash == hash_token(token_or_prefix)) | (ApiToken.prefix == token_or_prefix)
    )
    rows = db.exec(stmt).all()
    if len(rows) != 1:
        raise NotFound(f"{len(rows)} tokens match {token_or_prefix[:12]!r}; give the full token")
    row = rows[0]
    row.revoked_at = row.revoked_at or utcnow()
    db.add(row)
    db.commit()
    return row


def authenticate(*, db: Session, token: str | None, touch_s: int = 60) -> Principal:
    """The principal of a bearer token; Unauthorized when missing, unknown, expired or revoked."""
    if not token:
        raise Unauthorized("missing bearer token (Authorization: Bearer tdc_...)")
    row = db.exec(select(ApiToken).where(ApiToken.token_hash == hash_token(token))).first()
    now = utcnow()
    if row is None:
        raise Unauthorized("unknown token")
    if row.revoked_at is not None:
        raise Unauthorized("this token was revoked")
    if row.expires_at is not None and row.expires_at <= now:
        raise Unauthorized("this token has expired")
    team = db.get(Team, row.team_id)
    assert team is not None and row.id is not None
    if row.last_used_at is None or (now - row.last_used_at).total_seconds() >= touch_s:
        row.last_used_at = now
        db.add(row)
        db.commit()
    scope: Scope = "organizer" if row.scope == "organizer" else "participant"
    return Principal(token_id=row.id, team_id=row.team_id, team=team.name, scope=scope)
