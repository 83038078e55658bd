"""Job state that works with and without SLURM accounting: squeue, result files, then sacct.

    rec = Reconciler()
    status = rec.poll([JobRef(job_id="42_3", cluster="slurm", outcome_paths=(p1, p2))])
    status["42_3"].state        # pending | running | done | lost
    status["42_3"].reason       # why a job is lost: "CANCELLED", "TIMEOUT", "vanished ..."

The evidence, in order of trust:

1. our outcome files (written by the job itself, atomically): all present -> ``done``;
2. ``squeue -t all`` (recent terminal states stay listed for ``MinJobAge``): pending/running
   -> keep waiting; a terminal state with outcomes missing -> ``lost`` with that state;
3. ``sacct`` when accounting is enabled (it exits 1 when it is not) for jobs squeue forgot;
4. otherwise a job missing from squeue for ``grace_s`` without its outcomes -> ``lost``
   ("vanished"): a node reboot, a purged job or a slurmctld restart.

submitit's own state is UNKNOWN without accounting and ``job.done()`` waits forever for a
cancelled job, so the SLURM path never asks submitit. Local and debug jobs do ask it.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# squeue/sacct states that mean "not finished yet".
ALIVE = frozenset(
    {
        "PENDING",
        "CONFIGURING",
        "RUNNING",
        "COMPLETING",
        "SUSPENDED",
        "REQUEUED",
        "REQUEUE_HOLD",
        "REQUEUE_FED",
        "RESIZING",
        "SIGNALING",
        "STAGE_OUT",
        "STOPPED",
        "RESV_DEL_HOLD",
    }
)
# Shown to organizers for a lost job, by final SLURM state.
EXPLAIN = {
    "CANCELLED": "the SLURM job was cancelled (scancel or an administrator)",
    "TIMEOUT": "the SLURM job hit its time limit",
    "OUT_OF_MEMORY": "the SLURM job ran out of memory",
    "NODE_FAIL": "the node running the SLURM job failed",
    "PREEMPTED": "the SLURM job was preempted",
    "BOOT_FAIL": "the node failed to boot",
    "DEADLINE": "the SLURM job missed its deadline",
    "FAILED": "the job process exited with an error before writing results",
    "COMPLETED": "the job ended without writing results",
}


# squeue reasons (JOB REASON CODES) that waiting cannot clear: only an edit of the job or of
# the cluster can. Others (Resources, Priority, ReqNodeNotAvail, QOS limits, ...) may pass.
HOPELESS = frozenset(
    {
        "BadConstraints",
        "DependencyNeverSatisfied",
        "InvalidAccount",
        "InvalidQOS",
        "PartitionConfig",
        "PartitionNodeLimit",
        "PartitionTimeLimit",
    }
)


def reason_code(reason: str) -> str:
    """SLURM's reason code alone: "ReqNodeNotAvail, UnavailableNodes:n1" -> "ReqNodeNotAvail"."""
    words = reason.split(",")[0].split()
    return words[0] if words else ""


class JobState(StrEnum):
    pending = "pending"
    running = "running"
    done = "done"
    lost = "lost"


@dataclass(frozen=True)
class JobRef:
    """One launched array task and the outcome files its work items will write."""

    job_id: str
    cluster: str
    outcome_paths: tuple[Path, ...]
    job: Any = field(default=None, compare=False)  # the submitit.Job (local/debug need it)


@dataclass(frozen=True)
class JobStatus:
    state: JobState
    reason: str = ""
    slurm_state: str | None = None


def _run(cmd: Sequence[str]) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(list(cmd), capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        log.warning("%s failed: %s", cmd[0], err)
        return None


def squeue_jobs(job_ids: Sequence[str]) -> dict[str, tuple[str, str]] | None:
    """(state, reason) of every listed array task (``"12_3"``) or job; None when squeue failed.

    ``-r`` lists array tasks one per line; ``-t all`` keeps recently finished jobs listed. The
    reason is SLURM's word for why a job waits (``Resources``, ``Priority``, ``BeginTime``,
    ``BadConstraints``, ...); it may hold spaces, hence one job per line.
    """
    mains = sorted({j.split("_")[0] for j in job_ids})
    if not mains:
        return {}
    out = _run(["squeue", "-h", "-r", "-t", "all", "-o", "%i|%T|%r", "-j", ",".join(mains)])
    if out is None:
        return None
    if out.returncode != 0:
        # squeue -j fails with "Invalid job id" once every listed job has been purged.
        if "Invalid job id" in out.stderr:
            return {}
        log.warning("squeue failed (%d): %s", out.returncode, out.stderr.strip())
        return None
    rows = (line.strip().split("|", 2) for line in out.stdout.splitlines())
    return {r[0]: (r[1], r[2] if len(r) > 2 else "") for r in rows if len(r) >= 2}


def squeue_states(job_ids: Sequence[str]) -> dict[str, str] | None:
    """State of every listed array task or job (see :func:`squeue_jobs`)."""
    jobs = squeue_jobs(job_ids)
    return None if jobs is None else {job: state for job, (state, _) in jobs.items()}


def cancel_slurm_job(job_id: str) -> None:
    """``scancel`` one job or array task; a job that already ended is not an error here."""
    out = _run(["scancel", job_id])
    if out is not None and out.returncode != 0:
        log.warning("scancel %s failed (%d): %s", job_id, out.returncode, out.stderr.strip())


class Sacct:
    """``sacct`` final states, if SLURM accounting is enabled (checked once)."""

    def __init__(self) -> None:
        self._available: bool | None = None

    @property
    def available(self) -> bool:
        if self._available is None:
            out = _run(["sacct", "-n", "-X", "-j", "1"]) if shutil.which("sacct") else None
            self._available = out is not None and out.returncode == 0
            if not self._available:
                log.info("sacct unavailable (no SLURM accounting): using squeue and result files")
        return self._available

    def states(self, job_ids: Sequence[str]) -> dict[str, str]:
        if not job_ids or not self.available:
            return {}
        mains = sorted({j.split("_")[0] for j in job_ids})
        out = _run(["sacct", "-n", "-X", "-P", "-o", "JobID,State", "-j", ",".join(mains)])
        if out is None or out.returncode != 0:
            return {}
        states: dict[str, str] = {}
        for line in out.stdout.splitlines():
            jid, _, state = line.partition("|")
            states[jid.strip()] = state.split()[0] if state.split() else ""  # "CANCELLED by 0"
        return states


class Reconciler:
    """Turns evidence about launched jobs into one :class:`JobState` each. Keep one per worker."""

    def __init__(
        self, *, grace_s: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.grace_s = grace_s
        self.clock = clock
        self.sacct = Sacct()
        self._missing_since: dict[str, float] = {}

    def poll(self, refs: Sequence[JobRef]) -> list[JobStatus]:
        """One status per ref, in order (refs may share a job: an array task runs several
        work items, each with its own outcome file)."""
        slurm = self._slurm_statuses([r for r in refs if r.cluster == "slurm"])
        return [slurm[i] if r.cluster == "slurm" else self._submitit_status(r)
                for i, r in _slurm_index(refs)]  # fmt: skip

    def _slurm_statuses(self, refs: Sequence[JobRef]) -> list[JobStatus]:
        out = [JobStatus(JobState.done) if _all_exist(r.outcome_paths) else None for r in refs]
        todo = [r for r, s in zip(refs, out, strict=True) if s is None]
        if not todo:
            return [s or JobStatus(JobState.done) for s in out]
        listed = squeue_jobs([r.job_id for r in todo])
        if listed is None:  # squeue broken (slurmctld down): say nothing new
            return [s or JobStatus(JobState.running, "squeue failed") for s in out]
        unlisted = [r.job_id for r in todo if r.job_id not in listed]
        accounted = self.sacct.states(unlisted) if unlisted else {}
        return [
            s or self._judge(r, *(listed.get(r.job_id) or (accounted.get(r.job_id), "")))
            for r, s in zip(refs, out, strict=True)
        ]

    def _judge(self, ref: JobRef, state: str | None, reason: str = "") -> JobStatus:
        if state in ALIVE:
            self._missing_since.pop(ref.job_id, None)
            if state == "PENDING":  # why it waits, in SLURM's words
                return JobStatus(JobState.pending, reason, slurm_state=state)
            return JobStatus(JobState.running, slurm_state=state)
        # Finished or unknown but outcomes missing: re-check the files (the job may have
        # written them between our two looks), then allow a grace period for slow filesystems.
        if _all_exist(ref.outcome_paths):
            return JobStatus(JobState.done, slurm_state=state)
        since = self._missing_since.setdefault(ref.job_id, self.clock())
        if self.clock() - since < self.grace_s:
            return JobStatus(JobState.running, "finishing", slurm_state=state)
        if state:
            return JobStatus(JobState.lost, EXPLAIN.get(state, f"SLURM state {state}"), state)
        return JobStatus(
            JobState.lost, "the SLURM job vanished from squeue without writing results"
        )

    def _submitit_status(self, ref: JobRef) -> JobStatus:
        if _all_exist(ref.outcome_paths):
            return JobStatus(JobState.done)
        job = ref.job
        if job is None:  # a local job of a previous worker process: nothing to watch
            return JobStatus(JobState.lost, "the local job's worker process is gone")
        if not job.done():  # a debug job runs right here, inside done()
            return JobStatus(JobState.running)
        if _all_exist(ref.outcome_paths):
            return JobStatus(JobState.done)
        return JobStatus(JobState.lost, f"the {ref.cluster} job ended without writing results")


def _slurm_index(refs: Sequence[JobRef]) -> list[tuple[int, JobRef]]:
    """Each ref with its position among the SLURM refs (-1 for the others)."""
    out, n = [], 0
    for ref in refs:
        out.append((n if ref.cluster == "slurm" else -1, ref))
        n += ref.cluster == "slurm"
    return out


def _all_exist(paths: Sequence[Path]) -> bool:
    return all(p.exists() for p in paths)
