"""evaluate-pending end to end: the real server on loopback, the real runner and linear probe on
the tiny dataset, real submitit jobs on the session's single-node SLURM. Fault tests included:
scancel of a running job, kill -9 of the worker, a subset that makes evaluation raise, and
two workers started at once; after each, the integrity check (``tdc-server check``) finds
nothing wrong.

Jobs that must still be running when the test acts wait in their batch script for a ``go``
file (the executor's ``setup`` lines), so nothing depends on timing.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.datasets import Dataset
from harness.dispatch import plan
from harness.dispatch.executors import ExecutorSpec
from harness.dispatch.worker import Worker, WorkerOptions, WorkerReport
from harness.settings import default_configs_dir
from submissions.schemas import State
from tests.harness.dispatch.conftest import LiveServer, serve
from tests.infra.slurm_cluster import SlurmCluster

REPO = default_configs_dir().parent


def pool_uids(ds: Dataset, rows: Any) -> list[str]:
    return [str(u) for u in ds.uids("train")[list(rows)]]


def slurm_spec(tmp_path: Path, **kw: Any) -> ExecutorSpec:
    values: dict[str, Any] = {
        "cluster": "slurm", "partition": "debug", "mem_gb": 1, "timeout_min": 5,
        "items_per_task": 2, "log_dir": tmp_path / "logs",
    }  # fmt: skip
    return ExecutorSpec(**(values | kw))


def hold_until(go: Path) -> tuple[str, ...]:
    """Setup lines that keep a job RUNNING until ``go`` exists (at most 120 s)."""
    return (f"for i in $(seq 600); do [ -e {go} ] && break; sleep 0.2; done",)


def options(tmp_path: Path, spec: ExecutorSpec, configs: Path, ds: Dataset, **kw: Any):
    values: dict[str, Any] = {
        "executor": spec, "runs_dir": tmp_path / "runs", "data_root": ds.dir.root.parent,
        "configs_dir": configs, "poll_s": 0.2, "grace_s": 1.0, "idle_s": 0.3,
    }  # fmt: skip
    return WorkerOptions(**(values | kw))


def wait_for(cond: Callable[[], object], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def key_dir(tmp_path: Path, server: LiveServer, sid: int) -> Path:
    sub = server.detail(sid)
    return tmp_path / "runs" / "dispatch" / "work" / plan.work_key(sub.identity)


class Background:
    """A worker in a thread; ``finish()`` stops claiming and waits for its jobs."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.report: WorkerReport | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.report = self.worker.run()

    def finish(self, timeout: float = 120) -> WorkerReport:
        self.worker.stop.set()
        self.thread.join(timeout)
        assert self.report is not None, "worker did not finish"
        return self.report


@pytest.mark.slurm
def test_upload_claim_array_scored(
    slurm: SlurmCluster, live_server: LiveServer, tiny_dataset: Dataset,
    dispatch_configs: Path, tmp_path: Path,
) -> None:  # fmt: skip
    a = live_server.submit(pool_uids(tiny_dataset, range(0, 30)), team="alpha")
    same = live_server.submit(pool_uids(tiny_dataset, range(29, -1, -1)), team="beta")
    b = live_server.submit(pool_uids(tiny_dataset, range(30, 60)), team="alpha", task="test1")
    c = live_server.submit(pool_uids(tiny_dataset, range(100, 175)), team="beta", fraction=0.25)
    assert a.sha256 == same.sha256  # same UIDs in another order: identical work
    opts = options(tmp_path, slurm_spec(tmp_path), dispatch_configs, tiny_dataset)
    with live_server.client() as client:
        report = Worker(client=client, options=opts).run()
    assert (report.claimed, report.unique, report.scored) == (4, 3, 4)
    assert report.array_tasks == 2  # (tiny, linear_probe): 3 items, 2 per task, one array
    details = {s.id: live_server.detail(s.id) for s in (a, same, b, c)}
    assert all(d.state == State.scored for d in details.values())
    job_ids = {d.executor_job_id for d in details.values()}
    assert len({j.split("_")[0] for j in job_ids if j}) == 1  # one sbatch
    assert details[a.id].manifest and details[a.id].manifest.executor == "slurm"
    assert details[a.id].manifest.job_id == details[a.id].executor_job_id
    assert [t.task for t in details[b.id].scores] == ["test1"]
    assert details[a.id].scores == details[same.id].scores
    assert plan.launch_count(key_dir(tmp_path, live_server, a.id)) == 1


def test_local_executor_scores(
    live_server: LiveServer, tiny_dataset: Dataset, dispatch_configs: Path, tmp_path: Path
) -> None:
    sub = live_server.submit(pool_uids(tiny_dataset, range(0, 30)))
    spec = ExecutorSpec(cluster="local", log_dir=tmp_path / "logs", timeout_min=5)
    with live_server.client() as client:
        Worker(client=client, options=options(tmp_path, spec, dispatch_configs, tiny_dataset)).run()
    detail = live_server.detail(sub.id)
    assert detail.state == State.scored and detail.manifest and detail.manifest.executor == "local"


def withdrawn_copy(ds: Dataset, root: Path, withdrawn: set[str]) -> Path:
    """A copy of ``ds`` under ``root`` whose re-release (v0.2) withdrew some pool images."""
    from harness.datasets.dataset import DatasetDir
    from harness.datasets.writer import write_splits

    target = root / ds.dir.root.name
    shutil.copytree(ds.dir.root, target, ignore=shutil.ignore_patterns("index"))
    ddir, pool = DatasetDir(target), ds.spec.pool
    keep = ~ds.split(pool)["uid"].isin(withdrawn).to_numpy()
    splits = {name: ds.split(name) for name in ds.spec.split_names()}
    splits[pool] = splits[pool][keep]
    write_splits(ddir, splits, dataset_version="0.2")
    emb_dir = ddir.embedding_set(ds.set_name).uids_path(pool).parent
    for f in emb_dir.glob("*.npy"):
        np.save(f, np.load(f, allow_pickle=False)[keep])
    return root


@pytest.mark.slurm
def test_evaluation_error_is_failed_user(
    slurm: SlurmCluster, live_server: LiveServer, tiny_dataset: Dataset,
    dispatch_configs: Path, tmp_path: Path,
) -> None:  # fmt: skip
    uids = pool_uids(tiny_dataset, range(0, 30))
    sub = live_server.submit(uids)
    data_root = withdrawn_copy(tiny_dataset, tmp_path / "data-v2", set(uids[:3]))
    opts = options(tmp_path, slurm_spec(tmp_path), dispatch_configs, tiny_dataset)
    opts = opts.model_copy(update={"data_root": data_root})
    with live_server.client() as client:
        report = Worker(client=client, options=opts).run()
    detail = live_server.detail(sub.id)
    assert report.failed_user == 1 and detail.state == State.failed_user
    assert detail.error and "3 of 30 UIDs are not in the dataset" in detail.error  # says why
    live_server.assert_consistent()  # and `tdc-server check` finds nothing wrong


@pytest.mark.slurm
def test_scancel_is_infra_then_retried_and_scored(
    slurm: SlurmCluster, live_server: LiveServer, tiny_dataset: Dataset,
    dispatch_configs: Path, tmp_path: Path,
) -> None:  # fmt: skip
    go = tmp_path / "go"
    spec = slurm_spec(tmp_path, setup=hold_until(go))
    sub = live_server.submit(pool_uids(tiny_dataset, range(0, 30)))
    with live_server.client() as client:
        bg = Background(Worker(client=client, options=options(
            tmp_path, spec, dispatch_configs, tiny_dataset, watch=True)))  # fmt: skip
        job_id = wait_for(lambda: live_server.detail(sub.id).executor_job_id, 60, "a job id")
        wait_for(lambda: f"{job_id}|RUNNING" in slurm.squeue(), 60, "the job to run")
        subprocess.run(["scancel", job_id], check=True, env=slurm.env())
        wait_for(lambda: "retry_infra" in live_server.events(sub.id), 60, "an infra failure")
        go.touch()  # the retried job may finish
        wait_for(lambda: live_server.detail(sub.id).state == State.scored, 90, "the score")
        report = bg.finish()
    detail = live_server.detail(sub.id)
    assert report.failed_infra == 1 and report.scored == 1
    assert detail.attempts == 2 and detail.executor_job_id != job_id
    assert live_server.events(sub.id).count("score") == 1
    infra = next(e for e in detail.events if e.action == "retry_infra")
    assert infra.reason and "cancelled" in infra.reason
    assert plan.launch_count(key_dir(tmp_path, live_server, sub.id)) == 2
    live_server.assert_consistent()  # and `tdc-server check` finds nothing wrong


@pytest.mark.slurm
def test_kill9_worker_mid_job_scored_once(
    slurm: SlurmCluster, live_server: LiveServer, tiny_dataset: Dataset,
    dispatch_configs: Path, tmp_path: Path,
) -> None:  # fmt: skip
    go = tmp_path / "go"
    sub = live_server.submit(pool_uids(tiny_dataset, range(0, 30)))
    configs = tmp_path / "configs"
    configs.mkdir()
    for name in ("datasets.yaml", "recipes.yaml"):
        (configs / name).write_text((dispatch_configs / name).read_text())
    (configs / "executors.yaml").write_text(
        "executors:\n  held:\n    cluster: slurm\n    partition: debug\n    mem_gb: 1\n"
        f"    timeout_min: 5\n    setup: ['{hold_until(go)[0]}']\n"
    )
    env = slurm.env() | {
        "TDC_CONFIGS_DIR": str(configs), "TDC_DATA_ROOT": str(tiny_dataset.dir.root.parent),
        "TDC_RUNS_DIR": str(tmp_path / "runs"), "TDC_ORGANIZER_TOKEN": live_server.organizer_token,
    }  # fmt: skip
    run_cli = "from harness.cli.main import main; raise SystemExit(main())"
    cmd = [sys.executable, "-c", run_cli, "evaluate-pending", "--server", live_server.base_url,
           "--executor", "held", "--lease-seconds", "5"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, cwd=REPO)
    try:
        job_id = wait_for(lambda: live_server.detail(sub.id).executor_job_id, 60, "a job id")
        wait_for(lambda: f"{job_id}|RUNNING" in slurm.squeue(), 60, "the job to run")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    # The job outlives its worker; the lease runs out; a new worker adopts the running job.
    wait_for(lambda: live_server.detail(sub.id).lease_expires_at is not None, 5, "a lease")
    time.sleep(5.5)
    spec = slurm_spec(tmp_path)
    with live_server.client() as client:
        bg = Background(Worker(client=client, options=options(
            tmp_path, spec, dispatch_configs, tiny_dataset, watch=True)))  # fmt: skip
        wait_for(lambda: bg.worker.report.adopted == 1, 60, "the job to be adopted")
        go.touch()
        wait_for(lambda: live_server.detail(sub.id).state == State.scored, 90, "the score")
        report = bg.finish()
    detail = live_server.detail(sub.id)
    assert report.adopted == 1 and report.launched == 0
    assert live_server.events(sub.id).count("score") == 1
    assert detail.manifest and detail.manifest.job_id == job_id  # the first job's result
    assert plan.launch_count(key_dir(tmp_path, live_server, sub.id)) == 1  # trained once
    live_server.assert_consistent()  # and `tdc-server check` finds nothing wrong


@pytest.mark.slurm
def test_two_workers_never_train_the_same_work_twice(
    slurm: SlurmCluster, live_server: LiveServer, tiny_dataset: Dataset,
    dispatch_configs: Path, tmp_path: Path,
) -> None:  # fmt: skip
    subs = []
    for i in range(3):
        rows = range(30 * i, 30 * i + 30)
        subs.append(live_server.submit(pool_uids(tiny_dataset, rows), team="alpha"))
        subs.append(live_server.submit(pool_uids(tiny_dataset, rows), team="beta"))  # identical
    spec = slurm_spec(tmp_path, items_per_task=1)
    workers = []
    with live_server.client() as c1, live_server.client() as c2:
        for client, name in ((c1, "w1"), (c2, "w2")):
            opts = options(tmp_path, spec, dispatch_configs, tiny_dataset, worker=name, max_jobs=2)
            workers.append(Worker(client=client, options=opts))
        threads = [threading.Thread(target=w.run) for w in workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(180)
    reports = [w.report for w in workers]
    assert sum(r.claimed for r in reports) == 6  # the server leased each submission once
    assert all(live_server.detail(s.id).state == State.scored for s in subs)
    assert all(live_server.events(s.id).count("claim") == 1 for s in subs)
    keys = {key_dir(tmp_path, live_server, s.id) for s in subs}
    assert len(keys) == 3 and all(plan.launch_count(k) == 1 for k in keys)
    live_server.assert_consistent()  # and `tdc-server check` finds nothing wrong


@pytest.mark.slurm
def test_a_job_slurm_never_starts_is_cancelled_with_its_reason(
    slurm: SlurmCluster, live_server: LiveServer, tiny_dataset: Dataset,
    dispatch_configs: Path, tmp_path: Path,
) -> None:  # fmt: skip
    """--begin an hour away: pending (BeginTime) past max_pending_s -> scancel and an infra
    failure that names SLURM's reason (the server then retries it); no job is left behind."""
    spec = slurm_spec(tmp_path, extra_sbatch={"begin": "now+1hour"})
    sub = live_server.submit(pool_uids(tiny_dataset, range(0, 30)))
    opts = options(tmp_path, spec, dispatch_configs, tiny_dataset, max_pending_s=2.0)
    with live_server.client() as client:
        report = Worker(client=client, options=opts).run()
    assert report.failed_infra == 1 and report.scored == 0
    detail = live_server.detail(sub.id)
    infra = next(e for e in detail.events if e.action == "retry_infra")
    job_id = next(e.reason for e in detail.events if e.action == "job")
    assert infra.reason and "did not start within 2 s (BeginTime); cancelled" in infra.reason
    assert f"job {job_id}:" in infra.reason
    told = [e.reason for e in detail.events if e.action == "job_state"]
    assert told == ["pending (BeginTime)"], "the timeline said why it waited"
    wait_for(lambda: "PENDING" not in slurm.squeue(), 30, "the cancelled job to leave")
    live_server.assert_consistent()  # and `tdc-server check` finds nothing wrong


@pytest.mark.postgres
def test_postgres_restarted_while_a_worker_posts_its_result(
    tiny_dataset: Dataset, dispatch_configs: Path, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """The database goes down as the worker posts: the server answers 503 (nothing half
    written), the worker retries, the result is recorded once, and the check is clean."""
    from tests.infra.postgres import PostgresCluster

    cluster = PostgresCluster.start()  # its own: this test stops it
    try:
        url = cluster.create_database("restarted")
        with serve(tmp_path, dispatch_configs, tiny_dataset, database_url=url) as live:
            sub = live.submit(pool_uids(tiny_dataset, range(0, 30)))
            spec = ExecutorSpec(cluster="local", log_dir=tmp_path / "logs", timeout_min=5)
            restart = threading.Thread(target=cluster.restart, kwargs={"down_s": 1.0})
            with live.client() as client:
                post = client.post_result

                def post_during_restart(*args: Any, **kw: Any) -> Any:
                    if not restart.is_alive() and restart.ident is None:
                        restart.start()
                        wait_for(lambda: not _accepts(cluster.port), 30, "the database down")
                    return post(*args, **kw)

                client.post_result = post_during_restart  # type: ignore[method-assign]
                opts = options(tmp_path, spec, dispatch_configs, tiny_dataset)
                report = Worker(client=client, options=opts).run()
            restart.join(60)
            assert "database is unavailable right now; send the request again); retrying" in (
                caplog.text
            )  # the post did meet the outage
            assert report.scored == 1 and live.detail(sub.id).state == State.scored
            assert live.events(sub.id).count("score") == 1
            live.assert_consistent()
    finally:
        cluster.stop()


def _accepts(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0
