"""From claimed submissions to work: dedup keys, work items, arrays, job records and locks.

    groups = group_by_key(claimed)                    # {key: [ClaimedSubmission, ...]}
    item = work_item(claimed[0].identity, run_dir=runs / "dispatch", data_root=.., configs_dir=..)
    arrays = pack(items, spec)                        # {(dataset, recipe): [[item, ...], ...]}
    with KeyLock(item.work_dir):                      # one launcher per key across workers
        record = read_job_record(item.work_dir)

Identical work (the same ``EvalIdentity``: subset sha256, dataset, fraction, task, recipe)
shares one key (``work_key``) and one work directory, so it is trained once whoever claims
it, and a worker that restarts finds the job (or the outcome) its predecessor left there.
"""

from __future__ import annotations

import fcntl
import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict

from harness.dispatch.executors import ExecutorSpec
from harness.dispatch.task import WorkItem, work_key
from submissions.schemas import EvalIdentity

JOB_RECORD = "job.json"
LAUNCH_LOG = "launches.log"


class Identified(Protocol):
    """Anything that names an evaluation (``ClaimedSubmission``, ``SubmissionPublic``)."""

    @property
    def identity(self) -> EvalIdentity: ...


S = TypeVar("S", bound=Identified)


def group_by_key(subs: Iterable[S]) -> dict[str, list[S]]:
    groups: dict[str, list[S]] = defaultdict(list)
    for sub in subs:
        groups[work_key(sub.identity)].append(sub)
    return dict(groups)


def work_item(
    identity: EvalIdentity,
    *,
    run_dir: Path,
    data_root: Path,
    configs_dir: Path,
    store_dir: Path | None = None,
    weights_dir: Path | None = None,
) -> WorkItem:
    return WorkItem(
        identity=identity,
        work_dir=(run_dir / "work" / work_key(identity)).absolute(),
        data_root=data_root.absolute(),  # jobs may start in another working directory
        configs_dir=configs_dir.absolute(),
        store_dir=store_dir.absolute() if store_dir else None,
        weights_dir=weights_dir.absolute() if weights_dir else None,
    )


def pack(
    items: Sequence[WorkItem], spec: ExecutorSpec
) -> dict[tuple[str, str], list[list[WorkItem]]]:
    """One job array per (dataset, recipe); each array task runs a chunk of items."""
    by_array: dict[tuple[str, str], list[WorkItem]] = defaultdict(list)
    for item in items:
        by_array[(item.identity.dataset, item.identity.recipe)].append(item)
    return {
        k: [[group[i] for i in chunk] for chunk in spec.chunks(len(group))]
        for k, group in by_array.items()
    }


class JobRecord(BaseModel):
    """Where a key's current job runs, so a later worker can adopt it instead of retraining."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cluster: str
    job_id: str
    worker: str
    launched_at: datetime
    stdout: Path | None = None
    stderr: Path | None = None


def read_job_record(work_dir: Path) -> JobRecord | None:
    try:
        return JobRecord.model_validate_json((work_dir / JOB_RECORD).read_text())
    except (FileNotFoundError, ValueError):
        return None


def write_job_record(work_dir: Path, record: JobRecord) -> None:
    tmp = work_dir / f".{JOB_RECORD}.{os.getpid()}.tmp"
    tmp.write_text(record.model_dump_json())
    os.replace(tmp, work_dir / JOB_RECORD)
    with (work_dir / LAUNCH_LOG).open("a") as fh:  # append-only: how often this key trained
        r = record
        fh.write(f"{r.launched_at.isoformat()} {r.worker} {r.cluster} {r.job_id}\n")


def launch_count(work_dir: Path) -> int:
    """How many times work was launched for this key (tests assert exactly-once training)."""
    try:
        return len((work_dir / LAUNCH_LOG).read_text().splitlines())
    except FileNotFoundError:
        return 0


def now_utc() -> datetime:
    return datetime.now(UTC)


class KeyLock:
    """An exclusive ``flock`` on a key's work directory; released if the process dies."""

    def __init__(self, work_dir: Path) -> None:
        self.path = work_dir / ".lock"
        self._fd: int | None = None

    def __enter__(self) -> KeyLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def describe(groups: dict[str, list[Any]], spec: ExecutorSpec) -> list[str]:
    """Human lines for ``--dry-run``: the arrays, tasks and submissions a run would launch."""
    firsts: dict[str, EvalIdentity] = {key: subs[0].identity for key, subs in groups.items()}
    by_array: dict[tuple[str, str], list[str]] = defaultdict(list)
    for key, ident in firsts.items():
        by_array[(ident.dataset, ident.recipe)].append(key)
    lines = []
    for (dataset, recipe), keys in sorted(by_array.items()):
        chunks = spec.chunks(len(keys))
        lines.append(
            f"{spec.cluster} array {dataset}/{recipe}: {len(keys)} unique item(s) "
            f"in {len(chunks)} task(s)"
        )
        for key in keys:
            ids = ", ".join(str(s.id) for s in groups[key])
            i = firsts[key]
            lines.append(
                f"  fraction {i.fraction:g} task {i.task or 'all'} sha256 {i.sha256[:12]}: "
                f"submission(s) {ids}"
            )
    return lines
