"""Server performance on loopback (bounded): boards under 50 concurrent clients on SQLite and
PostgreSQL, and the memory cost of a 100 MB upload.

    .venv/bin/python -m benchmarks.server                        # both databases, 10k entries
    .venv/bin/python -m benchmarks.server --db sqlite --submissions 2000 --requests 300

For each database: migrate, seed ``--submissions`` scored submissions of ``demo`` (about 4
task scores each; ``benchmarks.board_render.seed``), start a real server (``server.live``,
the default configuration: one uvicorn process, access log on), then drive it with ``wrk``
(``apt-get install wrk``; a C load generator, so the client's own cost does not inflate the
server's tail on these 2 shared cores) with ``--clients`` connections for ``--wrk-seconds``
per path. Printed: p50/p95/p99, requests per second and errors, side by side with the
issue's targets (``GET /api/leaderboard/demo?fraction=0.1``: p95 < 50 ms; the HTML board
``/datasets/demo?fraction=0.1``: p95 < 100 ms) and with ``GET /api/info`` for scale (a
request doing no work but routed through FastAPI; a repeated public board skips routing,
see ``server.routes.fastlane``). Each path is driven twice: as a browser or httpx asks
(``Accept-Encoding: gzip``) and uncompressed (``identity``, wrk's default).

``--python-client`` adds the old measurement: asyncio httpx clients in this process (they share
the cores with the server, so their numbers are client-bound). Upload: a 100 MB file streamed
to a server whose RSS is sampled every 5 ms; target: RSS grows by < 50 MB.

Reusable: ``prepare_database(url, workdir, n)`` seeds a database and returns the server
environment; ``drive(url, clients=..., requests=...)`` returns per-request latencies (ms).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import httpx

TARGETS_MS = {"/api/leaderboard/demo?fraction=0.1": 50.0, "/datasets/demo?fraction=0.1": 100.0}
FLOOR = "/api/info"


def prepare_database(url: str, workdir: Path, n: int) -> dict[str, str]:
    """Migrate ``url``, sync the datasets, seed ``n`` scored demo submissions; server env."""
    from sqlmodel import Session

    from benchmarks.board_render import seed
    from harness.settings import default_configs_dir
    from server.context import ServerContext
    from server.db import make_engine, migrate
    from server.settings import Settings

    engine = make_engine(url)
    migrate(engine)
    env = {
        "TDC_DATABASE_URL": url,
        "TDC_STORAGE_DIR": str(workdir / "storage"),
        "TDC_CONFIGS_DIR": str(default_configs_dir()),
        "TDC_DATA_ROOT": str(workdir / "data"),
    }
    settings = Settings(_env_file=None, database_url=url, storage_dir=workdir / "storage")  # type: ignore[call-arg]
    with Session(engine) as db:
        ServerContext.from_settings(settings).catalog.sync(db)
    seed(engine, n=n, rng=random.Random(0))
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE dataset SET pool_size = 4300 WHERE name = 'demo'")
    engine.dispose()
    return env


async def _drive(url: str, clients: int, requests: int) -> list[float]:
    lat: list[float] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        await http.get(url)  # warm the server's caches

        async def one_client(k: int) -> None:
            for _ in range(k):
                t = time.perf_counter()
                (await http.get(url)).raise_for_status()
                lat.append((time.perf_counter() - t) * 1000)

        per = max(1, requests // clients)
        await asyncio.gather(*(one_client(per) for _ in range(clients)))
    return lat


def drive(url: str, *, clients: int, requests: int) -> list[float]:
    """``requests`` GETs of ``url`` from ``clients`` concurrent connections; latencies in ms."""
    return asyncio.run(_drive(url, clients, requests))


def p95(ms: list[float]) -> float:
    s = sorted(ms)
    return s[min(len(s) - 1, round(0.95 * (len(s) - 1)))]


def line(name: str, ms: list[float], target: float | None) -> str:
    ratio = (
        f"p95/target {p95(ms) / target:5.2f} {'ok' if p95(ms) < target else 'OVER'}"
        if target
        else ""
    )
    return (f"  {name:<40} n={len(ms):<5} p50 {statistics.median(ms):8.1f} ms  "
            f"p95 {p95(ms):8.1f} ms  {ratio}")  # fmt: skip


def bench_database(label: str, url: str, workdir: Path, args: argparse.Namespace) -> None:
    from server.live import LiveServer

    t = time.perf_counter()
    env = prepare_database(url, workdir, args.submissions)
    print(f"{label}: seeded {args.submissions} submissions in {time.perf_counter() - t:.1f} s")
    with LiveServer.start(env=env, log_path=workdir / "server.log") as srv:
        if shutil.which("wrk") is None:
            print("  wrk not installed (apt-get install wrk): no latency verdict")
        elif args.wrk_seconds:
            for encoding in ("gzip", "identity"):
                print(f"  wrk, {args.clients} connections, Accept-Encoding: {encoding}")
                for path in (FLOOR, *TARGETS_MS):
                    print(wrk_line(srv.url + path, clients=args.clients, seconds=args.wrk_seconds,
                                   target=TARGETS_MS.get(path), workdir=workdir,
                                   encoding=encoding))  # fmt: skip
            if args.changes_per_s:
                bench_under_changes(url, srv.url, args, workdir)
        if args.python_client:
            print(f"  Python httpx clients ({args.clients}, in this process: client-bound)")
            for path in (FLOOR, *TARGETS_MS):
                ms = drive(srv.url + path, clients=args.clients, requests=args.requests)
                print(line(f"GET {path}", ms, TARGETS_MS.get(path)))


def bench_under_changes(db_url: str, server: str, args: argparse.Namespace, workdir: Path) -> None:
    """The same boards while the database changes ``--changes-per-s`` times a second.

    Each change is an event row written by this process (for the server: another process's
    write, seen within ``TDC_BOARD_REVALIDATE_S``), so every change invalidates every board
    and one viewer pays a full rebuild (~0.6 s at 10k submissions) while the others are
    served the previous board.
    """
    from sqlalchemy import text

    from server.db import make_engine

    engine, stop = make_engine(db_url), threading.Event()

    def write() -> None:
        insert = text("INSERT INTO submissionevent (submission_id, action, from_state, to_state, "
                      "actor, reason, created_at) VALUES (1, 'hide', 'scored', 'scored', "
                      "'bench', 'a board change', CURRENT_TIMESTAMP)")  # fmt: skip
        while not stop.wait(1.0 / args.changes_per_s):
            with engine.begin() as conn:
                conn.execute(insert)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    print(f"  wrk while the boards change {args.changes_per_s:g} times a second, gzip")
    try:
        for path in TARGETS_MS:
            print(wrk_line(server + path, clients=args.clients, seconds=args.wrk_seconds,
                           target=TARGETS_MS[path], workdir=workdir, encoding="gzip"))  # fmt: skip
    finally:
        stop.set()
        writer.join()
        engine.dispose()


_WRK_REPORT = """done = function(summary, latency, requests)
  io.write(string.format("%d %.3f %.3f %.3f %.1f %d\\n", summary.requests,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000, summary.requests / (summary.duration / 1e6),
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.timeout))
end
"""


def wrk_line(
    url: str,
    *,
    clients: int,
    seconds: int,
    target: float | None,
    workdir: Path,
    encoding: str = "identity",
) -> str:
    """Drive ``url`` with wrk (one thread, ``clients`` connections); one summary line."""
    script = workdir / "report.lua"
    script.write_text(_WRK_REPORT)
    header = ["-H", f"Accept-Encoding: {encoding}"]
    subprocess.run(["wrk", "-t1", "-c2", "-d1s", *header, url], capture_output=True, check=False)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{clients}", f"-d{seconds}s", *header, "-s", str(script), url],
        capture_output=True, text=True, check=True,
    ).stdout.strip().splitlines()[-1].split()  # fmt: skip
    n, p50, p95_, p99, rps, errors = int(out[0]), *map(float, out[1:5]), int(out[5])
    verdict = (
        f"p95/target {p95_ / target:5.2f} {'ok' if p95_ < target else 'OVER'}" if target else ""
    )
    path = url.split("/", 3)[-1]
    return (f"  wrk /{path:<39} n={n:<5} p50 {p50:8.1f} ms  p95 {p95_:8.1f} ms  "
            f"p99 {p99:6.1f} ms  {rps:6.0f} req/s  errors {errors}  {verdict}")  # fmt: skip


def _rss_sampler(pid: int, stop: threading.Event, out: list[int]) -> None:
    import psutil

    proc = psutil.Process(pid)
    while not stop.is_set():
        out.append(proc.memory_info().rss)
        time.sleep(0.005)


def bench_upload(workdir: Path, mb: int) -> None:
    """RSS growth of the server while it receives an ``mb`` MB subset file."""
    import numpy as np
    from sqlmodel import Session

    from server.db import make_engine, migrate
    from server.live import LiveServer
    from server.services.auth import create_team, issue_token

    url = f"sqlite:///{workdir / 'upload.db'}"
    env = prepare_database(url, workdir, 0)
    env["TDC_MAX_UPLOAD_BYTES"] = str((mb + 10) << 20)
    engine = make_engine(url)
    migrate(engine)
    with Session(engine) as db:
        token, _ = issue_token(db=db, team=create_team(db=db, name="big"), scope="participant")
    engine.dispose()
    # A valid .npy of float64: streamed whole to the staging file, then refused (by dtype, or
    # earlier when the benchmark's data root has no prepared demo: the file is staged anyway).
    path = workdir / "big.npy"
    np.save(path, np.zeros((mb << 20) // 8, dtype=np.float64))
    with LiveServer.start(env=env, log_path=workdir / "upload.log") as srv, path.open("rb") as f:
        for _ in range(3):
            httpx.get(srv.url + "/api/datasets")
        samples: list[int] = []
        stop = threading.Event()
        sampler = threading.Thread(target=_rss_sampler, args=(srv.pid, stop, samples))
        sampler.start()
        time.sleep(0.2)
        t = time.perf_counter()
        r = httpx.post(srv.url + "/api/submissions", headers={"Authorization": f"Bearer {token}"},
                       data={"dataset": "demo", "fraction": "0.1"},
                       files={"file": ("big.npy", f)}, timeout=600)  # fmt: skip
        wall = time.perf_counter() - t
        time.sleep(0.2)
        stop.set()
        sampler.join()
    base, peak = samples[0] / 2**20, max(samples) / 2**20
    grow = peak - base
    print(f"upload of {path.stat().st_size / 2**20:.0f} MB: HTTP {r.status_code} "
          f"({r.json()['problems'][0]['code']}) in {wall:.1f} s; server RSS {base:.0f} -> "
          f"{peak:.0f} MB: +{grow:.1f} MB (target < 50 MB: {'ok' if grow < 50 else 'OVER'}; "
          f"{grow / 50:.2f} of it)")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    ap.add_argument("--submissions", type=int, default=10_000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--requests", type=int, default=1000, help="per path, --python-client")
    ap.add_argument("--python-client", action="store_true")
    ap.add_argument("--changes-per-s", type=float, default=1.0, help="0: no run under changes")
    ap.add_argument("--upload-mb", type=int, default=100)
    ap.add_argument("--wrk-seconds", type=int, default=10, help="0 disables the wrk run")
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; "
          f"{args.clients} concurrent clients")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.db in ("sqlite", "both"):
            bench_database("SQLite (file, WAL)", f"sqlite:///{work / 'bench.db'}", work / "s", args)
        if args.db in ("postgres", "both"):
            from tests.infra.postgres import PostgresCluster, PostgresUnavailable

            try:
                cluster = PostgresCluster.start()
            except PostgresUnavailable as err:
                print(f"PostgreSQL skipped: {err}")
            else:
                try:
                    url = cluster.create_database("bench")
                    bench_database("PostgreSQL 15 (127.0.0.1)", url, work / "p", args)
                finally:
                    cluster.stop()
        if args.upload_mb:
            (work / "u").mkdir()
            bench_upload(work / "u", args.upload_mb)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
