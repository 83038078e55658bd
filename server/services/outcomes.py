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
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, col, select

from server.models import Outcome
from submissions.errors import DataNotFound
from submissions.outcomes import (
    KINDS,
    PRIMARY,
    decode_all,
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


def write_outcomes(*, db: Session, submission_id: int, result: EvalResult) -> int:
    """Add one row per array of every seed's outcomes (the caller commits); returns how many."""
    n = 0
    for task in result.tasks:
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


def load_outcome_arrays(
    *, db: Session, submission_ids: Sequence[int], task: str
) -> dict[int, dict[int, list[dict[str, npt.NDArray[Any]]]]]:
    """``{submission: {seed: [{array name: values}, ...]}}`` of every stored outcome of
    ``task``: per stored seed, its training seeds' arrays (one for a submission's seed, the
    stacked training seeds of a reference row's selection seed)."""
    stmt = select(Outcome).where(
        col(Outcome.submission_id).in_(list(submission_ids)), Outcome.task == task
    )
    rows: dict[tuple[int, int], list[Outcome]] = defaultdict(list)
    for row in db.exec(stmt).all():
        rows[(row.submission_id, row.seed)].append(row)
    out: dict[int, dict[int, list[dict[str, npt.NDArray[Any]]]]] = defaultdict(dict)
    for (sid, seed), arrays in sorted(rows.items()):
        first = arrays[0]
        raw = {a.name: bytes(a.data) for a in arrays}
        if set(raw) == set(KINDS[first.kind]):  # a partial record is no record
            stacked = decode_all(first.kind, first.n, raw, seeds=first.seeds)
            out[sid][seed] = split_seeds(first.kind, first.n, stacked, first.seeds)
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
    out: dict[int, npt.NDArray[np.generic]] = {}
    for sid, seeds in load_outcome_arrays(db=db, submission_ids=submission_ids, task=task).items():
        units = [seeds[s] for s in sorted(seeds)]
        kind = _kind_of(units[0][0])
        if (name or PRIMARY.get(kind)) is None:
            raise ValueError(f"{kind} outcomes have no per-example array; load_outcome_arrays")
        out[sid] = example_matrix(kind, units, name=name)
    return out


def _kind_of(arrays: dict[str, Any]) -> str:
    return next(k for k, names in KINDS.items() if set(names) == set(arrays))
