"""What runs inside an array task: evaluate work items in sequence, write one outcome each.

    identity = EvalIdentity(dataset="demo", fraction=0.1, task=None, recipe="linear_probe",
                            sha256=sha)
    item = WorkItem(identity=identity, work_dir=run_dir / "work" / work_key(identity),
                    data_root=..., configs_dir=...)
    run_work_items([item])               # the function submitit ships to the job
    read_outcome(item.outcome_path)      # -> Outcome(status="ok", result=EvalResult(...))

The outcome file (JSON, written atomically) is the job's only product: the worker reads it,
never submitit's pickles, so a new worker can pick up what a killed one launched. An
exception the submission caused (a ``TdcError``) becomes ``status="user_error"`` with its
message for the participant; anything else is ``status="error"`` with the traceback, which
the worker reports as an infrastructure failure (it is our fault, not the participant's).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
import traceback
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from submissions.schemas import EvalIdentity, EvalResult

log = logging.getLogger(__name__)

SUBSET_FILE = "subset.npy"
OUTCOME_FILE = "outcome.json"


def work_key(identity: EvalIdentity) -> str:
    """A filesystem-safe key (the dedup key, hashed): equal exactly for identical work."""
    digest = hashlib.sha256(identity.key.encode()).hexdigest()[:24]
    prefix = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{identity.dataset}-{identity.recipe}")[:60]
    return f"{prefix}-{digest}"


class WorkItem(BaseModel):
    """One unit of work: an evaluation identity (a subset by content), where it is worked."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    identity: EvalIdentity
    work_dir: Path
    data_root: Path
    configs_dir: Path
    store_dir: Path | None = None  # the results store shared with sweeps (harness.store)
    weights_dir: Path | None = None  # local checkpoints (TDC_WEIGHTS_DIR of the worker)

    @property
    def key(self) -> str:
        return work_key(self.identity)

    @property
    def subset_path(self) -> Path:
        return self.work_dir / SUBSET_FILE

    @property
    def outcome_path(self) -> Path:
        return self.work_dir / OUTCOME_FILE


class Outcome(BaseModel):
    """What one work item produced: a result, or why not."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: Literal["ok", "user_error", "error"]
    key: str
    result: EvalResult | None = None
    message: str | None = None
    traceback: str | None = None
    job_id: str | None = None
    wall_time_s: float = 0.0


def run_work_items(items: list[WorkItem]) -> list[str]:
    """Evaluate each item unless it already has a final outcome; returns the statuses.

    Runs inside the submitit job (or in-process for the debug executor). Never raises for one
    item's failure: the others in the same array task still run.
    """
    executor, job_id = _job_identity()
    statuses: list[str] = []
    for item in items:
        done = read_outcome(item.outcome_path)
        if done is not None and done.status != "error":  # a requeued task: keep what is done
            statuses.append(done.status)
            continue
        outcome = run_one(item, executor=executor, job_id=job_id)
        write_outcome(item.outcome_path, outcome)
        statuses.append(outcome.status)
    return statuses


def run_one(item: WorkItem, *, executor: str, job_id: str | None) -> Outcome:
    """Train and evaluate one item; classify any failure."""
    from submissions.errors import TdcError

    start = time.perf_counter()
    try:
        result = _evaluate(item)
    except TdcError as err:
        log.info("work item %s: user error: %s", item.key, err)
        return Outcome(status="user_error", key=item.key, message=str(err), job_id=job_id,
                       wall_time_s=time.perf_counter() - start)  # fmt: skip
    except Exception as err:
        log.exception("work item %s failed", item.key)
        return Outcome(
            status="error",
            key=item.key,
            message=f"{type(err).__name__}: {err}",
            traceback=traceback.format_exc()[-20_000:],
            job_id=job_id,
            wall_time_s=time.perf_counter() - start,
        )
    manifest = result.manifest.model_copy(update={"executor": executor, "job_id": job_id})
    result = result.model_copy(update={"manifest": manifest})
    return Outcome(
        status="ok", key=item.key, result=result, job_id=job_id,
        wall_time_s=time.perf_counter() - start,
    )  # fmt: skip


def _evaluate(item: WorkItem) -> EvalResult:
    from harness.runner import EvalJob, run_eval_job

    job = EvalJob.of(
        item.identity,
        subset_path=item.subset_path,
        data_root=item.data_root,
        configs_dir=item.configs_dir,
        weights_dir=item.weights_dir,
        store_dir=item.store_dir,
    )
    return run_eval_job(job)


def _job_identity() -> tuple[str, str | None]:
    """(executor kind, job id) of the running submitit job; ("inline", None) outside one."""
    try:
        import submitit

        env = submitit.JobEnvironment()
    except RuntimeError:
        return "inline", None
    cluster = env.cluster  # "slurm", "local" or "debug"
    return cluster, str(env.job_id)


def read_outcome(path: Path) -> Outcome | None:
    """The outcome at ``path``; None if absent or unreadable (a torn write cannot happen)."""
    try:
        return Outcome.model_validate_json(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError as err:
        log.warning("ignoring unreadable outcome %s: %s", path, err)
        return None


def write_outcome(path: Path, outcome: Outcome) -> None:
    """Write atomically: a reader sees the whole file or none."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(outcome.model_dump_json())
    os.replace(tmp, path)
