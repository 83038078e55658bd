"""Detection boards get intervals and tied groups too: mAP@0.5 is recomputed from each
result's stored per-image matches on every bootstrap resample (submissions.detection_map)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session

from harness.datasets import Dataset
from leaderboard.render import fmt_num
from server.app import create_app
from server.context import ServerContext
from server.db import create_schema, make_engine
from server.models import Submission
from server.services import organizer_ops
from submissions.detection_map import map_of
from submissions.schemas import (
    ClaimRequest,
    EvalResult,
    ExampleOutcomes,
    Manifest,
    ResultPost,
    SeedResult,
    TaskResult,
)
from tests.infra.matches import random_matches
from tests.server.board_seed import ACTOR, ensure_team, get_page
from tests.server.conftest import make_settings
from tests.server.helpers import insert_submission, write_configs


@dataclass
class Served:
    client: TestClient
    engine: Engine
    ctx: ServerContext
    ds: Dataset


@pytest.fixture
def served(demo_detection_dataset: Dataset, tmp_path: Path) -> Iterator[Served]:
    configs = write_configs(demo_detection_dataset, tmp_path / "configs")
    engine = make_engine("sqlite://")
    create_schema(engine)
    settings = make_settings(tmp_path, server_configs=configs,
                             data_root=demo_detection_dataset.dir.root.parent)  # fmt: skip
    app = create_app(settings, engine=engine)
    with TestClient(app) as client:
        yield Served(client, engine, app.state.ctx, demo_detection_dataset)
    engine.dispose()


def score(s: Served, *, team: str, seeds: list[dict[str, dict[str, Any]]]) -> int:
    """A scored all-task submission of ``team``: per seed, the matches of each task."""
    ensure_team(s.engine, team)
    spec = s.ds.spec
    sid = insert_submission(s.engine, team=team, dataset=spec.name, fraction=spec.fractions[0],
                            recipe=spec.default_recipe, tag=team)  # fmt: skip
    tasks = [_task(s.ds, t.name, [m[t.name] for m in seeds]) for t in spec.tasks]
    with Session(s.engine) as db:
        (claimed,) = organizer_ops.claim(db=db, ctx=s.ctx, request=ClaimRequest(worker="w"),
                                         actor=ACTOR)  # fmt: skip
        sub = db.get(Submission, sid)
        assert sub is not None and claimed.id == sid
        recipe = s.ctx.catalog.specs.recipe(sub.recipe)
        result = EvalResult(
            dataset=spec.name, fraction=sub.fraction, task=None, recipe=sub.recipe,
            subset_size=sub.size, tasks=tasks,
            manifest=Manifest(code_version="test", recipe=sub.recipe,
                              recipe_version=recipe.version, recipe_hash="abc",
                              dataset=spec.name, dataset_version=spec.version,
                              dataset_manifest_hash="def", subset_sha256=sub.sha256,
                              seeds=list(range(len(seeds))), libraries={}, device="cpu",
                              wall_time_s=1.0),
        )  # fmt: skip
        post = ResultPost(lease_token=claimed.lease_token, result=result)
        organizer_ops.post_result(db=db, ctx=s.ctx, submission_id=sid, post=post, actor=ACTOR)
    return sid


def _task(ds: Dataset, task: str, seeds: list[dict[str, Any]]) -> TaskResult:
    uids = [str(u) for u in ds.uids(ds.spec.task(task).test)]
    per_seed = [SeedResult(seed=i, metrics=map_of(m),
                           outcomes=ExampleOutcomes.of("detection_matches", m, uids=uids))
                for i, m in enumerate(seeds)]  # fmt: skip
    mean = {k: float(np.mean([p.metrics[k] for p in per_seed])) for k in per_seed[0].metrics}
    std = {k: float(np.std([p.metrics[k] for p in per_seed])) for k in per_seed[0].metrics}
    return TaskResult(task=task, test_size=len(uids), seeds=per_seed, mean=mean, std=std)


def test_detection_entries_get_intervals_and_groups(served: Served) -> None:
    rng = np.random.default_rng(4)
    sizes = {t.name: served.ds.split_size(t.test) for t in served.ds.spec.tasks}

    def entry(skill: float) -> list[dict[str, dict[str, Any]]]:
        return [{t: random_matches(rng, n, skill=skill, classes=10) for t, n in sizes.items()}
                for _ in range(2)]  # fmt: skip

    good = entry(0.8)
    score(served, team="good", seeds=good)
    score(served, team="twin", seeds=[{t: dict(m) for t, m in s.items()} for s in good])
    bad = score(served, team="bad", seeds=entry(0.2))
    spec = served.ds.spec
    params = {"fraction": spec.fractions[0]}
    (board,) = served.client.get(f"/api/leaderboard/{spec.name}", params=params).json()["boards"]
    entries = {e["team"]: e for e in board["entries"]}
    # Replicates kept for the next start: one file per content and board task (twin = good).
    assert len(list(served.ctx.replicates_dir.glob("*.npy"))) == 2 * len(board["tasks"])
    assert [e["team"] for e in board["entries"]] == ["good", "twin", "bad"]
    assert [entries[k]["rank_label"] for k in ("good", "twin", "bad")] == ["1", "=1", "3"]
    for team, e in entries.items():
        low, high = e["score_ci95"]
        assert low < e["score"] < high, team
        for task, cell in e["tasks"].items():
            assert cell["ci95"][0] < cell["mean"] < cell["ci95"][1], (team, task)
    page = get_page(served.client, f"/submissions/{bad}")  # its page: an interval per task
    shown = page.tables[0].column("map50")
    want = [entries["bad"]["tasks"][t]["ci95"] for t in ("test1", "test2", "test3")]
    assert [c.split(" ", 1)[1] for c in shown[:3]] == [f"[{fmt_num(lo)}, {fmt_num(hi)}]"
                                                       for lo, hi in want]  # fmt: skip
