"""Database <-> storage integrity: what ``tdc-server check`` reports and ``--repair`` removes.

    report = check_integrity(db=db, storage=storage)              # hashes every stored file
    report.findings                                               # [] when all is well
    removed = repair(db=db, storage=storage, findings=report.findings)  # relative paths

What is checked:

- every submission's event chain starts with a create event (``submit`` / ``reference``),
  links each event's previous state to the one before, takes only legal transitions and
  ends in the row's state (``event_chain``);
- scores (evaluation, per-seed results, task scores) exist only for ``scored`` rows
  (``stray_scores``), and every scored row has its evaluation and task scores
  (``missing_scores``);
- every file a row references (all rows but references, whose ``file_bytes`` is 0) is in
  storage (``missing_file``) with the recorded size and, unless ``verify_hashes=False``, the
  sha256 it is named by (``corrupt_file``);
- no content-addressed file under ``subsets/`` is referenced by no row
  (``unreferenced_file``), no upload temp file under ``tmp/`` is left from a crash
  (``stale_temp``) and nothing else lies in those two folders (``unknown_file``; a folder
  that cannot be listed is ``unreadable``);
- no running row has an expired lease, or none (``expired_lease``).

An upload stores its file a moment before it inserts the row that references it, and a temp
file grows while its upload streams, so only unreferenced files and temp files older than
``grace_s`` (by modification time) are findings; younger ones are counted as in flight. Each
database question is one SQL statement (a consistent snapshot on SQLite and PostgreSQL alike)
and files are listed after the rows, so a check of a live server reports no false problems.

``repair`` removes only unreferenced files and stale temp files (the repairable findings),
each after checking again, while holding every team's upload lock, that no row references it
now: an upload cannot store a file and insert its row meanwhile. It never touches ``cache/``
or anything it does not recognise, and repairs nothing in the database: an expired lease is
requeued (or failed) by the server on the next worker claim.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Exists, or_, select
from sqlmodel import Session, col

from server.errors import IllegalTransition
from server.models import (
    Evaluation,
    Outcome,
    Result,
    Submission,
    SubmissionEvent,
    TaskScore,
    utcnow,
)
from server.services import transitions
from server.services.auth import lock_teams
from server.storage import Storage
from submissions.schemas import State

log = logging.getLogger(__name__)

FindingKind = Literal[
    "event_chain",
    "stray_scores",
    "missing_scores",
    "missing_file",
    "corrupt_file",
    "unreferenced_file",
    "stale_temp",
    "unknown_file",
    "unreadable",
    "expired_lease",
]
REPAIRABLE: frozenset[FindingKind] = frozenset({"unreferenced_file", "stale_temp"})
DEFAULT_GRACE_S = 3600.0
CHUNK = 1 << 20
_SUBSET_NAME = re.compile(r"([0-9a-f]{2})/(\1[0-9a-f]{62})\.npy")


class Finding(BaseModel):
    """One problem: its kind, what it concerns (a submission or a storage path) and why."""

    model_config = ConfigDict(frozen=True)

    kind: FindingKind
    message: str
    submission_id: int | None = None
    path: str | None = None  # relative to the storage root, '/'-separated

    @property
    def repairable(self) -> bool:
        return self.kind in REPAIRABLE

    def __str__(self) -> str:
        subject = f"submission {self.submission_id}" if self.submission_id else self.path
        return f"{self.kind}: {subject}: {self.message}"


@dataclass
class IntegrityReport:
    findings: list[Finding] = field(default_factory=list)
    submissions: int = 0
    files: int = 0  # content-addressed files under subsets/
    in_flight: list[str] = field(default_factory=list)  # young unreferenced or temp files
    hashes_verified: bool = True

    @property
    def ok(self) -> bool:
        return not self.findings

    def summary(self) -> str:
        hashed = "sizes and hashes" if self.hashes_verified else "sizes only, no hashes"
        flight = f", {len(self.in_flight)} in flight" if self.in_flight else ""
        verdict = "ok" if self.ok else f"{len(self.findings)} problem(s)"
        return (
            f"checked {self.submissions} submissions, {self.files} files "
            f"({hashed}){flight}: {verdict}"
        )


def check_integrity(
    *,
    db: Session,
    storage: Storage,
    now: datetime | None = None,
    grace_s: float = DEFAULT_GRACE_S,
    verify_hashes: bool = True,
) -> IntegrityReport:
    """Every inconsistency between the database and ``storage``; reads, never writes."""
    now = now or utcnow()
    report = IntegrityReport(hashes_verified=verify_hashes)
    report.submissions = _check_chains(db, report.findings)
    report.findings += _check_scores(db)
    report.findings += _check_leases(db, now)
    referenced = _referenced_files(db)  # rows before files: a new row's file is only younger
    report.findings += _check_referenced(storage, referenced, verify_hashes=verify_hashes)
    _check_storage(storage, set(referenced), now.timestamp() - grace_s, report)
    return report


def _check_chains(db: Session, out: list[Finding]) -> int:
    stmt = (
        select(col(Submission.id), col(Submission.state), col(SubmissionEvent.action),
               col(SubmissionEvent.from_state), col(SubmissionEvent.to_state))
        .outerjoin(SubmissionEvent, col(SubmissionEvent.submission_id) == col(Submission.id))
        .order_by(col(Submission.id), col(SubmissionEvent.id))
    )  # fmt: skip
    chains: dict[int, tuple[str, list[tuple[str, str | None, str]]]] = {}
    for sid, state, action, frm, to in _rows(db, stmt):
        _, events = chains.setdefault(sid, (state, []))
        if action is not None:
            events.append((action, frm, to))
    for sid, (state, events) in chains.items():
        problem = chain_problem(state, events)
        if problem:
            out.append(Finding(kind="event_chain", submission_id=sid, message=problem))
    return len(chains)


def chain_problem(state: str, events: Sequence[tuple[str, str | None, str]]) -> str | None:
    """Why ``(action, from, to)`` events (oldest first) cannot have led to ``state``; or None."""
    if not events:
        return f"no events, yet the row is {state}"
    action, frm, _ = events[0]
    if action not in transitions.CREATE_ACTIONS or frm is not None:
        return f"the first event is {action!r} from {frm}, not a create event"
    for i, (action, frm, to) in enumerate(events[1:], start=2):
        prev = events[i - 2][2]
        if frm != prev:
            return f"event {i} ({action!r}) starts from {frm} but event {i - 1} ended in {prev}"
        if frm != to and (bad := _illegal(frm, to, action)):
            return f"event {i} ({action!r}) {bad}"
    if events[-1][2] != state:
        return f"the events end in {events[-1][2]} but the row is {state}"
    return None


def _illegal(frm: str, to: str, action: str) -> str | None:
    try:
        transitions.check(State(frm), State(to), action)
    except ValueError:
        return f"names an unknown state ({frm} -> {to})"
    except IllegalTransition as err:
        return str(err)
    return None


# What a scored row has (an evaluation and task scores are required; results and per-example
# outcomes may be absent) and no other row may have.
SCORE_TABLES = (("an evaluation", Evaluation), ("results", Result), ("task scores", TaskScore),
                ("outcomes", Outcome))  # fmt: skip
REQUIRED = ("an evaluation", "task scores")


def _check_scores(db: Session) -> list[Finding]:
    stmt = select(col(Submission.id), col(Submission.state),
                  *(_has(table.submission_id) for _, table in SCORE_TABLES))  # fmt: skip
    out = []
    for sid, state, *flags in _rows(db, stmt):
        present = [name for (name, _), has in zip(SCORE_TABLES, flags, strict=True) if has]
        if state != State.scored and present:
            msg = f"has {', '.join(present)} but is {state}, not scored"
            out.append(Finding(kind="stray_scores", submission_id=sid, message=msg))
        elif state == State.scored and (lacking := [n for n in REQUIRED if n not in present]):
            msg = f"is scored but has no {' and no '.join(n.removeprefix('an ') for n in lacking)}"
            out.append(Finding(kind="missing_scores", submission_id=sid, message=msg))
    return out


def _has(column: Any) -> Exists:
    """Whether the table of ``column`` (a submission_id) has a row for the submission."""
    return select(column).where(column == col(Submission.id)).exists()


def _rows(db: Session, stmt: Any) -> list[Any]:
    """The rows of one statement (one snapshot) in the session's transaction."""
    return list(db.connection().execute(stmt).all())


def _check_leases(db: Session, now: datetime) -> list[Finding]:
    expires = col(Submission.lease_expires_at)
    stmt = select(col(Submission.id), expires, col(Submission.worker)).where(
        col(Submission.state) == State.running.value, or_(expires.is_(None), expires <= now)
    )
    out = []
    for sid, until, worker in _rows(db, stmt):
        what = f"its lease expired at {until.isoformat()}" if until else "it has no lease"
        msg = (
            f"running on worker {worker or '-'} but {what}: the next worker claim ends it as "
            "an infra attempt (requeued, or failed_infra after the last)"
        )
        out.append(Finding(kind="expired_lease", submission_id=sid, message=msg))
    return out


def _referenced_files(db: Session) -> dict[str, list[tuple[int, int]]]:
    """file sha256 -> [(submission id, recorded bytes)] of every row with a stored file."""
    stmt = (
        select(col(Submission.id), col(Submission.file_sha256), col(Submission.file_bytes))
        .where(col(Submission.file_bytes) > 0)
        .order_by(col(Submission.id))
    )
    out: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for sid, sha, nbytes in _rows(db, stmt):
        out[sha].append((sid, nbytes))
    return out


def _check_referenced(
    storage: Storage, referenced: dict[str, list[tuple[int, int]]], *, verify_hashes: bool
) -> list[Finding]:
    out = []
    for sha, rows in referenced.items():
        sid = rows[0][0]
        try:
            path = storage.path_for(sha)
        except ValueError:
            out.append(Finding(kind="missing_file", submission_id=sid,
                               message=f"its file_sha256 {sha!r} is not a sha256"))  # fmt: skip
            continue
        rel = _rel(storage, path)
        who = _who(rows)
        if not path.is_file():
            out.append(Finding(kind="missing_file", submission_id=sid, path=rel,
                               message=f"{rel} referenced by {who} is missing"))  # fmt: skip
            continue
        problem = _file_problem(path, sha, {n for _, n in rows}, verify_hashes=verify_hashes)
        if problem:
            out.append(Finding(kind="corrupt_file", submission_id=sid, path=rel,
                               message=f"{rel} referenced by {who} {problem}"))  # fmt: skip
    return out


def _file_problem(path: Path, sha: str, sizes: set[int], *, verify_hashes: bool) -> str | None:
    try:
        size = path.stat().st_size
        if size not in sizes:
            return f"has {size} bytes, not {', '.join(map(str, sorted(sizes)))}"
        if verify_hashes and (got := file_digest(path)[0]) != sha:
            return f"has sha256 {got}"
    except OSError as err:
        return f"cannot be read ({err.strerror or err})"
    return None


def file_digest(path: Path) -> tuple[str, int]:
    """The sha256 and size of a file, read in 1 MiB chunks."""
    h, n = hashlib.sha256(), 0
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            n += len(chunk)
    return h.hexdigest(), n


def _who(rows: list[tuple[int, int]]) -> str:
    ids = [str(sid) for sid, _ in rows]
    more = f" and {len(ids) - 5} more" if len(ids) > 5 else ""
    return f"submission{'s' if len(ids) > 1 else ''} {', '.join(ids[:5])}{more}"


def _check_storage(
    storage: Storage, referenced: set[str], cutoff: float, report: IntegrityReport
) -> None:
    for path in _files(storage.subsets_dir, report.findings, storage):
        rel = _rel(storage, path)
        m = _SUBSET_NAME.fullmatch(path.relative_to(storage.subsets_dir).as_posix())
        if m is None or path.is_symlink():
            report.findings.append(_unknown(rel))
            continue
        report.files += 1
        if m.group(2) in referenced:
            continue
        if _mtime(path) >= cutoff:
            report.in_flight.append(rel)
        else:
            report.findings.append(Finding(kind="unreferenced_file", path=rel,
                                           message="no submission references it"))  # fmt: skip
    for path in _files(storage.tmp_dir, report.findings, storage):
        rel = _rel(storage, path)
        if path.suffix != ".part" or path.parent != storage.tmp_dir or path.is_symlink():
            report.findings.append(_unknown(rel))
        elif _mtime(path) >= cutoff:
            report.in_flight.append(rel)
        else:
            msg = "an upload temp file left by a crash"
            report.findings.append(Finding(kind="stale_temp", path=rel, message=msg))


def _unknown(rel: str) -> Finding:
    return Finding(kind="unknown_file", path=rel, message="not a file the server stores here")


def _files(root: Path, out: list[Finding], storage: Storage) -> Iterator[Path]:
    """Every non-directory under ``root`` (symlinks not followed), in a stable order; a
    folder that cannot be listed is an ``unreadable`` finding."""

    def unreadable(err: OSError) -> None:
        rel = _rel(storage, Path(err.filename)) if err.filename else _rel(storage, root)
        msg = f"cannot be listed ({err.strerror or err})"
        out.append(Finding(kind="unreadable", path=rel, message=msg))

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable):
        dirnames.sort()
        for name in sorted(filenames):
            yield Path(dirpath, name)


def _mtime(path: Path) -> float:
    try:
        return path.lstat().st_mtime
    except FileNotFoundError:  # removed meanwhile (an upload's temp file committed)
        return float("inf")


def _rel(storage: Storage, path: Path) -> str:
    return path.relative_to(storage.root).as_posix()


def repair(
    *,
    db: Session,
    storage: Storage,
    findings: Iterable[Finding],
    now: datetime | None = None,
    grace_s: float = DEFAULT_GRACE_S,
) -> list[str]:
    """Remove the files of repairable findings that are still unreferenced and older than
    ``grace_s``; returns their paths (relative to the storage root). Writes no row."""
    cutoff = (now or utcnow()).timestamp() - grace_s
    todo = [f for f in findings if f.repairable and f.path]
    if not todo:
        return []
    removed = []
    # Every upload takes its team's lock before it stores a file and holds it until its row
    # is committed: while this session holds all of them, no upload is between the two.
    lock_teams(db)
    try:
        for f in todo:
            assert f.path is not None
            path = storage.root / f.path
            if not _removable(db, storage, f, path, cutoff):
                continue
            try:
                path.unlink(missing_ok=True)
            except OSError as err:  # e.g. read-only storage: the finding stays
                log.warning("cannot remove %s: %s", path, err.strerror or err)
                continue
            removed.append(f.path)
    finally:
        db.rollback()  # releases the locks; nothing was changed
    return removed


def _removable(db: Session, storage: Storage, f: Finding, path: Path, cutoff: float) -> bool:
    if path.is_symlink() or not path.is_file() or _mtime(path) >= cutoff:
        return False
    if f.kind == "stale_temp":
        return path.parent == storage.tmp_dir and path.suffix == ".part"
    if storage.subsets_dir not in path.parents:
        return False
    m = _SUBSET_NAME.fullmatch(path.relative_to(storage.subsets_dir).as_posix())
    if m is None or storage.path_for(m.group(2)) != path:
        return False
    stmt = select(col(Submission.id)).where(col(Submission.file_sha256) == m.group(2))
    return db.connection().execute(stmt.limit(1)).first() is None
