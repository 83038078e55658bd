"""Seed scored submissions through the real worker path (claim -> post result / fail).

    ids = seed(engine, ctx, [Planned("alpha", {"test1": 0.8, "test2": 0.7})])
    fail_one(engine, ctx, team="beta", message="3 UIDs unknown")
    moderate(engine, ctx, ids[0], "disqualify")

Used by the page, board-API and browser tests; every row is written by the server's own
services, so the boards read exactly what production writes.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlmodel import Session, select

from server.context import ServerContext
from server.models import Submission, Team
from server.services import worker
from server.services.auth import create_team
from submissions.schemas import (
    ClaimRequest,
    EvalResult,
    FailurePost,
    Manifest,
    ResultPost,
    SeedResult,
    TaskResult,
)
from tests.server.helpers import insert_submission

_tags = itertools.count()
ACTOR = "organizer:ops"


@dataclass(frozen=True)
class Planned:
    """One submission to create and score: primary metric per task, spread over seeds."""

    team: str
    accs: dict[str, float]
    fraction: float = 0.1
    task: str | None = None
    kind: str = "submission"
    name: str | None = None
    spread: float = 0.0  # seeds at acc - spread, acc, acc + spread (std = spread * sqrt(2/3))
    recipe_version: str = "1"
    extra: dict[str, float] = field(default_factory=dict)


def ensure_team(engine: Engine, name: str) -> None:
    with Session(engine) as db:
        if db.exec(select(Team).where(Team.name == name)).first() is None:
            create_team(db=db, name=name)


def _seeds(acc: float, spread: float, extra: dict[str, float]) -> list[SeedResult]:
    values = [acc - spread, acc, acc + spread] if spread else [acc]
    return [
        SeedResult(seed=i, metrics={"accuracy": v, "balanced_accuracy": v - 0.05, **extra})
        for i, v in enumerate(values)
    ]


def result_for(sub: Submission, plan: Planned) -> EvalResult:
    tasks = []
    for task, acc in plan.accs.items():
        seeds = _seeds(acc, plan.spread, plan.extra)
        mean = {k: math.fsum(s.metrics[k] for s in seeds) / len(seeds) for k in seeds[0].metrics}
        std = {
            k: math.sqrt(math.fsum((s.metrics[k] - mean[k]) ** 2 for s in seeds) / len(seeds))
            for k in seeds[0].metrics
        }
        tasks.append(TaskResult(task=task, test_size=60, seeds=seeds, mean=mean, std=std))
    return EvalResult(
        dataset=sub.dataset,
        fraction=sub.fraction,
        task=sub.task,
        recipe=sub.recipe,
        subset_size=sub.size,
        tasks=tasks,
        manifest=Manifest(
            code_version="test",
            recipe=sub.recipe,
            recipe_version=plan.recipe_version,
            recipe_hash="abc",
            dataset=sub.dataset,
            dataset_version="0.1",
            dataset_manifest_hash="def",
            subset_sha256=sub.sha256,
            seeds=[s.seed for s in tasks[0].seeds],
            libraries={"numpy": "2"},
            device="cpu",
            wall_time_s=1.0,
        ),
    )


def _claim(engine: Engine, ctx: ServerContext, sid: int) -> str:
    with Session(engine) as db:
        claimed = worker.claim(
            db=db, ctx=ctx, request=ClaimRequest(worker="w", max_jobs=1), actor=ACTOR
        )
    assert [c.id for c in claimed] == [sid], "seed one submission at a time"
    return claimed[0].lease_token


def _insert(engine: Engine, plan: Planned) -> int:
    ensure_team(engine, plan.team)
    sid = insert_submission(
        engine,
        team=plan.team,
        fraction=plan.fraction,
        task=plan.task,
        tag=f"seed{next(_tags)}",
        kind=plan.kind,
    )
    if plan.name:
        with Session(engine) as db:
            sub = db.get(Submission, sid)
            assert sub is not None
            sub.name = plan.name
            db.add(sub)
            db.commit()
    return sid


def seed(engine: Engine, ctx: ServerContext, plans: Sequence[Planned]) -> list[int]:
    """Create, claim and score each planned submission, in order; their ids."""
    ids = []
    for plan in plans:
        sid = _insert(engine, plan)
        token = _claim(engine, ctx, sid)
        with Session(engine) as db:
            sub = db.get(Submission, sid)
            assert sub is not None
            post = ResultPost(lease_token=token, result=result_for(sub, plan))
            worker.post_result(db=db, ctx=ctx, submission_id=sid, post=post, actor=ACTOR)
        ids.append(sid)
    return ids


def fail_one(
    engine: Engine, ctx: ServerContext, *, team: str, message: str, kind: str = "user"
) -> int:
    sid = _insert(engine, Planned(team, {}))
    token = _claim(engine, ctx, sid)
    with Session(engine) as db:
        post = FailurePost(lease_token=token, kind=kind, message=message)  # type: ignore[arg-type]
        worker.fail(db=db, ctx=ctx, submission_id=sid, post=post, actor=ACTOR)
    return sid


def queue_one(engine: Engine, *, team: str) -> int:
    """A queued submission that workers leave alone for a day (so later seeds can be claimed)."""
    from datetime import timedelta

    from server.models import utcnow

    sid = _insert(engine, Planned(team, {}))
    with Session(engine) as db:
        sub = db.get(Submission, sid)
        assert sub is not None
        sub.not_before = utcnow() + timedelta(days=1)
        db.add(sub)
        db.commit()
    return sid


def moderate(engine: Engine, ctx: ServerContext, sid: int, action: str) -> None:
    with Session(engine) as db:
        worker.moderate(
            db=db,
            ctx=ctx,
            submission_id=sid,
            action=action,
            reason="test",
            actor=ACTOR,  # type: ignore[arg-type]
        )
