"""Dispatch benchmark: N demo linear-probe submissions through evaluate-pending on real SLURM.

    python -m benchmarks.dispatch                 # N=100; prepares the demo under ./data once
    python -m benchmarks.dispatch --n 20 --data-root /tmp/tdc-data

Side by side in one run, each on a fresh server (subprocess, SQLite) and the same throwaway
single-node SLURM (tests/infra/slurm.sh): the peer, **one sbatch per submission**, against
**job arrays** (one sbatch per (dataset, recipe), several submissions per array task). Every
submission is a distinct random subset (no dedup help). Printed per mode: total wall time
from the first claim to the last score, the time inside the jobs spent evaluating (the whole
``run_eval_job`` call, and its train + score part, ``manifest.wall_time_s``), and the dispatch
overhead per submission excluding the evaluation:

    overhead/sub = (wall x SLURM CPU slots - sum of in-job evaluation time) / N

i.e. every slot-second not spent evaluating (claim, download, sbatch, scheduling, Python
start, posting), charged to the submissions; a stricter figure counts only train + score.
Targets: arrays >= 3x faster in total wall time, overhead < 0.5 s per submission.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.dispatch.executors import ExecutorSpec
from harness.dispatch.plan import work_key
from harness.dispatch.task import read_outcome
from harness.dispatch.worker import Worker, WorkerOptions
from harness.settings import HarnessSettings, default_configs_dir
from submissions.client import TdcClient
from submissions.schemas import State
from submissions.subset_file import write_subset_file
from tests.infra.slurm_cluster import SlurmCluster

log = logging.getLogger("benchmarks.dispatch")


@dataclass
class ModeResult:
    name: str
    wall_s: float
    eval_s: float
    train_s: float
    sbatch_calls: int
    api_s: float
    scored: int


class TimedClient:
    """The organizer client, timing every call the worker makes (worker-side overhead)."""

    def __init__(self, inner: TdcClient) -> None:
        self.inner = inner
        self.seconds = 0.0

    def __getattr__(self, name: str) -> Callable[..., Any]:
        fn = getattr(self.inner, name)

        def timed(*args: Any, **kw: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kw)
            finally:
                self.seconds += time.perf_counter() - start

        return timed


def prepare_demo(data_root: Path) -> Any:
    from harness.datasets.preparers import prepare_dataset
    from harness.embed import embed_dataset
    from harness.specs import load_benchmark

    settings = HarnessSettings(data_root=data_root)
    spec = load_benchmark(settings.configs_dir).dataset("demo")
    ds = prepare_dataset(spec=spec, settings=settings)
    embed_dataset(ds=ds, settings=settings)
    return ds


def start_server(work: Path, data_root: Path) -> tuple[Any, str, str]:
    """A fresh server subprocess; returns (server, organizer token, participant token)."""
    from sqlmodel import Session

    from server.db import make_engine, migrate
    from server.live import LiveServer
    from server.services.auth import create_team, issue_token

    url = f"sqlite:///{work / 'tdc.db'}"
    engine = make_engine(url)
    migrate(engine)
    with Session(engine) as db:
        org, _ = issue_token(db=db, team=create_team(db=db, name="ops"), scope="organizer")
        part, _ = issue_token(db=db, team=create_team(db=db, name="bench"), scope="participant")
    engine.dispose()
    env = {
        "TDC_DATABASE_URL": url,
        "TDC_STORAGE_DIR": str(work / "storage"),
        "TDC_DATA_ROOT": str(data_root),
        "TDC_CONFIGS_DIR": str(default_configs_dir()),
        "TDC_RUNS_DIR": str(work / "server-runs"),
        "TDC_QUOTA_PER_DAY": "100000",
    }
    return LiveServer.start(env=env, log_path=work / "server.log"), org, part


def upload(base_url: str, token: str, ds: Any, n: int, work: Path, seed: int) -> list[int]:
    rng = np.random.default_rng(seed)
    pool = ds.uids("train")
    budget = ds.spec.budget(0.1, pool_size=len(pool))
    ids = []
    with TdcClient(base_url, token) as client:
        for i in range(n):
            path = work / "subsets" / f"{i}.npy"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_subset_file(path, [str(u) for u in rng.choice(pool, budget, replace=False)])
            ids.append(client.submit(path, dataset="demo", fraction=0.1).id)
    return ids


def run_mode(
    name: str, spec: ExecutorSpec, *, array: bool, ds: Any, n: int, root: Path, seed: int
) -> ModeResult:
    work = root / name.replace(" ", "-")
    work.mkdir(parents=True)
    server, org, part = start_server(work, ds.dir.root.parent)
    try:
        ids = upload(server.url, part, ds, n, work, seed)
        options = WorkerOptions(
            executor=spec, runs_dir=work / "runs", data_root=ds.dir.root.parent,
            configs_dir=default_configs_dir(), array=array, max_jobs=max(n, 1), poll_s=0.5,
        )  # fmt: skip
        with TdcClient(server.url, org) as inner:
            client = TimedClient(inner)
            start = time.perf_counter()
            report = Worker(client=client, options=options).run()  # type: ignore[arg-type]
            wall = time.perf_counter() - start
            subs = [inner.get(i) for i in ids]
    finally:
        server.stop()
    scored = sum(s.state == State.scored for s in subs)
    evaluate = train = 0.0
    for sub in subs:
        key_dir = work / "runs" / "dispatch" / "work" / work_key(sub.identity)
        outcome = read_outcome(key_dir / "outcome.json")
        if outcome is not None and outcome.result is not None:
            evaluate += outcome.wall_time_s  # the whole run_eval_job call
            train += outcome.result.manifest.wall_time_s  # its train + score part
    log.info("%s: %s", name, report)
    sbatch = len(_sbatch_ids(work))
    return ModeResult(name, wall, evaluate, train, sbatch, client.seconds, scored)


def _sbatch_ids(work: Path) -> set[str]:
    """Distinct SLURM job ids (an array counts once) from the key directories' job records."""
    from harness.dispatch.plan import read_job_record

    out = set()
    for d in (work / "runs" / "dispatch" / "work").iterdir():
        record = read_job_record(d)
        if record is not None:
            out.add(record.job_id.split("_")[0])
    return out


def slots(cluster: SlurmCluster) -> int:
    import subprocess

    out = subprocess.run(["sinfo", "-h", "-o", "%C"], capture_output=True, text=True,
                         env=cluster.env(), check=True).stdout  # fmt: skip
    return int(out.strip().split("/")[-1])  # A/I/O/T: total CPUs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100, help="submissions per mode")
    parser.add_argument("--data-root", type=Path, default=HarnessSettings().data_root)
    parser.add_argument("--items-per-task", type=int, default=0, help="0: N / (2 x slots)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    ds = prepare_demo(args.data_root)
    with tempfile.TemporaryDirectory(prefix="tdc-bench-dispatch-") as tmp:
        root = Path(tmp)
        cluster = SlurmCluster.start(root / "slurm")
        try:
            with cluster.activated():
                results = compare(cluster, ds, args, root)
        finally:
            cluster.stop()
    report(results, args.n)


def compare(cluster: SlurmCluster, ds: Any, args: argparse.Namespace, root: Path) -> list:
    n_slots = slots(cluster)
    per_task = args.items_per_task or max(1, -(-args.n // (2 * n_slots)))
    base = dict(cluster="slurm", partition="debug", mem_gb=1, cpus_per_task=1, timeout_min=30,
                array_parallelism=256, log_dir=root / "logs")  # fmt: skip
    print(f"{args.n} demo linear-probe submissions; SLURM slots: {n_slots}; "
          f"arrays pack {per_task} submission(s) per array task; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")  # fmt: skip
    peer = run_mode("one sbatch per submission", ExecutorSpec(**base, items_per_task=1),  # type: ignore[arg-type]
                    array=False, ds=ds, n=args.n, root=root, seed=args.seed)  # fmt: skip
    ours = run_mode("job arrays", ExecutorSpec(**base, items_per_task=per_task),  # type: ignore[arg-type]
                    array=True, ds=ds, n=args.n, root=root, seed=args.seed + 1)  # fmt: skip
    return [(peer, n_slots), (ours, n_slots)]


def report(results: list, n: int) -> None:
    """Overhead/sub = slot-seconds not spent in the evaluation, per submission: against the
    whole ``run_eval_job`` call (dispatch only: claim, download, sbatch, scheduling, process
    start, posting) and, stricter, against the runner's train + score time only (adds the
    per-submission dataset opening, file validation and first-use imports)."""
    head = f"{'overhead/sub s':>16}{'(strict)':>10}{'worker API/sub s':>18}{'scored':>9}"
    print(f"\n{'mode':<28}{'wall s':>8}{'eval s':>8}{'train s':>9}{'sbatch':>8}{head}")
    for r, n_slots in results:
        dispatch = (r.wall_s * n_slots - r.eval_s) / n
        strict = (r.wall_s * n_slots - r.train_s) / n
        print(f"{r.name:<28}{r.wall_s:>8.1f}{r.eval_s:>8.1f}{r.train_s:>9.1f}{r.sbatch_calls:>8}"
              f"{dispatch:>16.3f}{strict:>10.3f}{r.api_s / n:>18.3f}{r.scored:>6}/{n}")  # fmt: skip
    (peer, n_slots), (ours, _) = results
    print(f"load average now {os.getloadavg()[0]:.1f} (other work on the machine inflates both)")
    ratio = peer.wall_s / ours.wall_s
    print(f"\narrays vs one sbatch per submission: {ratio:.2f}x faster in total wall time "
          f"(target >= 3x): {'PASS' if ratio >= 3 else 'FAIL'}")  # fmt: skip
    dispatch = (ours.wall_s * n_slots - ours.eval_s) / n
    strict = (ours.wall_s * n_slots - ours.train_s) / n
    print(f"array dispatch overhead per submission excluding the evaluation: {dispatch:.3f} s "
          f"(target < 0.5 s): {'PASS' if dispatch < 0.5 else 'FAIL'}; excluding only train + "
          f"score: {strict:.3f} s")  # fmt: skip


if __name__ == "__main__":
    main()
