"""The evaluate-pending loop: claim with a lease, dedup, launch arrays, heartbeat, post, explain.

    client = TdcClient(base_url="http://127.0.0.1:8000", token=organizer_token)
    options = WorkerOptions(executor=spec, runs_dir=Path("runs"), data_root=Path("data"),
                            configs_dir=Path("configs"), watch=False)
    report = Worker(client=client, options=options).run()   # returns when the queue is drained

Each round: claim up to ``max_jobs`` queued submissions; group identical work (one key per
sha256 + dataset + fraction + task + recipe); reuse a finished outcome or adopt a job a previous
worker launched for the key; download one subset file per new key; launch one submitit array
per (dataset, recipe); heartbeat every lease holder with its job id; post each outcome to every
submission of its key as soon as it appears. A job that dies without an outcome (scancel,
time limit, OOM, node loss, a vanished job) is an ``infra`` failure with the log tail; the
server retries it with backoff. A ``TdcError`` from the recipe is the participant's
``user`` failure. Results are posted with the lease token, so a worker whose lease expired
cannot overwrite the one that took over, and a repeated post is a no-op.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from harness.dispatch import plan
from harness.dispatch.client import Client, lease_lost, lease_refused
from harness.dispatch.executors import ExecutorSpec, launch
from harness.dispatch.reconcile import (
    HOPELESS,
    JobRef,
    JobState,
    Reconciler,
    cancel_slurm_job,
    reason_code,
    squeue_states,
)
from harness.dispatch.task import Outcome, WorkItem, read_outcome, run_work_items
from harness.settings import DEFAULT_WEIGHTS_DIR
from submissions.errors import TdcError
from submissions.schemas import ClaimedSubmission

log = logging.getLogger(__name__)

LOG_TAIL_CHARS = 8000


def default_worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class WorkerOptions(BaseModel):
    """How one evaluate-pending process behaves (CLI > settings > these defaults)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    executor: ExecutorSpec
    runs_dir: Path
    data_root: Path
    configs_dir: Path
    weights_dir: Path = DEFAULT_WEIGHTS_DIR  # local checkpoints of finetune recipes
    worker: str = Field(default_factory=default_worker_name)
    max_jobs: int = Field(100, gt=0, description="submissions held at once")
    lease_seconds: int = Field(600, gt=0)
    heartbeat_s: float | None = Field(None, gt=0, description="default: a quarter of the lease")
    poll_s: float = Field(1.0, gt=0)
    idle_s: float = Field(15.0, gt=0, description="--watch: wait between empty claims")
    grace_s: float = Field(5.0, ge=0, description="a job missing from squeue this long is lost")
    max_pending_s: float = Field(
        86400.0, gt=0, description="a SLURM job not started after this is cancelled (infra)"
    )
    hopeless_pending_s: float = Field(
        300.0, ge=0, description="the same, when SLURM's reason cannot clear by waiting"
    )
    watch: bool = False
    dataset: str | None = None
    array: bool = Field(True, description="False: one sbatch per task (benchmark baseline)")

    @property
    def run_dir(self) -> Path:
        return self.runs_dir / "dispatch"

    @property
    def heartbeat_every(self) -> float:
        return self.heartbeat_s or max(self.lease_seconds / 4, 1.0)


@dataclass
class WorkerReport:
    claimed: int = 0
    unique: int = 0
    launched: int = 0
    array_tasks: int = 0
    adopted: int = 0
    reused: int = 0
    scored: int = 0
    failed_user: int = 0
    failed_infra: int = 0
    leases_lost: int = 0


@dataclass
class Entry:
    """One key in flight: the work item, the submissions waiting on it, and its job."""

    item: WorkItem
    subs: list[ClaimedSubmission]
    ref: JobRef | None = None
    logs: tuple[Path | None, Path | None] = (None, None)  # stdout, stderr
    job_state: str | None = None  # "pending (Priority)", "running": sent with heartbeats


class Worker:
    """One evaluate-pending process. ``stop`` ends ``--watch`` after the jobs in flight."""

    def __init__(
        self, *, client: Client, options: WorkerOptions, stop: threading.Event | None = None
    ) -> None:
        self.client = client
        self.options = options
        self.spec = options.executor.resolve_log_dir(options.runs_dir)
        self.stop = stop or threading.Event()
        self.reconciler = Reconciler(grace_s=options.grace_s)
        self.inflight: dict[str, Entry] = {}
        self._waiting: dict[str, tuple[float, str]] = {}  # job id -> (pending since, reason)
        self.report = WorkerReport()
        self._last_beat = time.monotonic()

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> WorkerReport:
        while True:
            asked = not self.stop.is_set() and self._room() > 0
            claimed = self._claim() if asked else []
            if claimed:
                self._admit(claimed)
            self._poll()
            self._heartbeat_if_due()
            if self.inflight or claimed:
                self._sleep(self.options.poll_s)
                continue
            if not asked and not self.stop.is_set():
                continue  # we were full when we last looked and just finished: ask now
            if not self.options.watch or self.stop.is_set():
                return self.report  # the queue answered "nothing" and nothing is running
            self._sleep(self.options.idle_s)

    def _room(self) -> int:
        return self.options.max_jobs - sum(len(e.subs) for e in self.inflight.values())

    def _sleep(self, seconds: float) -> None:
        if self.stop.is_set():  # stopping: finish the jobs in flight at the polling pace
            time.sleep(seconds)
        else:
            self.stop.wait(seconds)

    def _claim(self) -> list[ClaimedSubmission]:
        room = self._room()
        try:
            claimed = self.client.claim(
                self.options.worker,
                max_jobs=min(room, 1000),
                lease_seconds=self.options.lease_seconds,
                dataset=self.options.dataset,
            )
        except TdcError as err:
            log.warning("claim failed: %s", err)
            return []
        self.report.claimed += len(claimed)
        if claimed:
            log.info("claimed %d submission(s): %s", len(claimed), [c.id for c in claimed])
        return claimed

    # -- admission: reuse, adopt or launch ----------------------------------------------------

    def _admit(self, claimed: Sequence[ClaimedSubmission]) -> None:
        fresh: list[Entry] = []
        with contextlib.ExitStack() as locks:
            # Keys locked in one global order: two workers never wait on each other in a cycle.
            for key, subs in sorted(plan.group_by_key(claimed).items()):
                if key in self.inflight:  # identical work already running here: just wait
                    self.inflight[key].subs.extend(subs)
                    continue
                entry = Entry(item=self._item(subs[0]), subs=list(subs))
                self.report.unique += 1
                # Held until the job record is written: another worker claiming identical
                # work waits here, then adopts our job instead of training it again.
                locks.enter_context(plan.KeyLock(entry.item.work_dir))
                if self._reuse_or_adopt(entry):
                    continue
                if self._download(entry):
                    fresh.append(entry)
            self._launch(fresh)
        for entry in fresh:
            if entry.ref is not None:
                self._beat(entry)

    def _item(self, sub: ClaimedSubmission) -> WorkItem:
        o = self.options
        return plan.work_item(
            sub.identity, run_dir=o.run_dir, data_root=o.data_root, configs_dir=o.configs_dir,
            store_dir=o.runs_dir, weights_dir=o.weights_dir,
        )  # fmt: skip

    def _reuse_or_adopt(self, entry: Entry) -> bool:
        """True when the key needs no new job: its outcome exists or its job still runs."""
        outcome = read_outcome(entry.item.outcome_path)
        if outcome is not None and outcome.status != "error":
            self.report.reused += 1
            log.info("key %s: reusing its outcome (%s)", entry.item.key, outcome.status)
            self._finish(entry, outcome)
            return True
        record = plan.read_job_record(entry.item.work_dir)
        if record is None or not self._alive(record):
            return False
        self.report.adopted += 1
        log.info("key %s: adopting running job %s", entry.item.key, record.job_id)
        entry.ref = JobRef(record.job_id, record.cluster, (entry.item.outcome_path,))
        entry.logs = (record.stdout, record.stderr)
        self.inflight[entry.item.key] = entry
        self._beat(entry)
        return True

    def _alive(self, record: plan.JobRecord) -> bool:
        if record.cluster != "slurm":  # local jobs die with (or are invisible to) a new worker
            return False
        states = squeue_states([record.job_id]) or {}
        return states.get(record.job_id) in {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING"}

    def _download(self, entry: Entry) -> bool:
        item = entry.item
        item.work_dir.mkdir(parents=True, exist_ok=True)
        item.outcome_path.unlink(missing_ok=True)  # an earlier infra error: start clean
        try:
            self.client.download_file(entry.subs[0].id, item.subset_path)
        except Exception as err:  # storage or network: not the participant's fault
            log.warning("key %s: download failed: %s", item.key, err)
            self._fail_all(entry, "infra", f"could not fetch the subset file: {err}", None)
            return False
        return True

    def _launch(self, entries: Sequence[Entry]) -> None:
        by_key = {e.item.key: e for e in entries}
        arrays = plan.pack([e.item for e in entries], self.spec)
        for (dataset, recipe), chunks in arrays.items():
            try:
                jobs = launch(
                    chunks,
                    self.spec,
                    fn=run_work_items,
                    array=self.options.array,
                    name=f"tdc-{dataset}-{recipe}",
                )
            except Exception as err:  # sbatch refused (partition, limits) or executor broken
                log.error("launch of %s/%s failed: %s", dataset, recipe, err)
                for item in (i for chunk in chunks for i in chunk):
                    self._fail_all(by_key[item.key], "infra", f"could not launch: {err}", None)
                continue
            self.report.array_tasks += len(jobs)
            for chunk, job in zip(chunks, jobs, strict=True):
                for item in chunk:
                    self._attach(by_key[item.key], job)

    def _attach(self, entry: Entry, job: object) -> None:
        job_id = str(job.job_id)  # type: ignore[attr-defined]
        paths = job.paths  # type: ignore[attr-defined]
        entry.ref = JobRef(job_id, self.spec.cluster, (entry.item.outcome_path,), job)
        entry.logs = (paths.stdout, paths.stderr)
        record = plan.JobRecord(
            cluster=self.spec.cluster,
            job_id=job_id,
            worker=self.options.worker,
            launched_at=plan.now_utc(),
            stdout=paths.stdout,
            stderr=paths.stderr,
        )
        plan.write_job_record(entry.item.work_dir, record)
        self.report.launched += 1
        self.inflight[entry.item.key] = entry

    # -- watching -----------------------------------------------------------------------------

    def _poll(self) -> None:
        entries = [e for e in self.inflight.values() if e.ref is not None]
        if not entries:
            return
        statuses = self.reconciler.poll([e.ref for e in entries if e.ref is not None])
        for entry, status in zip(entries, statuses, strict=True):
            if status.state == JobState.pending:
                self._pending(entry, status.reason)
                continue
            if entry.ref is not None:
                self._waiting.pop(entry.ref.job_id, None)
            if status.state == JobState.running:
                self._tell(entry, "running")
            elif status.state == JobState.done:
                outcome = read_outcome(entry.item.outcome_path)
                if outcome is None:  # a torn or foreign file: treat as lost
                    self._lost(entry, "the job's outcome file is unreadable")
                else:
                    self._finish(entry, outcome)
            elif status.state == JobState.lost:
                self._lost(entry, status.reason)

    def _pending(self, entry: Entry, reason: str) -> None:
        """A job SLURM has not started: say why once, and give up on it after a limit.

        Without a limit a job that can never start (a constraint no node meets, a partition
        time limit below the job's) keeps its submission "running" forever, unexplained.
        """
        assert entry.ref is not None
        job_id, now = entry.ref.job_id, time.monotonic()
        since, said = self._waiting.get(job_id, (now, ""))
        if reason != said:
            log.info("job %s is pending: %s", job_id, reason or "no reason given")
        self._waiting[job_id] = (since, reason)
        # SLURM's reason code only (node names and the like stay in the organizers' logs).
        code = reason_code(reason)
        self._tell(entry, f"pending ({code})" if code else "pending")
        limit = self.options.hopeless_pending_s if code in HOPELESS else self.options.max_pending_s
        if now - since < limit:
            return
        self._waiting.pop(job_id, None)
        cancel_slurm_job(job_id)
        why = reason or "SLURM gave no reason"
        self._lost(entry, f"the SLURM job did not start within {limit:g} s ({why}); cancelled")

    def _tell(self, entry: Entry, job_state: str) -> None:
        """Let the server know at once when the job's state changed (it keeps the timeline)."""
        if job_state != entry.job_state:
            entry.job_state = job_state
            self._beat(entry)

    def _heartbeat_if_due(self) -> None:
        if time.monotonic() - self._last_beat < self.options.heartbeat_every:
            return
        self._last_beat = time.monotonic()
        for entry in list(self.inflight.values()):
            self._beat(entry)

    def _beat(self, entry: Entry) -> None:
        job_id = entry.ref.job_id if entry.ref else None
        for sub in list(entry.subs):
            try:
                self.client.heartbeat(
                    sub.id,
                    sub.lease_token,
                    lease_seconds=self.options.lease_seconds,
                    job_id=job_id,
                    job_state=entry.job_state,
                )
            except TdcError as err:
                if not lease_refused(err):  # the server is down: try again next beat
                    log.warning("submission %d: heartbeat not delivered: %s", sub.id, err)
                    continue
                # Lease expired, cancelled or taken over: let this submission go.
                log.warning("submission %d: lease lost: %s", sub.id, err)
                entry.subs.remove(sub)
                self.report.leases_lost += 1
        if not entry.subs:
            # Nobody waits for it here any more; the job keeps running and whoever claims
            # this work next adopts it or reuses its outcome.
            self.inflight.pop(entry.item.key, None)

    # -- outcomes -----------------------------------------------------------------------------

    def _finish(self, entry: Entry, outcome: Outcome) -> None:
        self.inflight.pop(entry.item.key, None)
        if outcome.status == "ok" and outcome.result is not None:
            for sub in entry.subs:
                self._post(sub, outcome)
        elif outcome.status == "user_error":
            self._fail_all(entry, "user", outcome.message or "the evaluation failed", None)
        else:
            message = f"evaluation crashed: {outcome.message}"
            self._fail_all(entry, "infra", message, outcome.traceback)

    def _post(self, sub: ClaimedSubmission, outcome: Outcome) -> None:
        result = outcome.result
        assert result is not None
        try:
            _retrying(functools.partial(self.client.post_result, sub.id, sub.lease_token, result))
        except TdcError as err:
            if lease_lost(err) or not lease_refused(err):  # gone, or the server still down:
                log.warning("submission %d: result not accepted: %s", sub.id, err)
                self.report.leases_lost += 1  # the next claimer reuses the outcome file
                return
            # The server refused the result itself (it does not match the submission): our
            # bug, never the participant's. Say so now rather than let the lease run out.
            log.error("submission %d: result refused: %s", sub.id, err)
            entry = Entry(item=self._item(sub), subs=[sub])
            self._fail_all(entry, "infra", f"the server refused the result: {err}", None)
            return
        self.report.scored += 1
        log.info("submission %d scored (job %s)", sub.id, outcome.job_id)

    def _lost(self, entry: Entry, reason: str) -> None:
        job_id = entry.ref.job_id if entry.ref else "?"
        message = f"infrastructure failure: job {job_id}: {reason}"
        self.inflight.pop(entry.item.key, None)
        self._fail_all(entry, "infra", message, self._log_tail(entry))

    def _fail_all(
        self, entry: Entry, kind: Literal["user", "infra"], message: str, log_tail: str | None
    ) -> None:
        self.inflight.pop(entry.item.key, None)
        tail = log_tail[-LOG_TAIL_CHARS:] if log_tail else None
        for sub in entry.subs:
            try:
                _retrying(
                    functools.partial(
                        self.client.fail, sub.id, sub.lease_token,
                        kind=kind, message=message[:10_000], log_tail=tail,
                    )
                )  # fmt: skip
            except TdcError as err:
                log.warning("submission %d: failure not recorded: %s", sub.id, err)
                self.report.leases_lost += 1
                continue
            if kind == "user":
                self.report.failed_user += 1
            else:
                self.report.failed_infra += 1
            log.info("submission %d failed (%s): %s", sub.id, kind, message.splitlines()[0])

    def _log_tail(self, entry: Entry) -> str | None:
        parts = []
        for path in entry.logs:
            if path is None:
                continue
            with contextlib.suppress(OSError):
                text = Path(path).read_text(errors="replace")
                parts.append(f"==> {path} <==\n{text[-LOG_TAIL_CHARS // 2 :]}")
        return "\n".join(parts) or None


def _retrying(call: Callable[[], Any], *, attempts: int = 4, first_delay_s: float = 0.5) -> Any:
    """``call()``, retried with backoff while the server cannot be reached (not when it says
    no). If it stays down, the lease runs out and the next claimer reuses the outcome file."""
    delay = first_delay_s
    for attempt in range(attempts):
        try:
            return call()
        except TdcError as err:
            if lease_refused(err) or attempt == attempts - 1:
                raise
            log.warning("server unavailable (%s); retrying in %.1f s", err, delay)
            time.sleep(delay)
            delay *= 2
    return None
