"""The worker loop against an in-memory organizer API, with the in-process debug executor.

The recipe is replaced by a counting fake here (``task._evaluate``) so the loop's own logic —
dedup, reuse, user vs infra failures, lost leases — is tested in isolation; the integration
tests (test_dispatch_integration.py) run the real server, runner and SLURM.
"""

from __future__ import annotations

import secrets
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.dispatch import plan, task
from harness.dispatch.executors import ExecutorSpec
from harness.dispatch.reconcile import JobRef, JobState, JobStatus, Reconciler
from harness.dispatch.worker import Worker, WorkerOptions
from submissions.client import ApiError, ServerUnreachable
from submissions.errors import ValidationFailed
from submissions.schemas import (
    ClaimedSubmission,
    EvalIdentity,
    EvalResult,
    Manifest,
    Problem,
    TaskResult,
)


def fake_result(item: task.WorkItem) -> EvalResult:
    i = item.identity
    manifest = Manifest(
        code_version="t", recipe=i.recipe, recipe_version="1", recipe_hash="h",
        dataset=i.dataset, dataset_version="0.1", dataset_manifest_hash="m",
        subset_sha256=i.sha256, seeds=[0], libraries={}, device="cpu", wall_time_s=0.0,
    )  # fmt: skip
    tr = TaskResult(task="test1", test_size=60, seeds=[], mean={"accuracy": 0.5}, std={})
    return EvalResult(
        dataset=i.dataset, fraction=i.fraction, task=i.task, recipe=i.recipe,
        subset_size=3, tasks=[tr], manifest=manifest,
    )  # fmt: skip


def identity(row: dict[str, Any]) -> EvalIdentity:
    return EvalIdentity(dataset=row["dataset"], fraction=row["fraction"], task=row["task"],
                        recipe="linear_probe", sha256=row["sha256"])  # fmt: skip


class FakeServer:
    """Leases, results and failures as the organizer API keeps them (one process)."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = {i + 1: {"state": "queued", "token": None, **r} for i, r in enumerate(rows)}
        self.results: Counter[int] = Counter()
        self.failures: dict[int, tuple[str, str, str | None]] = {}
        self.beats: list[tuple[int, str | None]] = []
        self.job_states: list[tuple[int, str | None]] = []
        self.down = False

    def claim(self, worker: str, *, max_jobs: int = 10, lease_seconds: int = 600,
              dataset: str | None = None) -> list[ClaimedSubmission]:  # fmt: skip
        out = []
        for sid, row in self.rows.items():
            if row["state"] != "queued" or len(out) >= max_jobs:
                continue
            row.update(state="running", token=secrets.token_hex(4))
            out.append(
                ClaimedSubmission(
                    id=sid,
                    identity=identity(row),
                    attempts=1,
                    lease_token=row["token"],
                    lease_expires_at=datetime.now(UTC) + timedelta(seconds=lease_seconds),
                )
            )
        return out

    def _lease(self, sid: int, token: str) -> dict[str, Any]:
        if self.down:
            raise ServerUnreachable("down")
        row = self.rows[sid]
        if row["state"] != "running" or row["token"] != token:
            raise ApiError(409, [{"code": "conflict", "message": "lease lost"}])
        return row

    def heartbeat(self, sid: int, token: str, *, lease_seconds: int = 600,
                  job_id: str | None = None, job_state: str | None = None) -> None:  # fmt: skip
        self._lease(sid, token)
        self.beats.append((sid, job_id))
        self.job_states.append((sid, job_state))

    def download_file(self, sid: int, dest: Path) -> Path:
        dest.parent.mkdir(parents=True, exist_ok=True)
        np.save(dest, np.array([f"u{sid}"]))
        return dest

    def post_result(self, sid: int, token: str, result: EvalResult) -> None:
        assert result.manifest.subset_sha256 == self.rows[sid]["sha256"]
        self._lease(sid, token)["state"] = "scored"
        self.results[sid] += 1

    def fail(self, sid: int, token: str, *, kind: str, message: str,
             log_tail: str | None = None) -> None:  # fmt: skip
        self._lease(sid, token)["state"] = f"failed_{kind}"
        self.failures[sid] = (kind, message, log_tail)

    def list_all(self, **kw: Any) -> list[Any]:
        return []


@pytest.fixture
def evaluations(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts real evaluations per key; a sha256 starting with 'bad'/'crash' fails."""
    seen: Counter[str] = Counter()

    def fake(item: task.WorkItem) -> EvalResult:
        seen[item.key] += 1
        assert item.subset_path.is_file()
        if item.identity.sha256.startswith("bad"):
            raise ValidationFailed([Problem(code="one_class", message="subset has one class")])
        if item.identity.sha256.startswith("crash"):
            raise RuntimeError("segfault in BLAS")
        return fake_result(item)

    monkeypatch.setattr(task, "_evaluate", fake)
    return seen


def options(tmp_path: Path, **kw: Any) -> WorkerOptions:
    spec = ExecutorSpec(cluster="debug", items_per_task=2, log_dir=tmp_path / "logs")
    return WorkerOptions(executor=spec, runs_dir=tmp_path / "runs", data_root=tmp_path,
                         configs_dir=tmp_path, poll_s=0.01, **kw)  # fmt: skip


def row(sha: str, fraction: float = 0.1, task_: str | None = None, ds: str = "tiny") -> dict:
    return {"dataset": ds, "fraction": fraction, "task": task_, "sha256": sha}


def test_identical_work_trained_once_posted_to_all(tmp_path: Path, evaluations: Counter) -> None:
    server = FakeServer([row("a"), row("a"), row("b"), row("a", fraction=0.25), row("a")])
    report = Worker(client=server, options=options(tmp_path)).run()
    assert all(r["state"] == "scored" for r in server.rows.values())
    assert set(server.results.values()) == {1}  # each submission scored exactly once
    assert sorted(evaluations.values()) == [1, 1, 1]  # three distinct pieces of work
    assert (report.claimed, report.unique, report.scored) == (5, 3, 5)
    assert {job for _, job in server.beats} != {None}  # heartbeats carry the job id


def test_user_error_and_crash_are_told_apart(tmp_path: Path, evaluations: Counter) -> None:
    server = FakeServer([row("bad1"), row("crash1"), row("ok1")])
    report = Worker(client=server, options=options(tmp_path)).run()
    kind, message, _ = server.failures[1]
    assert (kind, message) == ("user", "subset has one class")
    kind, message, tail = server.failures[2]
    assert kind == "infra" and "RuntimeError: segfault in BLAS" in message
    assert tail is not None and "Traceback" in tail
    assert server.rows[3]["state"] == "scored"
    assert (report.failed_user, report.failed_infra, report.scored) == (1, 1, 1)


def test_outcome_on_disk_is_reused_not_retrained(tmp_path: Path, evaluations: Counter) -> None:
    Worker(client=FakeServer([row("a")]), options=options(tmp_path)).run()
    again = FakeServer([row("a"), row("a")])  # e.g. a requeue after a lost lease
    report = Worker(client=again, options=options(tmp_path)).run()
    assert sum(evaluations.values()) == 1 and report.reused == 1
    assert [r["state"] for r in again.rows.values()] == ["scored", "scored"]
    key = plan.work_key(_claimed(again, 1).identity)
    assert plan.launch_count(tmp_path / "runs" / "dispatch" / "work" / key) == 1


def _claimed(server: FakeServer, sid: int) -> ClaimedSubmission:
    return ClaimedSubmission(
        id=sid, identity=identity(server.rows[sid]), attempts=1, lease_token="t",
        lease_expires_at=datetime.now(UTC),
    )  # fmt: skip


def test_earlier_crash_is_retried_not_reused(tmp_path: Path, evaluations: Counter) -> None:
    server = FakeServer([row("crash9")])
    Worker(client=server, options=options(tmp_path)).run()
    server.rows[1]["state"] = "queued"  # the server requeues an infra failure
    Worker(client=server, options=options(tmp_path)).run()
    assert sum(evaluations.values()) == 2


def test_lost_lease_is_not_posted(tmp_path: Path, evaluations: Counter) -> None:
    server = FakeServer([row("a"), row("b")])
    worker = Worker(client=server, options=options(tmp_path, heartbeat_s=0.001))
    claimed = server.claim("w")
    server.rows[1]["token"] = "someone-else"  # the lease expired and another worker took it
    worker._admit(claimed)  # heartbeat at launch finds the lease gone
    worker.run()
    assert server.results == Counter({2: 1})
    assert worker.report.leases_lost == 1


def test_unreachable_server_is_retried_then_left_to_lease_expiry(
    tmp_path: Path, evaluations: Counter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("harness.dispatch.worker.time.sleep", lambda s: None)
    server = FakeServer([row("a")])
    worker = Worker(client=server, options=options(tmp_path))
    claimed = server.claim("w")
    server.down = True
    worker._admit(claimed)
    worker.run()
    assert server.rows[1]["state"] == "running" and not server.results  # nothing lost...
    server.down = False
    server.rows[1]["state"] = "queued"  # ...the lease expires, the work is claimed again
    Worker(client=server, options=options(tmp_path)).run()
    assert server.results[1] == 1 and sum(evaluations.values()) == 1


def test_arrays_per_dataset_and_recipe(tmp_path: Path, evaluations: Counter) -> None:
    rows = [row(f"s{i}") for i in range(5)] + [row("t0", ds="other"), row("t1", ds="other")]
    report = Worker(client=FakeServer(rows), options=options(tmp_path)).run()
    assert report.array_tasks == 3 + 1  # 5 items by 2 per task, and 2 items in one task


def test_dry_run_plan_lines() -> None:
    server = FakeServer([row("a"), row("a"), row("b", ds="other")])
    claimed = server.claim("w")
    lines = plan.describe(plan.group_by_key(claimed), ExecutorSpec(cluster="slurm"))
    assert lines[0].startswith("slurm array other/linear_probe: 1 unique item(s) in 1 task(s)")
    assert any("submission(s) 1, 2" in line for line in lines)


def test_drains_the_queue_beyond_max_jobs(
    tmp_path: Path, evaluations: Counter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Jobs finishing while the worker is full must not end the run: it claims again."""
    seen: set[Path] = set()
    real_poll = Reconciler.poll

    def one_round_late(self: Reconciler, refs: list[JobRef]) -> list[JobStatus]:
        statuses = real_poll(self, refs)  # (runs debug jobs) but report them a round late
        late = [r.outcome_paths[0] not in seen for r in refs]
        seen.update(r.outcome_paths[0] for r in refs)
        running = JobStatus(JobState.running)
        return [running if x else s for x, s in zip(late, statuses, strict=True)]

    monkeypatch.setattr(Reconciler, "poll", one_round_late)
    server = FakeServer([row(f"s{i}") for i in range(5)])
    report = Worker(client=server, options=options(tmp_path, max_jobs=2)).run()
    assert report.claimed == 5 and all(r["state"] == "scored" for r in server.rows.values())


def _always_pending(reason: str) -> Any:
    def poll(self: Reconciler, refs: list[JobRef]) -> list[JobStatus]:
        return [JobStatus(JobState.pending, reason, "PENDING") for _ in refs]

    return poll


@pytest.mark.parametrize(
    ("reason", "limits", "said"),
    [
        ("Priority", {"max_pending_s": 0.2, "hopeless_pending_s": 3600}, "within 0.2 s (Priority)"),
        (
            "ReqNodeNotAvail, UnavailableNodes:n[1-4]",
            {"max_pending_s": 0.2},
            "(ReqNodeNotAvail, UnavailableNodes:n[1-4])",
        ),
        (
            "BadConstraints",
            {"max_pending_s": 3600, "hopeless_pending_s": 0.05},
            "within 0.05 s (BadConstraints)",
        ),
        ("", {"max_pending_s": 0.1}, "(SLURM gave no reason)"),
    ],
)
def test_a_job_that_never_starts_is_cancelled_and_explained(
    tmp_path: Path,
    evaluations: Counter,
    monkeypatch: pytest.MonkeyPatch,
    reason: str,
    limits: dict[str, float],
    said: str,
) -> None:
    cancelled: list[str] = []
    monkeypatch.setattr(Reconciler, "poll", _always_pending(reason))
    monkeypatch.setattr("harness.dispatch.worker.cancel_slurm_job", cancelled.append)
    server = FakeServer([row("a")])
    report = Worker(client=server, options=options(tmp_path, **limits)).run()
    kind, message, _ = server.failures[1]
    assert kind == "infra" and report.failed_infra == 1 and not evaluations
    assert said in message and "cancelled" in message, message
    assert len(cancelled) == 1 and cancelled[0] in message, "the job is cancelled, not left"
    word = reason.split(",")[0].split()[0] if reason else ""
    told = [state for _, state in server.job_states if state]
    assert told == [f"pending ({word})" if word else "pending"], "told once, at once"


def test_a_slow_start_within_the_limit_is_waited_for(
    tmp_path: Path, evaluations: Counter, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_poll, polls = Reconciler.poll, Counter[str]()

    def pending_twice(self: Reconciler, refs: list[JobRef]) -> list[JobStatus]:
        polls["n"] += 1
        if polls["n"] <= 2:
            return [JobStatus(JobState.pending, "Resources", "PENDING") for _ in refs]
        return real_poll(self, refs)

    monkeypatch.setattr(Reconciler, "poll", pending_twice)
    monkeypatch.setattr("harness.dispatch.worker.cancel_slurm_job", pytest.fail)
    server = FakeServer([row("a")])
    report = Worker(client=server, options=options(tmp_path, max_pending_s=3600)).run()
    assert report.scored == 1 and server.rows[1]["state"] == "scored"
    told = [state for _, state in server.job_states if state]
    assert told == ["pending (Resources)"], "one beat per change, not per poll"
