"""Helpers for server tests: rows without uploads, results, subset files."""

from __future__ import annotations

import hashlib
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from server.models import Submission, Team
from server.services import transitions
from submissions.schemas import EvalResult, Manifest, SeedResult, TaskResult

if TYPE_CHECKING:
    from harness.datasets import Dataset
    from server.live import LiveServer


def insert_submission(
    engine: Engine,
    *,
    team: str,
    dataset: str = "tiny",
    fraction: float = 0.1,
    task: str | None = None,
    tag: str = "",
    kind: str = "submission",
    recipe: str = "linear_probe",
) -> int:
    """A queued submission row, as if uploaded (no file), with its 'submit' event."""
    sha = hashlib.sha256(f"{team}{dataset}{fraction}{task}{tag}".encode()).hexdigest()
    with Session(engine) as db:
        t = db.exec(select(Team).where(Team.name == team)).one()
        assert t.id is not None
        sub = Submission(
            team_id=t.id,
            dataset=dataset,
            fraction=fraction,
            task=task,
            recipe=recipe,
            kind=kind,
            sha256=sha,
            file_sha256=sha,
            size=30,
            file_bytes=1000,
            dedup_key=f"{tag}{sha}",
        )
        db.add(sub)
        db.flush()
        transitions.record(db=db, sub=sub, action="submit", actor=f"participant:{team}")
        db.commit()
        assert sub.id is not None
        return sub.id


def make_result(
    *,
    sha256: str,
    tasks: tuple[str, ...] = ("test1", "test2"),
    task: str | None = None,
    fraction: float = 0.1,
    acc: float = 0.8,
    dataset: str = "tiny",
) -> EvalResult:
    return EvalResult(
        dataset=dataset,
        fraction=fraction,
        task=task,
        recipe="linear_probe",
        subset_size=30,
        tasks=[
            TaskResult(
                task=t,
                test_size=60,
                seeds=[SeedResult(seed=0, metrics={"accuracy": acc, "balanced_accuracy": acc})],
                mean={"accuracy": acc, "balanced_accuracy": acc},
                std={"accuracy": 0.0, "balanced_accuracy": 0.0},
            )
            for t in tasks
        ],
        manifest=Manifest(
            code_version="test",
            recipe="linear_probe",
            recipe_version="1",
            recipe_hash="abc",
            dataset=dataset,
            dataset_version="0.1",
            dataset_manifest_hash="def",
            subset_sha256=sha256,
            seeds=[0],
            libraries={},
            device="cpu",
            wall_time_s=1.0,
        ),
    )


def write_subset(path: Path, uids: np.ndarray) -> Path:
    from submissions.subset_file import write_subset_file

    return write_subset_file(path, np.asarray(uids, dtype=str))


def write_configs(ds: Dataset, out: Path) -> Path:
    """A configs dir whose datasets.yaml holds ``ds``'s spec; recipes from the repository."""
    import shutil

    import yaml

    from harness.settings import default_configs_dir

    out.mkdir(parents=True, exist_ok=True)
    spec = ds.spec.model_dump(mode="json", exclude={"name"})
    (out / "datasets.yaml").write_text(yaml.safe_dump({"datasets": {ds.spec.name: spec}}))
    shutil.copy(default_configs_dir() / "recipes.yaml", out / "recipes.yaml")
    return out


@dataclass
class Live:
    server: LiveServer
    tokens: dict[str, str]
    storage: Path
    database_url: str

    @property
    def url(self) -> str:
        return self.server.url


def live_env(root: Path, *, url: str, server_configs: Path, data_root: Path) -> dict[str, str]:
    """The ``TDC_*`` environment of a real server on database ``url``, its files under ``root``."""
    return {"TDC_DATABASE_URL": url, "TDC_CONFIGS_DIR": str(server_configs),
            "TDC_DATA_ROOT": str(data_root), "TDC_STORAGE_DIR": str(root / "storage"),
            "TDC_RUNS_DIR": str(root / "runs")}  # fmt: skip


def start_live(
    root: Path,
    ds: Dataset,
    *,
    teams: dict[str, str],
    database_url: str | None = None,
    **env: str,
) -> Live:
    """Migrate a database, create ``teams`` ({name: scope}) with tokens, start a real server."""
    from server.db import make_engine, migrate
    from server.live import LiveServer
    from server.services.auth import create_team, issue_token

    url = database_url or f"sqlite:///{root / 'tdc.db'}"
    engine = make_engine(url)
    migrate(engine)
    tokens = {}
    with Session(engine) as db:
        for name, scope in teams.items():
            team = create_team(db=db, name=name)
            tokens[name], _ = issue_token(db=db, team=team, scope=scope)  # type: ignore[arg-type]
    engine.dispose()
    storage = root / "storage"
    base = {
        "TDC_DATABASE_URL": url,
        "TDC_STORAGE_DIR": str(storage),
        "TDC_DATA_ROOT": str(ds.dir.root.parent),
        "TDC_CONFIGS_DIR": str(write_configs(ds, root / "configs")),
        "TDC_RUNS_DIR": str(root / "runs"),
        "TDC_RETRY_BACKOFF_S": "0",
    }
    server = LiveServer.start(env={**base, **env}, log_path=root / "server.log")
    return Live(server=server, tokens=tokens, storage=storage, database_url=url)


def count_calls(monkeypatch: pytest.MonkeyPatch, target: str) -> list[tuple[Any, ...]]:
    """Wrap the function at dotted path ``target``; the returned list grows per call."""
    module, name = target.rsplit(".", 1)
    fn = getattr(importlib.import_module(module), name)
    calls: list[tuple[Any, ...]] = []

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return fn(*args, **kwargs)

    monkeypatch.setattr(target, counting)
    return calls


def assert_consistent(engine: Engine, storage_dir: Path, *, grace_s: float = 3600) -> None:
    """What ``tdc-server check`` says after a fault: nothing (``grace_s`` as its --grace-s)."""
    from server.services.integrity import check_integrity
    from server.storage import Storage

    with Session(engine) as db:
        report = check_integrity(db=db, storage=Storage(storage_dir), grace_s=grace_s)
    assert report.ok, "\n".join(map(str, report.findings))


def nested_correct(acc: float, n: int) -> np.ndarray:
    """Correctness bits of ``round(acc * n)`` examples, always the first ones of one fixed
    order: two accuracies a < b give vectors differing on exactly ``(b - a) * n`` examples."""
    order = np.random.default_rng(2026).permutation(n)
    correct = np.zeros(n, bool)
    correct[order[: round(acc * n)]] = True
    return correct


def with_outcomes(
    result: EvalResult, ds: Dataset, *, seeds: int = 2, uids: list[str] | None = None
) -> EvalResult:
    """``result`` with ``seeds`` seeds per task, each with correctness bits over the task's
    test split (or over ``uids``) whose mean is the seed's accuracy."""
    from submissions.schemas import ExampleOutcomes

    tasks = []
    for i, task in enumerate(result.tasks):
        split = uids or list(ds.uids(ds.spec.task(task.task).test))
        per_seed = []
        for seed in range(seeds):
            correct = np.random.default_rng(10 * i + seed).random(len(split)) < 0.7
            acc = float(correct.mean())
            out = ExampleOutcomes.of("correct", {"correct": correct}, uids=split)
            metrics = {"accuracy": acc, "balanced_accuracy": acc}
            per_seed.append(SeedResult(seed=seed, metrics=metrics, outcomes=out))
        tasks.append(task.model_copy(update={"seeds": per_seed, "test_size": len(split)}))
    return result.model_copy(update={"tasks": tasks})


def sha_of(engine: Engine, sid: int) -> str:
    """The subset sha256 of submission ``sid`` (what its result must name)."""
    with Session(engine) as db:
        sub = db.get(Submission, sid)
        assert sub is not None
        return sub.sha256
