"""Dataset-board rendering with 10k submissions x 4 tasks, server-side (target: p95 < 100 ms).

    .venv/bin/python -m benchmarks.board_render                     # SQLite, then PostgreSQL
    .venv/bin/python -m benchmarks.board_render --db sqlite --submissions 2000 --requests 100

Seeds the real schema (migrations) with ``--submissions`` scored submissions of the ``demo``
dataset (4 tasks, test4 hidden; 3 fractions; 70% all-task, 30% task-specific; ~1 in 50 a
baseline; events, evaluations, task scores and every seed's per-example outcomes on 1,600
test examples, as the worker writes them; ``--no-outcomes`` leaves those out, so the board
has no intervals), then measures, side by side in one run:

- ``PageService.board_page`` + ``render_board`` with the boards cached (Jinja rendering of
  the whole table every time);
- the same with every cache emptied before each request (the query of ~30k task scores, the
  ranking of every fraction, the outcomes of the rows entries show and their intervals and
  tied groups, the plot series, rendering): what one change of the dataset costs, once; the
  peer here is this uncached path of the same code, since no outside leaderboard runs
  offline;
- ``GET /datasets/demo`` through the ASGI app (what the server does: one board-version query,
  then the rendered page from the cache while the database is unchanged);
- board JSON and CSV (``GET /api/leaderboard/demo?fraction=0.1``) through the ASGI app;
- the HTML page through a real uvicorn server on 127.0.0.1 (sequential, then 20 concurrent
  clients), with the load average printed, since this machine is shared.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, insert
from sqlmodel import Session

from harness.settings import default_configs_dir
from leaderboard.render import ServerLinks, render_board
from server.context import ServerContext
from server.db import make_engine, migrate
from server.models import (
    Evaluation,
    Outcome,
    Submission,
    SubmissionEvent,
    TaskScore,
    Team,
    utcnow,
)
from server.services.page_data import PageService
from server.settings import Settings
from submissions.outcomes import encode_array

TASKS = ("test1", "test2", "test3", "test4")
TEST_SIZE = 1600  # the board: 4 tasks of 1,600 test examples
FRACTIONS = (0.05, 0.1, 0.25)
TARGET_MS = 100.0


def seed(
    engine: Engine, *, n: int, teams: int = 500, rng: random.Random, outcomes: bool = True
) -> None:
    """Bulk-insert ``n`` scored submissions with their events, evaluations and task scores
    (and, with ``outcomes``, every seed's per-example correctness, as the worker posts it)."""
    t0 = utcnow() - timedelta(days=30)
    team_rows = [{"id": i + 1, "name": f"team{i:04d}", "created_at": t0} for i in range(teams)]
    subs, events, evals, scores, outs = [], [], [], [], []
    bits = np.random.default_rng(0)
    skill = [rng.uniform(0.4, 0.9) for _ in range(teams)]
    for sid in range(1, n + 1):
        team = rng.randrange(teams)
        baseline = rng.random() < 0.02
        fraction = rng.choice(FRACTIONS)
        task = None if rng.random() < 0.7 else rng.choice(TASKS)
        at = t0 + timedelta(seconds=sid * 60)
        subs.append(
            dict(
                id=sid,
                team_id=team + 1,
                dataset="demo",
                fraction=fraction,
                task=task,
                recipe="linear_probe",
                kind="baseline" if baseline else "submission",
                name=f"baseline{sid % 7}" if baseline else None,
                sha256=f"{sid:064x}",
                file_sha256=f"{sid:064x}",
                size=int(4300 * fraction),
                file_bytes=1000,
                state="scored",
                created_at=at,
                updated_at=at,
                scored_at=at,
            )
        )
        for k, (frm, to, action) in enumerate(
            (
                (None, "queued", "submit"),
                ("queued", "running", "claim"),
                ("running", "scored", "score"),
            )
        ):
            events.append(
                dict(
                    submission_id=sid,
                    action=action,
                    from_state=frm,
                    to_state=to,
                    actor="bench",
                    created_at=at + timedelta(seconds=k),
                )
            )
        evals.append(
            dict(
                submission_id=sid,
                recipe_version="1",
                recipe_hash="x",
                code_version="bench",
                result={"manifest": {}},
                created_at=at,
            )
        )
        for t in (task,) if task else TASKS:
            acc = min(
                1.0, max(0.0, rng.gauss(skill[team] + 0.05 * FRACTIONS.index(fraction), 0.05))
            )
            std = rng.uniform(0, 0.02)
            scores.append(
                dict(
                    submission_id=sid,
                    dataset="demo",
                    task=t,
                    test_size=TEST_SIZE,
                    n_seeds=3,
                    primary=acc,
                    primary_std=std,
                    secondary=acc - 0.02,
                    secondary_std=std,
                    mean={"accuracy": acc, "balanced_accuracy": acc - 0.02},
                    std={"accuracy": std, "balanced_accuracy": std},
                )
            )
            if outcomes:
                outs += [outcome_row(sid, t, k, bits.random(TEST_SIZE) < acc) for k in range(3)]
    with engine.begin() as conn:
        conn.execute(insert(Team), team_rows)
        for table, rows in (
            (Submission, subs),
            (SubmissionEvent, events),
            (Evaluation, evals),
            (TaskScore, scores),
            (Outcome, outs),
        ):
            for i in range(0, len(rows), 5000):
                conn.execute(insert(table), rows[i : i + 5000])  # type: ignore[arg-type]


def outcome_row(sid: int, task: str, seed: int, correct: np.ndarray) -> dict[str, Any]:
    return dict(submission_id=sid, task=task, seed=seed, kind="correct", name="correct",
                n=TEST_SIZE, uids_sha256="0" * 64, data=encode_array("bits", correct))  # fmt: skip


def timed(fn: Callable[[], Any], repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def summary(name: str, ms: list[float]) -> str:
    ms = sorted(ms)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    verdict = "ok" if p95 < TARGET_MS else "OVER"
    return (
        f"  {name:<44} n={len(ms):<4} p50 {statistics.median(ms):8.2f} ms   p95 {p95:8.2f} ms"
        f"   p95/target {p95 / TARGET_MS:5.2f} {verdict}"
    )


def run(url: str, args: argparse.Namespace, workdir: Path) -> None:
    engine = make_engine(url)
    migrate(engine)
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=url,
        storage_dir=workdir / "storage",
        configs_dir=default_configs_dir(),
    )
    ctx = ServerContext.from_settings(settings)
    with Session(engine) as db:
        ctx.catalog.sync(db)
    t = time.perf_counter()
    seed(engine, n=args.submissions, rng=random.Random(0), outcomes=not args.no_outcomes)
    with engine.begin() as conn:  # the demo pool, so budgets show (the data itself is not needed)
        conn.exec_driver_sql("UPDATE dataset SET pool_size = 4300 WHERE name = 'demo'")
    print(f"  seeded {args.submissions} submissions in {time.perf_counter() - t:.1f} s")
    pages = PageService(ctx)
    links = ServerLinks()

    def board_html() -> str:
        with Session(engine) as db:
            page = pages.board_page(db=db, dataset="demo", fraction=0.1)
            return render_board(page=page, links=links)

    def cold() -> str:  # a fresh PageService: its own empty cache
        with Session(engine) as db:
            page = PageService(ctx).board_page(db=db, dataset="demo", fraction=0.1)
            return render_board(page=page, links=links)

    html = board_html()
    with Session(engine) as db:
        page = pages.board_page(db=db, dataset="demo", fraction=0.1)
    print(f"  board: {len(page.board.entries)} entries at 10%, {len(html) / 1024:.0f} KiB of HTML")
    warm = timed(board_html, args.requests)
    cold_ms = timed(cold, max(5, args.requests // 20))
    print(summary("board_page+render (boards cached)", warm))
    print(summary("board_page+render, no cache (the peer)", cold_ms))
    print(f"  cold / warm p50 ratio: {statistics.median(cold_ms) / statistics.median(warm):.1f}x")
    asgi(settings, engine, args)
    live(settings, url, workdir, args)
    engine.dispose()


def asgi(settings: Settings, engine: Engine, args: argparse.Namespace) -> None:
    from fastapi.testclient import TestClient

    from server.app import create_app

    with TestClient(create_app(settings, engine=engine)) as client:
        for name, path in (
            ("GET /api/leaderboard/demo?fraction=0.1 JSON", "/api/leaderboard/demo?fraction=0.1"),
            (
                "GET /api/leaderboard/demo?fraction=0.1 CSV",
                "/api/leaderboard/demo?fraction=0.1&format=csv",
            ),
            ("GET /datasets/demo?fraction=0.1 (ASGI)", "/datasets/demo?fraction=0.1"),
        ):
            client.get(path)
            print(
                summary(name, timed(lambda p=path: client.get(p).raise_for_status(), args.requests))
            )


def live(settings: Settings, url: str, workdir: Path, args: argparse.Namespace) -> None:
    import httpx

    from server.live import LiveServer

    env = {
        "TDC_DATABASE_URL": url,
        "TDC_STORAGE_DIR": str(workdir / "storage"),
        "TDC_CONFIGS_DIR": str(settings.configs_dir),
    }
    with (
        LiveServer.start(env=env, log_path=workdir / "server.log") as srv,
        httpx.Client(timeout=120) as c,
    ):
        path = srv.url + "/datasets/demo?fraction=0.1"
        c.get(path)
        print(
            summary(
                "uvicorn GET /datasets/demo, sequential",
                timed(lambda: c.get(path).raise_for_status(), args.requests),
            )
        )
        lat: list[float] = []
        lock = threading.Lock()

        def client(k: int) -> None:
            with httpx.Client(timeout=120) as cc:
                for _ in range(k):
                    t = time.perf_counter()
                    cc.get(path).raise_for_status()
                    with lock:
                        lat.append((time.perf_counter() - t) * 1000)

        threads = [
            threading.Thread(target=client, args=(max(1, args.requests // 20),)) for _ in range(20)
        ]
        t = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        wall = time.perf_counter() - t
        print(summary("uvicorn GET /datasets/demo, 20 concurrent", lat))
        print(f"  throughput at 20 concurrent: {len(lat) / wall:.0f} pages/s")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    ap.add_argument("--submissions", type=int, default=10_000)
    ap.add_argument("--no-outcomes", action="store_true",
                    help="seed no per-example outcomes (boards without intervals)")  # fmt: skip
    ap.add_argument("--requests", type=int, default=200)
    args = ap.parse_args()
    load = os.getloadavg()[0]
    print(f"load average {load:.1f} on {os.cpu_count()} CPUs; target p95 < {TARGET_MS:.0f} ms")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.db in ("sqlite", "both"):
            print("SQLite (file, WAL)")
            run(f"sqlite:///{work / 'bench.db'}", args, work / "sqlite")
        if args.db in ("postgres", "both"):
            from tests.infra.postgres import PostgresCluster, PostgresUnavailable

            try:
                cluster = PostgresCluster.start()
            except PostgresUnavailable as err:
                print(f"PostgreSQL skipped: {err}")
                return
            try:
                print("PostgreSQL 15 (throwaway cluster on 127.0.0.1)")
                run(cluster.create_database("bench"), args, work / "pg")
            finally:
                cluster.stop()
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
