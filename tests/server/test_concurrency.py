"""200 concurrent uploads against a real server on 127.0.0.1, killed (SIGKILL) and restarted
in the middle: every acknowledged submission is in the database and on disk exactly once,
and the integrity check (``tdc-server check``) finds nothing wrong. Runs on a SQLite file
and on PostgreSQL."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlmodel import Session, select

from harness.datasets import Dataset
from server.db import make_engine
from server.models import Submission
from server.storage import Storage
from tests.infra.postgres import PostgresCluster
from tests.server.conftest import _pg_url
from tests.server.helpers import Live, assert_consistent, start_live, write_subset

N_UPLOADS, N_CLIENTS, KILL_AFTER = 200, 16, 70


@pytest.fixture(params=["sqlite-file", pytest.param("postgres", marks=pytest.mark.postgres)])
def live(request: pytest.FixtureRequest, tmp_path: Path, tiny_dataset: Dataset) -> Iterator[Live]:
    url = None
    if request.param == "postgres":
        cluster: PostgresCluster | None = request.getfixturevalue("pg_cluster")
        url = _pg_url(cluster)
    srv = start_live(tmp_path, tiny_dataset, teams={"alpha": "participant"}, database_url=url,
                     TDC_QUOTA_PER_DAY="100000")  # fmt: skip
    yield srv
    srv.server.stop()


def _files(tmp: Path, pool: np.ndarray) -> list[Path]:
    rng = np.random.default_rng(0)
    seen: set[tuple[str, ...]] = set()
    out = []
    while len(out) < N_UPLOADS:
        pick = tuple(sorted(rng.choice(pool, size=30, replace=False)))
        if pick not in seen:
            seen.add(pick)
            out.append(write_subset(tmp / f"u{len(out)}.npy", np.array(pick)))
    return out


def test_acknowledged_uploads_survive_a_crash(
    live: Live, tmp_path: Path, tiny_dataset: Dataset
) -> None:
    paths = _files(tmp_path, tiny_dataset.uids("train"))
    acked: dict[int, int] = {}  # upload number -> submission id
    lock = threading.Lock()
    restarted = threading.Event()
    acked_before_kill: dict[int, int] = {}

    errors: list[BaseException] = []
    deadline = time.monotonic() + 300
    # One pooled client: a fresh httpx client per call builds an SSL context each time,
    # enough CPU to starve the restarting server on a 2-core machine.
    http = httpx.Client(timeout=60, limits=httpx.Limits(max_connections=N_CLIENTS))

    def send(i: int) -> None:
        headers = {"Authorization": f"Bearer {live.tokens['alpha']}", "Idempotency-Key": f"k{i}"}
        while time.monotonic() < deadline and not errors:  # the server may be down a while
            try:
                with paths[i].open("rb") as f:
                    r = http.post(f"{live.url}/api/submissions", headers=headers,
                                   data={"dataset": "tiny", "fraction": "0.1"},
                                   files={"file": (paths[i].name, f)})  # fmt: skip
            except httpx.TransportError:
                time.sleep(0.25)
                continue
            if r.status_code >= 500:
                time.sleep(0.25)
                continue
            assert r.status_code in (200, 201), r.text
            with lock:
                acked[i] = r.json()["id"]
            return
        raise AssertionError(f"upload {i} never acknowledged: {errors}")

    def killer() -> None:
        try:
            while len(acked) < KILL_AFTER:
                time.sleep(0.01)
            with lock:
                acked_before_kill.update(acked)
            live.server.restart(kill=True)
            restarted.set()
        except BaseException as err:
            errors.append(err)
            raise

    k = threading.Thread(target=killer)
    k.start()
    with ThreadPoolExecutor(N_CLIENTS) as pool:
        list(pool.map(send, range(N_UPLOADS)))
    k.join(timeout=120)
    http.close()
    assert not errors, f"{errors}: {live.server.tail()}"
    assert restarted.is_set() and len(acked_before_kill) >= KILL_AFTER
    assert len(acked) == N_UPLOADS and len(set(acked.values())) == N_UPLOADS

    engine = make_engine(live.database_url)
    with Session(engine) as db:
        subs = {s.id: s for s in db.exec(select(Submission)).all()}
    assert_consistent(engine, live.storage)  # `tdc-server check` finds nothing wrong
    engine.dispose()
    assert set(subs) == set(acked.values()), "rows differ from what was acknowledged"
    for i, sid in acked_before_kill.items():  # nothing acknowledged before the crash was lost
        assert subs[sid].idempotency_key == f"k{i}"
    storage = Storage(live.storage)
    on_disk = {p.stem for p in storage.subsets_dir.rglob("*.npy")}
    for i, sid in acked.items():
        digest = hashlib.sha256(paths[i].read_bytes()).hexdigest()
        assert subs[sid].file_sha256 == digest
        assert storage.path_for(digest).read_bytes() == paths[i].read_bytes()
    assert on_disk == {s.file_sha256 for s in subs.values()}  # each file stored exactly once
