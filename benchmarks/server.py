"""Server performance on loopback (bounded): boards under 50 concurrent clients on SQLite and
PostgreSQL, and the memory cost of 100 MB and 1 GiB uploads (really validated).

    .venv/bin/python -m benchmarks.server                        # both databases, 10k entries
    .venv/bin/python -m benchmarks.server --db sqlite --submissions 2000 --requests 300

For each database: migrate, seed ``--submissions`` scored submissions of ``demo`` (about 4
task scores each; ``benchmarks.board_render.seed``), then three cases, each a real server
(``server.live``: ``tdc-server serve``, access log on) driven by ``wrk`` (``apt-get install
wrk``; a C load generator, so the client's own cost does not inflate the server's tail on
these shared cores) with ``--clients`` connections for ``--wrk-seconds`` per path, as a
browser asks (``Accept-Encoding: gzip``):

- static, one process;
- one change per second, one process: a writer in this process hides or unhides a scored
  submission through ``server.services.transitions`` every second (the board changes; the
  server learns of it from the board version, as of any other process's write);
- the same with ``--workers 2``.

Printed per case: p50/p95/p99, requests per second and errors, side by side with the issue's
targets (``GET /api/leaderboard/demo?fraction=0.1``: p95 < 50 ms; the HTML board
``/datasets/demo?fraction=0.1``: p95 < 100 ms) and, static, ``GET /api/info`` for scale (a
request doing no work but routed through FastAPI). Then memory: the server's RSS before and
after ``--urls`` distinct board URLs (each a different ``version``, so a different body to
build and keep) sent with an 8 KiB ``Accept`` header; target: growth < 50 MB.

``--python-client`` adds the old measurement: asyncio httpx clients in this process (they share
the cores with the server, so their numbers are client-bound).

Uploads (``--upload-mb 100,1024``; ``--db none`` for these alone): files of S16 demo UIDs (the
pool over and over, one in eight unknown, some of those twice), each uploaded to a fresh
server with the demo prepared, after a small warm-up upload; the server's peak RSS (VmHWM,
reset just before) minus its RSS before. The upload must be validated (HTTP 201 or 422, else
the benchmark fails: a 404 ``data_not_found`` answered before the body is read measures
nothing). Printed next to the same upload to a server with the previous validator (the whole
array resolved at once, ``--no-before`` skips it; ~4.5 GB for 1 GiB), with the ratio; target:
growth < 50 MB for 100 MB, < 100 MB for 1 GiB (issue 17, finding 10).

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
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from server.live import LiveServer

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


CASES = (("static, 1 process", 1, False), ("one change per second, 1 process", 1, True),
         ("--workers 2, one change per second", 2, True))  # fmt: skip


def bench_database(label: str, url: str, workdir: Path, args: argparse.Namespace) -> None:
    t = time.perf_counter()
    env = prepare_database(url, workdir, args.submissions)
    print(f"{label}: seeded {args.submissions} submissions in {time.perf_counter() - t:.1f} s")
    if shutil.which("wrk") is None:
        print("  wrk not installed (apt-get install wrk): no latency verdict")
    for case, workers, changing in CASES if args.wrk_seconds else ():
        with LiveServer.start(env=env, log_path=workdir / "server.log", workers=workers) as srv:
            print(f"  {case}: wrk, {args.clients} connections, Accept-Encoding: gzip")
            with changes(url, per_s=1.0 if changing else 0.0):
                for path in (*(() if changing else (FLOOR,)), *TARGETS_MS):
                    print(wrk_line(srv.url + path, clients=args.clients, seconds=args.wrk_seconds,
                                   target=TARGETS_MS.get(path), workdir=workdir,
                                   encoding="gzip"))  # fmt: skip
    with LiveServer.start(env=env, log_path=workdir / "server.log") as srv:
        if args.urls:
            print(distinct_urls(srv.url, srv.pid, n=args.urls))
        if args.python_client:
            print(f"  Python httpx clients ({args.clients}, in this process: client-bound)")
            for path in (FLOOR, *TARGETS_MS):
                ms = drive(srv.url + path, clients=args.clients, requests=args.requests)
                print(line(f"GET {path}", ms, TARGETS_MS.get(path)))


@contextmanager
def changes(db_url: str, *, per_s: float) -> Iterator[None]:
    """While inside: a scored submission hidden or unhidden ``per_s`` times a second, through
    the state machine (so its board version is bumped, as by any real change)."""
    if not per_s:
        yield
        return
    from sqlmodel import Session

    from server.db import make_engine
    from server.models import Submission
    from server.services.transitions import set_flag

    engine, stop = make_engine(db_url), threading.Event()

    def write() -> None:
        hidden = False
        while not stop.wait(1.0 / per_s):
            hidden = not hidden
            with Session(engine) as db:
                sub = db.get(Submission, 1)
                assert sub is not None
                set_flag(db=db, sub=sub, flag="hidden", value=hidden, actor="bench",
                         reason="a board change")  # fmt: skip
                db.commit()

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        yield
    finally:
        stop.set()
        writer.join()
        engine.dispose()


def distinct_urls(server: str, pid: int, *, n: int, clients: int = 8) -> str:
    """Server RSS before and after ``n`` distinct board URLs (8 KiB ``Accept`` each)."""
    import psutil

    proc = psutil.Process(pid)
    headers = {"Accept": "application/json, " + "x" * 8192}
    with httpx.Client() as http:
        http.get(server + "/api/leaderboard/demo?fraction=0.1", headers=headers)
    before = proc.memory_info().rss

    def client(k: int) -> None:
        with httpx.Client(base_url=server, timeout=60) as http:
            for i in range(k, n, clients):
                path = f"/api/leaderboard/demo?fraction=0.1&version=v{i}&utm={i}"
                http.get(path, headers=headers).raise_for_status()

    t = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    grow = (proc.memory_info().rss - before) / 2**20
    return (f"  {n} distinct board URLs in {time.perf_counter() - t:.0f} s: server RSS "
            f"{before / 2**20:.0f} MB -> +{grow:.1f} MB (target < 50 MB: "
            f"{'ok' if grow < 50 else 'OVER'})")  # fmt: skip


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
    # Warm every worker process (connections spread over them) before measuring.
    subprocess.run(["wrk", "-t1", "-c10", "-d2s", *header, url], capture_output=True, check=False)
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


# --- uploads: the server's memory while it receives and validates a large file --------------


def write_upload(path: Path, pool: np.ndarray, mb: int, *, every: int = 8) -> int:
    """``mb`` MiB of S16 UIDs: the pool over and over, every ``every``-th an unknown UID
    (600k distinct: some named twice). Written by blocks; returns the number of UIDs."""
    n = (mb << 20) // 16
    out = np.lib.format.open_memmap(path, mode="w+", dtype="S16", shape=(n,))
    block = 1 << 22
    for start in range(0, n, block):
        pos = np.arange(start, min(n, start + block))
        uids = pool[pos % len(pool)]
        odd = pos[pos % every == 0]
        uids[pos % every == 0] = np.char.add(b"zz", (odd // every % 600_000).astype("S14"))
        out[start : start + len(pos)] = uids
    out.flush()
    del out
    return n


def previous_validator(
    path: Path, *, ds: Any, fraction: float, task: str | None, max_bytes: int
) -> Any:
    """The upload validator before issue 17 (finding 10): the whole array resolved at once
    (``check_subset`` on the file's mapping), for the "before" figure. (Its content scan now
    reads the file too, but resolving the array still walks all of the mapping.)"""
    from harness.validation import validate_subset
    from submissions.errors import ValidationFailed
    from submissions.subset_file import read_subset_file

    subset = read_subset_file(path, max_bytes=max_bytes)
    report = validate_subset(subset, ds=ds, fraction=fraction, task=task)
    if not report.ok:
        raise ValidationFailed(report.problems)
    return report


def serve_previous() -> None:
    """``python -m benchmarks.server _serve-previous``: the server of ``TDC_*`` (migrated)
    with ``previous_validator`` as its upload validator."""
    import uvicorn

    from server.app import create_app
    from server.context import ServerContext
    from server.settings import Settings

    settings = Settings()
    ctx = ServerContext.from_settings(settings)
    ctx.validator = previous_validator
    app = create_app(settings, ctx=ctx)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")


class PreviousServer(LiveServer):
    """A live server whose uploads go through ``previous_validator``."""

    def _spawn(self, timeout_s: float) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.server", "_serve-previous"],
                env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if httpx.get(self.url + "/api/info", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop(kill=True)
        raise RuntimeError(f"previous-validator server did not start: {self.tail()}")


def _status_mb(pid: int, key: str) -> float:
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith(key + ":"):
            return int(row.split()[1]) / 1024
    raise RuntimeError(f"no {key} for process {pid}")


@dataclass(frozen=True)
class Upload:
    status: int
    problems: list[dict[str, Any]]
    grow_mb: float  # peak RSS (VmHWM, reset before the upload) minus RSS before it
    wall_s: float


def upload_once(server: LiveServer, token: str, path: Path, warm: Path) -> Upload:
    """Upload ``warm`` (a small valid file), then measure ``path``'s upload. A status other
    than 201 or 422 means the file was not validated (e.g. 404 data_not_found): an error."""
    auth = {"Authorization": f"Bearer {token}"}
    form = {"dataset": "demo", "fraction": "0.1"}
    with warm.open("rb") as f:  # imports, caches and the index: before the measurement
        r = httpx.post(server.url + "/api/submissions", headers=auth, data=form,
                       files={"file": ("warm.npy", f)}, timeout=60)  # fmt: skip
    if r.status_code != 201:
        raise SystemExit(f"warm-up upload answered {r.status_code}: {r.text[:500]}")
    Path(f"/proc/{server.pid}/clear_refs").write_text("5")  # the peak (VmHWM) restarts here
    base = _status_mb(server.pid, "VmRSS")
    t = time.perf_counter()
    with path.open("rb") as f:
        r = httpx.post(server.url + "/api/submissions", headers=auth, data=form,
                       files={"file": ("big.npy", f)}, timeout=1800)  # fmt: skip
    wall = time.perf_counter() - t
    if r.status_code not in (201, 422):
        raise SystemExit(f"upload of {path.name} answered {r.status_code}, not validated: "
                         f"{r.text[:500]}")  # fmt: skip
    problems = r.json().get("problems", [])
    return Upload(r.status_code, problems, _status_mb(server.pid, "VmHWM") - base, wall)


def bench_upload(workdir: Path, sizes_mb: list[int], *, before: bool) -> None:
    """Peak server RSS growth while it receives and validates S16 files of ``sizes_mb`` MiB,
    ours against the previous validator (each upload on a fresh server)."""
    from sqlmodel import Session

    from harness.datasets.preparers import prepare_dataset
    from harness.settings import HarnessSettings
    from harness.specs import load_benchmark
    from server.db import make_engine
    from server.services.auth import create_team, issue_token

    settings = HarnessSettings(data_root=workdir / "data")
    ds = prepare_dataset(spec=load_benchmark(settings.configs_dir).dataset("demo"),
                         settings=settings)  # fmt: skip
    ds.uid_index()
    url = f"sqlite:///{workdir / 'upload.db'}"
    env = prepare_database(url, workdir, 0)
    env["TDC_MAX_UPLOAD_BYTES"] = str((max(sizes_mb) + 10) << 20)
    env["TDC_QUOTA_PER_DAY"] = "1000"
    engine = make_engine(url)
    with Session(engine) as db:
        token, _ = issue_token(db=db, team=create_team(db=db, name="big"), scope="participant")
    engine.dispose()
    pool = ds.uids("train").astype("S16")
    warm = workdir / "warm.npy"
    print(f"uploads to demo (pool {len(pool):,}, budget {len(pool) // 10}): S16 UIDs, one in 8 "
          "unknown; peak server RSS growth (VmHWM), each upload on a fresh server")  # fmt: skip
    kinds: tuple[tuple[str, type[LiveServer]], ...] = (("ours", LiveServer),)
    if before:
        kinds += (("before", PreviousServer),)
    warm_sets = iter(range(0, len(pool), 10))  # each warm-up a new subset: answered 201
    for mb in sizes_mb:
        path = workdir / f"upload-{mb}.npy"
        n = write_upload(path, pool, mb)
        runs = {}
        for name, kind in kinds:
            with kind.start(env=env, log_path=workdir / f"upload-{name}.log") as srv:
                k = next(warm_sets)
                np.save(warm, pool[k : k + 10])
                runs[name] = upload_once(srv, token, path, warm)
        print(_upload_line(mb, n, runs))
        path.unlink()


def _upload_line(mb: int, n: int, runs: dict[str, Upload]) -> str:
    ours = runs["ours"]
    target = 50 if mb <= 100 else 100
    codes = ",".join(p["code"] for p in ours.problems)
    line = (f"  {mb:>5} MiB ({n:,} UIDs): HTTP {ours.status} {codes}; "
            f"ours +{ours.grow_mb:.1f} MB in {ours.wall_s:.1f} s")  # fmt: skip
    if "before" in runs:
        old = runs["before"]
        if (old.status, old.problems) != (ours.status, ours.problems):  # counts, samples too
            raise SystemExit(f"the previous validator answered otherwise: {old.problems}")
        line += (f" vs before +{old.grow_mb:.1f} MB in {old.wall_s:.1f} s "
                 f"(ratio {ours.grow_mb / old.grow_mb:.3f})")  # fmt: skip
    verdict = "ok" if ours.grow_mb < target else "OVER"
    return f"{line}; target < {target} MB: {verdict}"


def main() -> None:
    if sys.argv[1:] == ["_serve-previous"]:
        serve_previous()
        return
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--db", choices=("sqlite", "postgres", "both", "none"), default="both")
    ap.add_argument("--submissions", type=int, default=10_000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--requests", type=int, default=1000, help="per path, --python-client")
    ap.add_argument("--python-client", action="store_true")
    ap.add_argument("--urls", type=int, default=10_000, help="distinct URLs for the RSS figure")
    ap.add_argument("--upload-mb", default="100,1024",
                    help="upload sizes in MiB, comma-separated ('' skips them)")  # fmt: skip
    ap.add_argument("--no-before", action="store_true",
                    help="skip the previous validator's upload figures")  # fmt: skip
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
        sizes = [int(mb) for mb in args.upload_mb.split(",") if mb.strip() and int(mb) > 0]
        if sizes:
            (work / "u").mkdir()
            bench_upload(work / "u", sizes, before=not args.no_before)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
