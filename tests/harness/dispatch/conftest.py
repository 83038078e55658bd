"""Dispatch fixtures: a configs dir for ``tiny`` and a live server (the session's SLURM
cluster is the ``slurm`` fixture of tests/harness/conftest.py)."""

from __future__ import annotations

import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from sqlalchemy import Engine

from harness.datasets import Dataset
from harness.settings import default_configs_dir
from submissions.client import TdcClient
from submissions.schemas import SubmissionDetail, SubmissionPublic
from submissions.subset_file import write_subset_file
from tests.server.helpers import assert_consistent


@pytest.fixture(scope="session")
def dispatch_configs(tiny_dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A configs dir with the tiny dataset, the repository's recipes and executor presets."""
    out = tmp_path_factory.mktemp("dispatch-configs")
    spec = tiny_dataset.spec.model_dump(mode="json", exclude={"name"})
    (out / "datasets.yaml").write_text(yaml.safe_dump({"datasets": {"tiny": spec}}))
    for name in ("recipes.yaml", "executors.yaml"):
        shutil.copy(default_configs_dir() / name, out / name)
    return out


@dataclass
class LiveServer:
    """The real server app on a loopback uvicorn with a tmp SQLite file."""

    base_url: str
    organizer_token: str
    tokens: dict[str, str]
    engine: Engine
    tmp: Path

    def client(self, team: str | None = None) -> TdcClient:
        return TdcClient(self.base_url, self.tokens[team] if team else self.organizer_token)

    def submit(
        self, uids: Sequence[str], *, team: str = "alpha", fraction: float = 0.1,
        task: str | None = None,
    ) -> SubmissionPublic:  # fmt: skip
        path = self.tmp / f"sub-{uuid.uuid4().hex[:8]}.npy"
        write_subset_file(path, list(uids))
        with self.client(team) as c:
            return c.submit(path, dataset="tiny", fraction=fraction, task=task)

    def detail(self, submission_id: int) -> SubmissionDetail:
        with self.client() as c:
            return c.get(submission_id)

    def events(self, submission_id: int) -> list[str]:
        return [e.action for e in self.detail(submission_id).events]

    def assert_consistent(self) -> None:
        """``tdc-server check`` on this server's database and storage finds nothing."""
        assert_consistent(self.engine, self.tmp / "storage")


@pytest.fixture
def live_server(
    tmp_path: Path, dispatch_configs: Path, tiny_dataset: Dataset
) -> Iterator[LiveServer]:
    with serve(tmp_path, dispatch_configs, tiny_dataset) as server:
        yield server


@contextmanager
def serve(
    tmp_path: Path, configs: Path, ds: Dataset, *, database_url: str | None = None
) -> Iterator[LiveServer]:
    """The app on a loopback uvicorn thread: a new SQLite file, or ``database_url`` (empty,
    migrated here), with teams alpha, beta (participants) and ops (organizer)."""
    import uvicorn
    from sqlmodel import Session

    from server.app import create_app
    from server.db import make_engine, migrate
    from server.services.auth import create_team, issue_token
    from server.settings import Settings

    port = _free_port()
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=database_url or f"sqlite:///{tmp_path / 'tdc.db'}",
        storage_dir=tmp_path / "storage",
        data_root=ds.dir.root.parent,
        configs_dir=configs,
        runs_dir=tmp_path / "server-runs",
        base_url=f"http://127.0.0.1:{port}",
        quota_per_day=1000,
        retry_backoff_s=0,
        max_attempts=3,
        board_rank_process=False,
    )
    engine = make_engine(settings.database_url)
    migrate(engine)
    tokens: dict[str, str] = {}
    with Session(engine) as db:
        teams = (("alpha", "participant"), ("beta", "participant"), ("ops", "organizer"))
        for name, scope in teams:
            team = create_team(db=db, name=name)
            tokens[name], _ = issue_token(db=db, team=team, scope=scope)  # type: ignore[arg-type]
    app = create_app(settings, engine=engine)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield LiveServer(settings.base_url, tokens["ops"], tokens, engine, tmp_path)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        engine.dispose()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
