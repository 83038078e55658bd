"""SQL tables (SQLModel). Services read and write these; routes never touch them directly.

    team = Team(name="lab")
    sub = db.get(Submission, 7); sub.state            # "queued"
    db.exec(select(TaskScore).where(TaskScore.submission_id == 7)).all()

Times are timezone-aware UTC (``utcnow()``; SQLModel's UTCDateTime stores UTC on both
databases and refuses naive values). States change only in
``server.services.transitions`` (compare-and-set, with a ``SubmissionEvent`` per change).
The migration in ``server/migrations`` must create exactly this schema (a test checks it).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, LargeBinary, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    """Now, timezone-aware UTC (the convention of every time column)."""
    return datetime.now(UTC)


class Team(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True, max_length=100)
    created_at: datetime = Field(default_factory=utcnow)
    # Bumped by every upload of the team: the first write of the upload transaction, so
    # concurrent uploads of one team serialise and the quota count cannot be raced.
    upload_seq: int = 0


class User(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    team_id: int = Field(foreign_key="team.id", index=True)
    name: str = Field(max_length=200)
    email: str | None = Field(default=None, max_length=320)
    created_at: datetime = Field(default_factory=utcnow)


class ApiToken(SQLModel, table=True):
    """A bearer token, stored as the sha256 of its text only (the text is shown once)."""

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(index=True, unique=True, max_length=64)
    prefix: str = Field(max_length=16, description="first characters, to recognise it")
    scope: str = Field(max_length=20)  # participant | organizer
    team_id: int = Field(foreign_key="team.id", index=True)
    user_id: int | None = Field(default=None, foreign_key="user.id")
    note: str | None = Field(default=None, max_length=200)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class Dataset(SQLModel, table=True):
    """A dataset as configured in ``configs/`` (synced at startup) and, if prepared, its size."""

    name: str = Field(primary_key=True, max_length=100)
    task_type: str = Field(max_length=20)
    version: str = Field(max_length=50)
    description: str = Field(default="", sa_column=Column(Text, nullable=False))
    tasks: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON))
    fractions: list[float] = Field(default_factory=list, sa_column=Column(JSON))
    default_recipe: str = Field(max_length=100)
    primary_metric: str = Field(max_length=50)
    secondary_metric: str | None = Field(default=None, max_length=50)
    higher_is_better: bool = True
    pool_size: int | None = None
    synced_at: datetime = Field(default_factory=utcnow)
    # Bumped in the transaction of every change a board of this dataset can show
    # (server.services.transitions); cached boards are built once per value.
    board_version: int = 0


class Submission(SQLModel, table=True):
    __table_args__ = (
        # Idempotency: one live row per (team, dataset, fraction, task, recipe, subset). The
        # key is NULLed when the row is cancelled, so the same subset may be sent again.
        UniqueConstraint("team_id", "dedup_key", name="uq_submission_team_dedup"),
        UniqueConstraint("team_id", "idempotency_key", name="uq_submission_team_idem"),
        Index("ix_submission_claim", "state", "not_before", "created_at"),
        Index("ix_submission_quota", "team_id", "dataset", "created_at"),
        Index("ix_submission_board", "dataset", "fraction", "recipe", "state"),
    )

    id: int | None = Field(default=None, primary_key=True)
    team_id: int = Field(foreign_key="team.id")
    dataset: str = Field(foreign_key="dataset.name", max_length=100)
    fraction: float
    task: str | None = Field(default=None, max_length=100)
    recipe: str = Field(max_length=100)
    kind: str = Field(default="submission", max_length=20)  # submission | baseline | oracle
    name: str | None = Field(default=None, max_length=200)
    sha256: str = Field(index=True, max_length=64, description="the subset's canonical identity")
    file_sha256: str = Field(max_length=64, description="the stored file's content address")
    size: int = Field(description="number of UIDs in the subset")
    file_bytes: int
    dedup_key: str | None = Field(default=None, max_length=400)
    idempotency_key: str | None = Field(default=None, max_length=200)
    state: str = Field(default="queued", max_length=20)
    hidden: bool = False
    disqualified: bool = False
    # One of the team's final picks for the dataset's hidden tests (leaderboard.picks).
    picked: bool = False
    counts_for_quota: bool = True
    attempts: int = 0
    lease_token: str | None = Field(default=None, max_length=64)
    lease_expires_at: datetime | None = None
    not_before: datetime | None = None
    worker: str | None = Field(default=None, max_length=200)
    executor_job_id: str | None = Field(default=None, max_length=200)
    error: str | None = Field(default=None, sa_column=Column(Text))
    log_tail: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    scored_at: datetime | None = None


class SubmissionEvent(SQLModel, table=True):
    """Append-only history: every state change and flag change, who made it and why."""

    id: int | None = Field(default=None, primary_key=True)
    submission_id: int = Field(foreign_key="submission.id", index=True)
    action: str = Field(max_length=30)
    from_state: str | None = Field(default=None, max_length=20)
    to_state: str = Field(max_length=20)
    actor: str = Field(max_length=200)
    reason: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(default_factory=utcnow)


class Evaluation(SQLModel, table=True):
    """The full EvalResult (manifest included) of a scored submission, as posted."""

    submission_id: int = Field(foreign_key="submission.id", primary_key=True)
    recipe_version: str = Field(max_length=50)
    recipe_hash: str = Field(max_length=64)
    code_version: str = Field(max_length=100)
    result: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class Result(SQLModel, table=True):
    """Metrics of one task and one seed."""

    __table_args__ = (UniqueConstraint("submission_id", "task", "seed", name="uq_result"),)

    id: int | None = Field(default=None, primary_key=True)
    submission_id: int = Field(foreign_key="submission.id", index=True)
    task: str = Field(max_length=100)
    seed: int
    metrics: dict[str, float] = Field(sa_column=Column(JSON, nullable=False))
    per_class: dict[str, float] = Field(default_factory=dict, sa_column=Column(JSON))


class Outcome(SQLModel, table=True):
    """One array of one seed's per-test-example outcomes (``submissions.outcomes``), as bytes:
    the ``correct`` bits of a classification seed, ``sq_err`` of a regression seed, ...
    ``n`` examples in the test split's UID order, whose digest is ``uids_sha256``. A reference
    row's seed (a selection seed) stacks ``seeds`` training seeds' outcomes, seed-major."""

    __table_args__ = (UniqueConstraint("submission_id", "task", "seed", "name", name="uq_outcome"),)

    id: int | None = Field(default=None, primary_key=True)
    submission_id: int = Field(foreign_key="submission.id", index=True)
    task: str = Field(max_length=100)
    seed: int
    kind: str = Field(max_length=30)
    name: str = Field(max_length=30)
    n: int
    uids_sha256: str = Field(max_length=64)
    seeds: int = 1
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class TaskScore(SQLModel, table=True):
    """Mean/std over seeds of one task: the rows a board reads (one indexed query)."""

    __table_args__ = (
        UniqueConstraint("submission_id", "task", name="uq_taskscore"),
        Index("ix_taskscore_board", "dataset", "task"),
    )

    id: int | None = Field(default=None, primary_key=True)
    submission_id: int = Field(foreign_key="submission.id", index=True)
    dataset: str = Field(max_length=100)
    task: str = Field(max_length=100)
    test_size: int
    n_seeds: int
    primary: float | None = Field(default=None, description="mean of the primary metric")
    primary_std: float | None = None
    secondary: float | None = None
    secondary_std: float | None = None
    mean: dict[str, float] = Field(sa_column=Column(JSON, nullable=False))
    std: dict[str, float] = Field(sa_column=Column(JSON, nullable=False))
