"""Full validation of a subset against a dataset: every rule, every problem at once.

The rules (docs: DESIGN.md "Rules that keep the benchmark honest"): every UID is in the
pool; no UID twice; no UID from any task's query or test split; 1 <= size <= budget, where
budget = floor(fraction x pool size) for a fraction the dataset allows; the task, if given,
is one of the dataset's. The result is a :class:`ValidationReport`; its ``sha256`` (of the
sorted pool row ids as little-endian int64) is the subset's identity::

    report = validate_subset(read_subset_file(path), ds=ds, fraction=0.1, task=None)
    report.ok, report.problems, report.size, report.budget, report.sha256
    report.pool_rows                      # sorted int64 pool rows (not in the JSON)
    report = load_and_validate(path, ds=ds, fraction=0.1, task="test1")   # ValidationFailed

:func:`check_subset` is the pure core (spec + index, no dataset on disk), for subsets in
memory, the benchmark and callers that hold an index already. Files (``validate_file``,
``load_and_validate``: the server's uploads, the runner, ``tdc-harness validate``) go through
``harness.validation_stream.check_file``: the same report, read in chunks in bounded memory.
No torch is imported here.
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from harness.specs import DatasetSpec, check_fraction
from submissions.errors import ConfigError, SubsetFileError, ValidationFailed
from submissions.schemas import Problem
from submissions.subset_file import (
    DEFAULT_MAX_BYTES,
    SubsetFile,
    canonical_strings,
    read_subset_file,
)

if TYPE_CHECKING:
    import pandas as pd

    from harness.datasets import Dataset
    from harness.datasets.uid_index import Resolution, UidIndex

SAMPLE = 10
FIRST = SAMPLE * 10  # samples are the distinct UIDs among the first FIRST entries found
_HASH_BLOCK = 1 << 20
# Above this many unknown UIDs, repeats among them are not searched (the file is invalid
# anyway, and the search would materialise every unknown UID as text).
UNKNOWN_REPEAT_LIMIT = 1_000_000


class ValidationReport(BaseModel):
    """What validation found. ``ok`` iff ``problems`` is empty."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    ok: bool
    dataset: str
    fraction: float
    task: str | None
    size: int = Field(description="number of UIDs in the file, repeats included")
    budget: int | None = Field(description="floor(fraction x pool size); None if not allowed")
    pool_size: int
    kind: str | None = Field(None, description="the file's UID dtype family")
    nbytes: int | None = None
    sha256: str | None = Field(
        None,
        description="sha256 of the sorted pool rows (int64 LE); None unless each UID "
        "is a distinct pool row",
    )
    problems: list[Problem] = Field(default_factory=list)
    class_counts: dict[str, int] = Field(default_factory=dict)
    pool_class_counts: dict[str, int] = Field(default_factory=dict)
    pool_rows: Any = Field(None, exclude=True, repr=False)  # sorted int64 numpy array


@dataclass(frozen=True)
class PoolLabels:
    """Pool labels as integer codes (row-aligned) plus the label names, for class counts."""

    codes: npt.NDArray[np.int64]
    names: list[str]

    @classmethod
    def from_series(cls, labels: pd.Series) -> PoolLabels:
        import pandas as pd

        codes, names = pd.factorize(labels, sort=True)
        return cls(codes=np.asarray(codes, np.int64), names=[str(n) for n in names])

    def counts(self, rows: npt.NDArray[np.int64] | None = None) -> dict[str, int]:
        picked = self.codes if rows is None else self.codes[rows]
        counts = np.bincount(picked[picked >= 0], minlength=len(self.names))
        return {name: int(c) for name, c in zip(self.names, counts, strict=True)}


# --- entry points --------------------------------------------------------------------------


def validate_subset(
    subset: SubsetFile, *, ds: Dataset, fraction: float, task: str | None
) -> ValidationReport:
    """Validate a read subset against a prepared dataset (builds its index on first use)."""
    return check_subset(
        subset,
        spec=ds.spec,
        index=ds.uid_index(),
        fraction=fraction,
        task=task,
        labels=pool_labels(ds),
    )


def validate_file(
    path: Path,
    *,
    ds: Dataset,
    fraction: float,
    task: str | None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    keep_rows: bool = True,
) -> ValidationReport:
    """Read and validate in bounded memory (``harness.validation_stream``); a file that
    breaks the contract is a report with that problem. ``keep_rows=False``: no
    ``pool_rows`` (their 8 bytes a UID), only the sha256."""
    from harness.validation_stream import check_file  # it builds on this module

    try:
        subset = read_subset_file(path, max_bytes=max_bytes)
        return check_file(
            subset,
            spec=ds.spec,
            index=ds.uid_index(),
            fraction=fraction,
            task=task,
            labels=pool_labels(ds),
            keep_rows=keep_rows,
        )
    except SubsetFileError as err:
        return _unreadable(err, spec=ds.spec, pool_size=ds.pool_size, fraction=fraction, task=task)


def load_and_validate(
    path: Path,
    *,
    ds: Dataset,
    fraction: float,
    task: str | None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    keep_rows: bool = True,
) -> ValidationReport:
    """The report of a valid subset, else ``ValidationFailed`` carrying every problem."""
    report = validate_file(
        path, ds=ds, fraction=fraction, task=task, max_bytes=max_bytes, keep_rows=keep_rows
    )
    if not report.ok:
        raise ValidationFailed(report.problems)
    return report


def pool_labels(ds: Dataset) -> PoolLabels | None:
    """Class labels of the pool for classification datasets (None otherwise)."""
    if ds.spec.task_type != "classification":
        return None
    return PoolLabels.from_series(ds.split(ds.spec.pool)["label"])


# --- the pure core -------------------------------------------------------------------------


def check_subset(
    subset: SubsetFile,
    *,
    spec: DatasetSpec,
    index: UidIndex,
    fraction: float,
    task: str | None,
    labels: PoolLabels | None = None,
) -> ValidationReport:
    """Every rule on ``subset`` against ``index`` (built from the splits of ``spec``)."""
    pool_size = index.sizes[index.split_code(spec.pool)]
    budget, problems = request_problems(spec, pool_size=pool_size, fraction=fraction, task=task)
    res = index.resolve(subset.raw, subset.kind)
    pool_code = index.split_code(spec.pool)
    pool_rows = res.rows[res.codes == pool_code]
    pool_rows.sort()  # in place: no second copy of a 30M-row array
    problems += _unknown(subset, res)
    problems += _repeats(subset, res, pool_code, pool_rows)
    problems += _leaks(subset, res, spec=spec, index=index)
    problems += size_problems(len(subset), budget, fraction, pool_size)
    distinct_pool = len(pool_rows) == len(subset) and not _has_repeats(pool_rows)
    return ValidationReport(
        ok=not problems,
        dataset=spec.name,
        fraction=fraction,
        task=task,
        size=len(subset),
        budget=budget,
        pool_size=pool_size,
        kind=subset.kind,
        nbytes=subset.nbytes,
        sha256=subset_sha256(pool_rows) if distinct_pool else None,
        problems=problems,
        class_counts=labels.counts(pool_rows) if labels else {},
        pool_class_counts=labels.counts() if labels else {},
        pool_rows=pool_rows,
    )


def subset_sha256(pool_rows: npt.NDArray[np.int64]) -> str:
    """Identity of a subset: sha256 of its sorted pool rows as little-endian int64."""
    rows = np.asarray(pool_rows)
    if len(rows) > 1 and not bool(np.all(rows[1:] >= rows[:-1])):
        rows = np.sort(rows)
    digest = hashlib.sha256()
    for start in range(0, len(rows), _HASH_BLOCK):  # blocks: no full little-endian copy
        block = np.ascontiguousarray(rows[start : start + _HASH_BLOCK], dtype="<i8")
        digest.update(block.view(np.uint8).data)
    return digest.hexdigest()


def _unreadable(
    err: SubsetFileError, *, spec: DatasetSpec, pool_size: int, fraction: float, task: str | None
) -> ValidationReport:
    budget, problems = request_problems(spec, pool_size=pool_size, fraction=fraction, task=task)
    problems.insert(0, Problem(code=err.code, message=f"subset file rejected: {err}"))
    return ValidationReport(
        ok=False,
        dataset=spec.name,
        fraction=fraction,
        task=task,
        size=0,
        budget=budget,
        pool_size=pool_size,
        problems=problems,
        pool_rows=np.empty(0, np.int64),
    )


def request_problems(
    spec: DatasetSpec, *, pool_size: int, fraction: float, task: str | None
) -> tuple[int | None, list[Problem]]:
    """The budget (None for a fraction the dataset does not allow) and the request's problems."""
    problems: list[Problem] = []
    budget: int | None = None
    try:
        budget = spec.budget(check_fraction(spec, fraction), pool_size=pool_size)
    except ConfigError as err:
        problems.append(Problem(code="fraction_not_allowed", message=f"{err}; pick one of those"))
    if task is not None and task not in spec.task_names():
        near = difflib.get_close_matches(task, spec.task_names(), n=1)
        hint = f" Did you mean {near[0]!r}?" if near else ""
        problems.append(
            Problem(
                code="unknown_task",
                message=f"{spec.name} has no task {task!r}.{hint} Tasks: "
                f"{', '.join(spec.task_names())}; or give no task to be scored on all of them",
                sample=[task],
            )
        )
    return budget, problems


def _positions(res: Resolution, mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
    """File positions (ascending) of the sorted-order entries selected by ``mask``."""
    return np.sort(res.order[mask])


def _unknown(subset: SubsetFile, res: Resolution) -> list[Problem]:
    mask = res.codes < 0
    count = int(np.count_nonzero(mask))
    if not count:
        return []
    pos = _positions(res, mask)
    return [unknown_problem(subset, count, int(pos[0]), _distinct(subset, pos))]


# --- the problems, from what was found (shared with harness.validation_stream) -------------


def unknown_problem(subset: SubsetFile, count: int, first: int, sample: list[str]) -> Problem:
    """``count`` UIDs of ``subset`` are in no split; the first at file position ``first``."""
    return Problem(
        code="unknown_uid",
        message=f"{count:,} of {len(subset):,} UIDs {'is' if count == 1 else 'are'} not in "
        f"the dataset (first at file "
        f"position {first}); submit only UIDs from the pool's uid column" + _unknown_hint(subset),
        sample=sample,
        count=count,
    )


def duplicate_problem(extra: int, sample: list[str]) -> list[Problem]:
    """``extra`` entries repeat a UID named before (none: no problem)."""
    if not extra:
        return []
    return [
        Problem(
            code="duplicate_uid",
            message=f"{_n(extra, 'entry', 'entries')} repeat a UID named before: a subset is "
            "a set; keep each UID once (e.g. np.unique) and fill the budget with other UIDs",
            sample=sample,
            count=extra,
        )
    ]


def leak_problem(task: str, role: str, split: str, count: int, sample: list[str]) -> Problem:
    """``count`` UIDs of the ``role`` (query or test) split ``split`` of ``task``."""
    return Problem(
        code=f"{role}_leak",
        message=f"{_n(count, 'UID')} from the {role} split {split!r} of task "
        f"{task}: {role} examples may never be trained on; remove them",
        sample=sample,
        count=count,
    )


def distinct_sample(uids: list[str]) -> list[str]:
    """The first SAMPLE distinct UIDs of ``uids`` (the first SAMPLE x 10 entries found)."""
    return list(dict.fromkeys(uids))[:SAMPLE]


def _n(count: int, noun: str, plural: str | None = None) -> str:
    return f"{count:,} {noun if count == 1 else plural or noun + 's'}"


def _distinct(subset: SubsetFile, pos: npt.NDArray[np.int64]) -> list[str]:
    """Up to SAMPLE distinct UIDs among the first entries at ``pos``."""
    return distinct_sample(subset.uid_strings(pos[:FIRST]))


def _unknown_hint(subset: SubsetFile) -> str:
    if subset.kind in ("int", "uint"):
        return " (integers are matched as their decimal text)"
    if subset.kind == "uid128":
        return " (u8,u8 records are matched as 32-char lowercase hex)"
    return ""


def _present_codes(res: Resolution) -> list[int]:
    """The split codes (and -1 for unknown) that occur; a few passes, no sort of every UID."""
    top = int(res.codes.max(initial=-1))
    return [c for c in range(-1, top + 1) if np.any(res.codes == c)]


def _has_repeats(sorted_rows: npt.NDArray[np.int64]) -> bool:
    return bool(np.any(sorted_rows[1:] == sorted_rows[:-1]))


def _repeats(
    subset: SubsetFile, res: Resolution, pool_code: int, pool_rows: npt.NDArray[np.int64]
) -> list[Problem]:
    """UIDs named more than once: known ones as equal (split, row) pairs, unknown ones by text."""
    extra, sample = 0, list[str]()
    for code in _present_codes(res):
        mask = res.codes == code
        if code < 0:
            more, uids = _unknown_repeats(subset, _positions(res, mask))
        else:
            rows = pool_rows if code == pool_code else np.sort(res.rows[mask])
            again = np.unique(rows[1:][rows[1:] == rows[:-1]])
            more = len(rows) - len(np.unique(rows)) if len(again) else 0
            uids = _distinct(subset, _positions(res, mask & np.isin(res.rows, again[:SAMPLE])))
        extra += more
        sample += uids[: SAMPLE - len(sample)]
    return duplicate_problem(extra, sample)


def _unknown_repeats(subset: SubsetFile, pos: npt.NDArray[np.int64]) -> tuple[int, list[str]]:
    if len(pos) > UNKNOWN_REPEAT_LIMIT:
        return 0, []
    text = canonical_strings(subset.raw[pos], subset.kind)
    values, counts = np.unique(text, return_counts=True)
    return int((counts - 1).sum()), [str(v) for v in values[counts > 1][:SAMPLE]]


def _leaks(
    subset: SubsetFile, res: Resolution, *, spec: DatasetSpec, index: UidIndex
) -> list[Problem]:
    """UIDs of a task's query or test split: never trainable, whatever the task."""
    problems = []
    for t in spec.tasks:
        for role, split in (("query", t.query), ("test", t.test)):
            if split not in index.splits:
                continue
            mask = res.codes == index.split_code(split)
            count = int(np.count_nonzero(mask))
            if count:
                sample = _distinct(subset, _positions(res, mask))
                problems.append(leak_problem(t.name, role, split, count, sample))
    return problems


def size_problems(size: int, budget: int | None, fraction: float, pool_size: int) -> list[Problem]:
    if size < 1:
        return [Problem(code="empty_subset", message="the subset names no UID", count=0)]
    if budget is not None and size > budget:
        return [
            Problem(
                code="over_budget",
                message=f"{size:,} UIDs exceed the budget of {budget:,} = floor({fraction:g} x "
                f"{pool_size:,} pool UIDs); keep at most {budget:,}",
                count=size - budget,
            )
        ]
    return []
