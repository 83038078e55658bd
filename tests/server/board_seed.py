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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from server.context import ServerContext
from server.models import Submission, Team
from server.services import organizer_ops
from server.services.auth import create_team, issue_token
from submissions.schemas import (
    ClaimRequest,
    EvalResult,
    ExampleOutcomes,
    FailurePost,
    Manifest,
    ResultPost,
    SeedResult,
    TaskResult,
)
from tests.infra.html_probe import Page, external, parse
from tests.server.helpers import insert_submission, nested_correct

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
    # Per-example outcomes with each seed (nested_correct): accuracy is then k / test size.
    outcomes: bool = False


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


def _with_outcomes(seeds: list[SeedResult], uids: Sequence[str]) -> list[SeedResult]:
    out = []
    for s in seeds:
        correct = nested_correct(s.metrics["accuracy"], len(uids))
        acc = float(correct.mean())
        metrics = {**s.metrics, "accuracy": acc, "balanced_accuracy": acc - 0.05}
        outcomes = ExampleOutcomes.of("correct", {"correct": correct}, uids=uids)
        out.append(s.model_copy(update={"metrics": metrics, "outcomes": outcomes}))
    return out


def result_for(
    sub: Submission, plan: Planned, test_uids: Mapping[str, Sequence[str]] | None = None
) -> EvalResult:
    """The result of ``plan``; with ``plan.outcomes``, ``test_uids`` (per task) are needed."""
    tasks = []
    for task, acc in plan.accs.items():
        seeds = _seeds(acc, plan.spread, plan.extra)
        if plan.outcomes:
            assert test_uids is not None, "outcomes need the test splits' UIDs"
            seeds = _with_outcomes(seeds, test_uids[task])
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
        claimed = organizer_ops.claim(
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


def _test_uids(ctx: ServerContext, dataset: str) -> dict[str, list[str]]:
    ds = ctx.catalog.dataset(dataset)
    return {t.name: [str(u) for u in ds.uids(t.test)] for t in ds.spec.tasks}


def seed(engine: Engine, ctx: ServerContext, plans: Sequence[Planned]) -> list[int]:
    """Create, claim and score each planned submission, in order; their ids."""
    ids = []
    for plan in plans:
        sid = _insert(engine, plan)
        token = _claim(engine, ctx, sid)
        with Session(engine) as db:
            sub = db.get(Submission, sid)
            assert sub is not None
            uids = _test_uids(ctx, sub.dataset) if plan.outcomes else None
            post = ResultPost(lease_token=token, result=result_for(sub, plan, uids))
            organizer_ops.post_result(db=db, ctx=ctx, submission_id=sid, post=post, actor=ACTOR)
        ids.append(sid)
    return ids


def fail_one(
    engine: Engine, ctx: ServerContext, *, team: str, message: str, kind: str = "user"
) -> int:
    sid = _insert(engine, Planned(team, {}))
    token = _claim(engine, ctx, sid)
    with Session(engine) as db:
        post = FailurePost(lease_token=token, kind=kind, message=message)  # type: ignore[arg-type]
        organizer_ops.fail(db=db, ctx=ctx, submission_id=sid, post=post, actor=ACTOR)
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
        organizer_ops.moderate(
            db=db,
            ctx=ctx,
            submission_id=sid,
            action=action,
            reason="test",
            actor=ACTOR,  # type: ignore[arg-type]
        )


# --- reading pages ---------------------------------------------------------------------------


def get_page(client: Any, url: str, **kw: object) -> Page:
    r = client.get(url, **kw)  # type: ignore[arg-type]
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    page = parse(r.text)
    assert external(page.urls) == [], "pages load nothing from outside the host"
    return page


def board_rows(page: Page) -> list[tuple[str, str, str]]:
    """(rank, team or method, score mean) per row."""
    t = page.tables[0]
    first = [c.split(" ")[0] for c in t.column("Team / method")]
    means = [c.split(" ")[0] for c in t.column("accuracy")]
    return list(zip(t.column("Rank"), first, means, strict=True))


# --- the standard world of the page / API / browser tests -----------------------------------


@dataclass(frozen=True)
class World:
    """Submission ids by role, plus (for shared worlds) the app, engine, client and tokens."""

    ids: dict[str, int]
    app: Any = None
    engine: Any = None
    client: Any = None
    tokens: dict[str, str] = field(default_factory=dict)


def build_world(engine: Engine, ctx: ServerContext) -> World:
    """Board of the tiny dataset (test1 public, test2 hidden), see tests/server/test_pages.py."""
    plans = {
        "alpha_all": Planned("alpha", {"test1": 0.80, "test2": 0.60}, spread=0.01),
        # With outcomes (nested: 51 and 50 of 60 test1 examples right, one apart): tied.
        "alpha_t1": Planned(
            "alpha", {"test1": 0.85}, task="test1", name="nearest-query", outcomes=True
        ),
        "beta_all": Planned("beta", {"test1": 50 / 60, "test2": 0.90}, outcomes=True),
        "gamma_t2": Planned("gamma", {"test2": 0.95}, task="test2"),
        "random": Planned(
            "ops", {"test1": 0.5, "test2": 0.5}, kind="baseline", name="random_filter"
        ),
        "oracle": Planned("ops", {"test1": 0.99, "test2": 0.99}, kind="oracle", name="oracle"),
        "delta": Planned("delta", {"test1": 0.97, "test2": 0.97}),
        "epsilon": Planned("epsilon", {"test1": 0.96, "test2": 0.96}),
        "alpha_25": Planned("alpha", {"test1": 0.88, "test2": 0.70}, fraction=0.25),
        "beta_25": Planned("beta", {"test1": 0.86, "test2": 0.92}, fraction=0.25),
    }
    ids = dict(zip(plans, seed(engine, ctx, list(plans.values())), strict=True))
    moderate(engine, ctx, ids["delta"], "disqualify")
    moderate(engine, ctx, ids["epsilon"], "hide")
    ids["failed"] = fail_one(
        engine, ctx, team="beta", message="3 UIDs are not in the pool: a, b, c"
    )
    ids["queued"] = queue_one(engine, team="gamma")
    return World(ids)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def shared_world(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    server_configs: Path,
    data_root: Path,
) -> Iterator[World]:
    """One seeded app per module and database, for tests that only read (seeding is slow)."""
    from fastapi.testclient import TestClient

    from server.app import create_app
    from server.db import create_schema, make_engine
    from tests.server.conftest import _pg_url, make_settings

    sqlite = request.param == "sqlite"
    url = "sqlite://" if sqlite else _pg_url(request.getfixturevalue("pg_cluster"))
    engine = make_engine(url)
    if sqlite:
        create_schema(engine)
    tmp = tmp_path_factory.mktemp("world")
    settings = make_settings(
        tmp, server_configs=server_configs, data_root=data_root, database_url=url
    )
    app = create_app(settings, engine=engine)
    try:
        with TestClient(app) as client:
            tokens = {}
            with Session(engine) as db:
                for name, scope in (
                    ("alpha", "participant"),
                    ("beta", "participant"),
                    ("ops", "organizer"),
                ):
                    team = create_team(db=db, name=name)
                    tokens[name], _ = issue_token(db=db, team=team, scope=scope)  # type: ignore[arg-type]
            world = build_world(engine, app.state.ctx)
            yield World(world.ids, app, engine, client, tokens)
    finally:
        engine.dispose()
