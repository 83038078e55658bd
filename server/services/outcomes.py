"""Per-test-example outcomes of scored seeds: checked when a result arrives, stored as bytes,
loaded as numpy for resampling (bootstrap intervals, paired tests on boards).

    problems = outcome_problems(ctx=ctx, result=result)    # [] when every outcome fits its split
    write_outcomes(db=db, submission_id=7, result=result)  # flushed with the scores
    load_outcomes(db=db, submission_ids=[7, 9], task="test1")
    # {7: (seeds, n) array, 9: ...}: submissions with outcomes, a row per stored seed

A stored seed is a training seed of a submission, or a selection seed of a reference row,
whose record stacks its training seeds (``seeds`` > 1; ``submissions.outcomes``): its row is
the mean over them, as its reported score is. A result without outcomes (a worker older than
them) is accepted and stored without them: boards show such rows without intervals. An
outcome whose kind is not the dataset's, whose size is not the test split's, or whose UID
order is not the split's (when the dataset is prepared on this server) is refused with the
rest of the result.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from server.models import Outcome, Result
from submissions.errors import DataNotFound
from submissions.outcomes import (
    KINDS,
    PRIMARY,
    decode_all,
    decode_array,
    example_matrix,
    split_seeds,
    uids_digest,
)

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from server.context import ServerContext
    from submissions.schemas import EvalResult

KIND_OF_TASK_TYPE = {
    "classification": "correct",
    "regression": "error",
    "reid": "rank1_hit",
    "detection": "detection_matches",
}
_digests: dict[tuple[str, str, str], tuple[int, str]] = {}
_lock = threading.Lock()


def outcome_problems(*, ctx: ServerContext, result: EvalResult) -> list[str]:
    """What is wrong with the result's outcomes, a line each (sizes within the result are
    checked by its schema; here: against the dataset)."""
    spec = ctx.catalog.spec(result.dataset)
    want = KIND_OF_TASK_TYPE.get(spec.task_type)
    problems = []
    for task in result.tasks:
        split = _split_identity(ctx, result.dataset, task.task)
        for seed in task.seeds:
            out = seed.outcomes
            if out is None:
                continue
            where = f"task {task.task} seed {seed.seed}"
            if out.kind != want:
                problems.append(f"{where}: outcomes of kind {out.kind!r}, expected {want!r}")
            if split is not None and out.n != split[0]:
                problems.append(f"{where}: {out.n} outcomes, the test split has {split[0]}")
            elif split is not None and out.uids_sha256 != split[1]:
                problems.append(f"{where}: outcomes are not in the test split's UID order")
    return problems


def _split_identity(ctx: ServerContext, dataset: str, task: str) -> tuple[int, str] | None:
    """(size, UID digest) of the task's test split; None when not prepared on this server."""
    try:
        ds = ctx.catalog.dataset(dataset)
        split = ctx.catalog.spec(dataset).task(task).test
        key = (dataset, ds.manifest_hash(), split)
        with _lock:
            if key not in _digests:
                uids = ds.uids(split)
                _digests[key] = (len(uids), uids_digest(uids))
            return _digests[key]
    except DataNotFound:
        return None


def write_outcomes(
    *, db: Session, submission_id: int, result: EvalResult, tasks: Collection[str] | None = None
) -> int:
    """Add one row per array of every seed's outcomes (of ``tasks``; default all) (the caller
    commits); returns how many."""
    n = 0
    for task in result.tasks:
        if tasks is not None and task.task not in tasks:
            continue
        for seed in task.seeds:
            out = seed.outcomes
            if out is None:
                continue
            for name, data in out.raw().items():
                db.add(Outcome(submission_id=submission_id, task=task.task, seed=seed.seed,
                               kind=out.kind, name=name, n=out.n, uids_sha256=out.uids_sha256,
                               seeds=out.seeds, data=data))  # fmt: skip
                n += 1
    return n


def add_missing_outcomes(*, db: Session, submission_id: int, result: EvalResult) -> int:
    """Outcomes of a result posted again for a row stored before outcomes were kept: added
    for each task the row has none of, when every seed of the posted task carries them and
    its seeds and metrics are exactly the stored ones (the same evaluation: anything else
    would put another run's outcomes under these scores). Returns the arrays added."""
    stored: dict[str, dict[int, dict[str, float]]] = defaultdict(dict)
    for r in db.exec(select(Result).where(Result.submission_id == submission_id)).all():
        stored[r.task][r.seed] = r.metrics
    have = set(db.exec(select(Outcome.task).where(Outcome.submission_id == submission_id)).all())
    tasks = {
        t.task
        for t in result.tasks
        if t.task not in have
        and all(s.outcomes is not None for s in t.seeds)
        and {s.seed: s.metrics for s in t.seeds} == stored.get(t.task)
    }
    return write_outcomes(db=db, submission_id=submission_id, result=result, tasks=tasks)


Record = tuple[str, int, int, dict[str, bytes]]  # kind, n, stacked seeds, raw arrays


def load_outcome_arrays(
    *, db: Session, submission_ids: Sequence[int], task: str
) -> dict[int, dict[int, list[dict[str, npt.NDArray[Any]]]]]:
    """``{submission: {seed: [{array name: values}, ...]}}`` of every stored outcome of
    ``task``: per stored seed, its training seeds' arrays (one for a submission's seed, the
    stacked training seeds of a reference row's selection seed)."""
    out: dict[int, dict[int, list[dict[str, npt.NDArray[Any]]]]] = defaultdict(dict)
    for (sid, seed), (kind, n, seeds, raw) in sorted(_records(db, submission_ids, task).items()):
        out[sid][seed] = split_seeds(kind, n, decode_all(kind, n, raw, seeds=seeds), seeds)
    return dict(out)


def load_outcomes(
    *, db: Session, submission_ids: Sequence[int], task: str, name: str | None = None
) -> dict[int, npt.NDArray[np.generic]]:
    """``{submission: (seeds, examples) array}`` of one array per example (``name``;
    default: ``correct``, ``sq_err`` or ``hit`` by kind), stored seeds in ascending order,
    each row the mean over that seed's training seeds (one, but for a reference row's
    selection seeds). For reid only the counted queries are columns (what rank1 averages).
    Submissions whose seeds all lack outcomes are absent; detection matches are not per
    example (use ``load_outcome_arrays``).
    """
    by_submission: dict[int, list[Record]] = defaultdict(list)
    for (sid, _), record in sorted(_records(db, submission_ids, task).items()):
        by_submission[sid].append(record)
    out: dict[int, npt.NDArray[np.generic]] = {}
    for sid, records in by_submission.items():
        kind = records[0][0]
        pick = name or PRIMARY.get(kind)
        if pick is None:
            raise ValueError(f"{kind} outcomes have no per-example array; load_outcome_arrays")
        needed = (pick, "counted") if kind == "rank1_hit" else (pick,)
        out[sid] = example_matrix(kind, [_unit(r, needed) for r in records], name=pick)
    return out


def _records(
    db: Session, submission_ids: Sequence[int], task: str
) -> dict[tuple[int, int], Record]:
    """Every complete outcome record of ``task`` by (submission, stored seed), undecoded (a
    partial record is no record)."""
    # Plain columns, not ORM objects: a board reads ~20,000 of these rows per change.
    cols = [col(c) for c in (Outcome.submission_id, Outcome.seed, Outcome.kind, Outcome.name,
                             Outcome.n, Outcome.seeds, Outcome.data)]  # fmt: skip
    stmt = sa.select(*cols).where(
        col(Outcome.submission_id).in_(list(submission_ids)), col(Outcome.task) == task
    )
    rows: dict[tuple[int, int], list[Any]] = defaultdict(list)
    for row in db.execute(stmt).all():
        rows[(row.submission_id, row.seed)].append(row)
    out: dict[tuple[int, int], Record] = {}
    for key, arrays in rows.items():
        first = arrays[0]
        raw = {a.name: bytes(a.data) for a in arrays}
        if set(raw) == set(KINDS[first.kind]):
            out[key] = (first.kind, first.n, first.seeds, raw)
    return out


def _unit(record: Record, names: Sequence[str]) -> list[dict[str, npt.NDArray[Any]]]:
    """A stored seed's training seeds' arrays; one seed decodes only ``names`` (per-example
    arrays: what a board reads, ~5 us a record instead of ~40 for every array)."""
    kind, n, seeds, raw = record
    if seeds == 1:
        return [{k: decode_array(KINDS[kind][k][0], raw[k], count=n) for k in names}]
    return split_seeds(kind, n, decode_all(kind, n, raw, seeds=seeds), seeds)
