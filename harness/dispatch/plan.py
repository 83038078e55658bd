"""From claimed submissions to work: dedup keys, work items, arrays, job records and locks.

    groups = group_by_key(claimed)                    # {key: [ClaimedSubmission, ...]}
    item = work_item(claimed[0], key=key, run_dir=runs / "dispatch", data_root=.., configs_dir=..)
    arrays = pack(items, spec)                        # {(dataset, recipe): [[item, ...], ...]}
    with KeyLock(item.work_dir):                      # one launcher per key across workers
        record = read_job_record(item.work_dir)

Identical work (same subset sha256, dataset, fraction, task, recipe) shares one key and one
work directory, so it is trained once whoever claims it, and a worker that restarts finds the
job (or the outcome) its predecessor left there.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict

from harness.dispatch.executors import ExecutorSpec
from harness.dispatch.task import WorkItem

JOB_RECORD = "job.json"
LAUNCH_LOG = "launches.log"


class WorkSpec(Protocol):
    """What identifies a piece of work (``ClaimedSubmission`` and ``SubmissionPublic`` fit)."""

    @property
    def dataset(self) -> str: ...
    @property
    def fraction(self) -> float: ...
    @property
    def task(self) -> str | None: ...
    @property
    def recipe(self) -> str: ...
    @property
    def sha256(self) -> str: ...


S = TypeVar("S", bound=WorkSpec)


def work_key(sub: WorkSpec) -> str:
    """A filesystem-safe key, equal exactly for identical work."""
    blob = f"{sub.dataset}|{sub.fraction:.9g}|{sub.task or '*'}|{sub.recipe}|{sub.sha256}"
    digest = hashlib.sha256(blob.encode()).hexdigest()[:24]
    prefix = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{sub.dataset}-{sub.recipe}")[:60]
    return f"{prefix}-{digest}"


def group_by_key(subs: Iterable[S]) -> dict[str, list[S]]:
    groups: dict[str, list[S]] = defaultdict(list)
    for sub in subs:
        groups[work_key(sub)].append(sub)
    return dict(groups)


def work_item(
    sub: WorkSpec,
    *,
    run_dir: Path,
    data_root: Path,
    configs_dir: Path,
    store_dir: Path | None = None,
) -> WorkItem:
    key = work_key(sub)
    return WorkItem(
        key=key,
        work_dir=(run_dir / "work" / key).absolute(),
        dataset=sub.dataset,
        fraction=sub.fraction,
        task=sub.task,
        recipe=sub.recipe,
        sha256=sub.sha256,
        data_root=data_root.absolute(),  # jobs may start in another working directory
        configs_dir=configs_dir.absolute(),
        store_dir=store_dir.absolute() if store_dir else None,
    )


def pack(
    items: Sequence[WorkItem], spec: ExecutorSpec
) -> dict[tuple[str, str], list[list[WorkItem]]]:
    """One job array per (dataset, recipe); each array task runs a chunk of items."""
    by_array: dict[tuple[str, str], list[WorkItem]] = defaultdict(list)
    for item in items:
        by_array[(item.dataset, item.recipe)].append(item)
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
    firsts = {key: subs[0] for key, subs in groups.items()}
    by_array: dict[tuple[str, str], list[str]] = defaultdict(list)
    for key, sub in firsts.items():
        by_array[(sub.dataset, sub.recipe)].append(key)
    lines = []
    for (dataset, recipe), keys in sorted(by_array.items()):
        chunks = spec.chunks(len(keys))
        lines.append(
            f"{spec.cluster} array {dataset}/{recipe}: {len(keys)} unique item(s) "
            f"in {len(chunks)} task(s)"
        )
        for key in keys:
            ids = ", ".join(str(s.id) for s in groups[key])
            s = firsts[key]
            lines.append(
                f"  fraction {s.fraction:g} task {s.task or 'all'} sha256 {s.sha256[:12]}: "
                f"submission(s) {ids}"
            )
    return lines
