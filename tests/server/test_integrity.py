"""``tdc-server check``: every kind of database <-> storage inconsistency is found, and
``--repair`` removes only old unreferenced files and stale temp files (SQLite and PostgreSQL).
"""

from __future__ import annotations

import hashlib
import os
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, update
from sqlmodel import Session, col

from server.cli import main
from server.models import Evaluation, Outcome, Submission, SubmissionEvent, TaskScore, utcnow
from server.services.integrity import (
    Finding,
    IntegrityReport,
    chain_problem,
    check_integrity,
    repair,
)
from server.settings import Settings
from server.storage import Storage
from tests.server import ops_seed
from tests.server.helpers import insert_submission
from tests.server.ops_seed import Seeded

OLD = time.time() - 2 * 3600  # past the default grace of an hour


db_url, seeded = ops_seed.db_url, ops_seed.seeded  # the fixtures, made visible here


def _check(engine: Engine, settings: Settings, *, verify_hashes: bool = True) -> IntegrityReport:
    with Session(engine) as db:
        storage = Storage(settings.storage_dir)
        return check_integrity(db=db, storage=storage, verify_hashes=verify_hashes)


def _file_of(engine: Engine, sid: int, storage: Storage) -> Path:
    with Session(engine) as db:
        sub = db.get(Submission, sid)
        assert sub is not None
        return storage.path_for(sub.file_sha256)


def _put(storage: Storage, path: Path, data: bytes, *, mtime: float | None = None) -> str:
    """Write a file into storage (as old as ``mtime``); its path relative to the root."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path.relative_to(storage.root).as_posix()


def test_a_consistent_server_passes(
    seeded: Seeded, engine: Engine, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    report = _check(engine, settings)
    assert report.findings == [] and report.ok
    assert (report.submissions, report.files, report.in_flight) == (4, 3, [])
    assert main(["check"]) == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert "checked 4 submissions, 3 files (sizes and hashes): ok" in err


def _corrupt(engine: Engine, storage: Storage, s: Seeded) -> dict[tuple[str, object], str]:
    """One of each problem; returns {(kind, submission id or path): what was done}."""
    scored_file = _file_of(engine, s.scored, storage)
    scored_file.write_bytes(bytes(reversed(scored_file.read_bytes())))  # same size, wrong hash
    with Session(engine) as db:
        db.exec(delete(Evaluation).where(col(Evaluation.submission_id) == s.scored))  # type: ignore[call-overload]
        past = utcnow() - timedelta(minutes=1)
        db.exec(update(Submission).where(col(Submission.id) == s.running)  # type: ignore[call-overload]
                .values(lease_expires_at=past))  # fmt: skip
        db.add(TaskScore(submission_id=s.queued, dataset="tiny", task="test1", test_size=1,
                         n_seeds=1, mean={}, std={}))  # fmt: skip
        db.add(Outcome(submission_id=s.queued, task="test1", seed=0, kind="correct",
                       name="correct", n=1, uids_sha256="0" * 64, data=b"\x80"))  # fmt: skip
        db.add(SubmissionEvent(submission_id=s.reference, action="claim", from_state="queued",
                               to_state="running", actor="x"))  # fmt: skip
        db.commit()
    missing = insert_submission(engine, team="beta", tag="no file")  # its file never stored
    junk = b"\x93NUMPY unreferenced"
    old = storage.path_for(hashlib.sha256(junk).hexdigest())
    young = storage.path_for(hashlib.sha256(junk + b"!").hexdigest())
    return {
        ("corrupt_file", s.scored): "bytes reversed",
        ("missing_scores", s.scored): "evaluation deleted",
        ("expired_lease", s.running): "lease in the past",
        ("stray_scores", s.queued): "a task score and an outcome",
        ("event_chain", s.reference): "an event from queued",
        ("missing_file", missing): "row without file",
        ("unreferenced_file", _put(storage, old, junk, mtime=OLD)): "old",
        ("stale_temp", _put(storage, storage.tmp_dir / "dead.part", b"x", mtime=OLD)): "temp",
        ("unknown_file", _put(storage, storage.subsets_dir / "notes.txt", b"hi", mtime=OLD)): "?",
        ("in flight", _put(storage, young, junk + b"!")): "young unreferenced",
        ("in flight", _put(storage, storage.tmp_dir / "live.part", b"x")): "upload streaming",
    }


def _subjects(findings: list[Finding]) -> set[tuple[str, object]]:
    return {(f.kind, f.submission_id or f.path) for f in findings}


def test_every_kind_of_problem_is_reported(
    seeded: Seeded, engine: Engine, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = Storage(settings.storage_dir)
    (storage.cache_dir / "pool-uids-x.npy").write_bytes(b"cache")  # the server's: ignored
    planted = _corrupt(engine, storage, seeded)
    problems = {k for k in planted if k[0] != "in flight"}
    report = _check(engine, settings)
    assert _subjects(report.findings) == problems
    assert sorted(report.in_flight) == sorted(p for k, p in planted if k == "in flight")
    text = {f.kind: str(f) for f in report.findings}
    assert "starts from queued but event 1 ended in scored" in text["event_chain"]
    assert "no evaluation" in text["missing_scores"]
    assert "has task scores, outcomes but is queued" in text["stray_scores"]
    assert "next worker claim ends it as an infra attempt" in text["expired_lease"]
    capsys.readouterr()
    assert main(["check"]) == 1
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == len(problems)
    assert {line.split(":")[0] for line in out.splitlines()} == {k for k, _ in problems}
    assert f"error: {len(problems)} problem(s) found (--repair removes" in err
    assert "2 in flight" in err
    # Sizes only: the same-size corruption goes unseen, everything else is still there.
    quick = _check(engine, settings, verify_hashes=False)
    assert _subjects(quick.findings) == problems - {("corrupt_file", seeded.scored)}


def test_repair_removes_only_old_unreferenced_and_temp_files(
    seeded: Seeded, engine: Engine, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = Storage(settings.storage_dir)
    planted = _corrupt(engine, storage, seeded)
    before = {p for p in storage.root.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert main(["check", "--repair"]) == 1  # the other problems remain
    out, err = capsys.readouterr()
    removable = {p for (k, p) in planted if k in ("unreferenced_file", "stale_temp")}
    assert {line.removeprefix("removed ") for line in out.splitlines()
            if line.startswith("removed ")} == removable  # fmt: skip
    after = {p for p in storage.root.rglob("*") if p.is_file()}
    assert before - after == {storage.root / p for p in removable}
    assert "removed 2 files" in err
    again = _check(engine, settings)
    assert {k for k, _ in _subjects(again.findings)} == {
        "corrupt_file", "missing_scores", "expired_lease", "stray_scores", "event_chain",
        "missing_file", "unknown_file",
    }  # fmt: skip
    assert len(again.in_flight) == 2  # younger than the grace: left alone
    assert main(["check", "--repair", "--grace-s", "0"]) == 1
    young = {storage.root / p for k, p in planted if k == "in flight"}
    assert young and not any(p.exists() for p in young)


def test_repair_keeps_a_file_a_row_references_by_then(
    seeded: Seeded, engine: Engine, settings: Settings
) -> None:
    storage = Storage(settings.storage_dir)
    data = b"\x93NUMPY re-uploaded"
    sha = hashlib.sha256(data).hexdigest()
    rel = _put(storage, storage.path_for(sha), data, mtime=OLD)
    report = _check(engine, settings)
    assert _subjects(report.findings) == {("unreferenced_file", rel)}
    sid = insert_submission(engine, team="alpha", tag="again")  # an identical upload, now
    with Session(engine) as db:
        db.exec(update(Submission).where(col(Submission.id) == sid)  # type: ignore[call-overload]
                .values(file_sha256=sha, file_bytes=len(data)))  # fmt: skip
        db.commit()
    with Session(engine) as db:
        assert repair(db=db, storage=storage, findings=report.findings) == []
    assert storage.path_for(sha).exists()
    assert _check(engine, settings).findings == []


def test_check_explains_a_missing_storage_or_schema(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TDC_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    monkeypatch.setenv("TDC_STORAGE_DIR", str(tmp_path / "nowhere"))
    assert main(["check"]) == 2
    assert "storage directory" in capsys.readouterr().err
    (tmp_path / "nowhere").mkdir()
    assert main(["check"]) == 2
    assert "tdc-server migrate" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["check", "backup", "restore"])
def test_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command, "--help"]) == 0
    assert f"tdc-server {command}" in capsys.readouterr().out


CREATE = ("submit", None, "queued")


@pytest.mark.parametrize(
    ("state", "events", "problem"),
    [
        ("queued", [CREATE], None),
        ("scored", [("reference", None, "scored"), ("hide", "scored", "scored")], None),
        ("queued", [CREATE, ("claim", "queued", "running"), ("score", "running", "scored"),
                    ("rescore", "scored", "queued")], None),
        ("queued", [], "no events"),
        ("queued", [("claim", "queued", "running")], "not a create event"),
        ("running", [CREATE, ("claim", "running", "running")], "starts from running"),
        ("scored", [CREATE, ("score", "queued", "scored")], "cannot become scored"),
        ("queued", [CREATE, ("claim", "queued", "running"), ("score", "running", "scored"),
                    ("requeue", "scored", "queued")], "cannot become queued"),
        ("running", [CREATE], "end in queued but the row is running"),
        ("queued", [CREATE, ("x", "queued", "limbo")], "unknown state"),
    ],
)  # fmt: skip
def test_chain_problem(state: str, events: list[tuple[str, str | None, str]],
                       problem: str | None) -> None:  # fmt: skip
    got = chain_problem(state, events)
    if problem is None:
        assert got is None
    else:
        assert problem in (got or "")


def test_a_size_change_is_found_without_hashing(tmp_path: Path) -> None:
    from server.services.integrity import _file_problem

    path = tmp_path / "f"
    path.write_bytes(b"abc")
    assert _file_problem(path, "0" * 64, {3}, verify_hashes=False) is None
    assert "has 3 bytes, not 4" in (_file_problem(path, "0" * 64, {4}, verify_hashes=False) or "")
    assert "has sha256" in (_file_problem(path, "0" * 64, {3}, verify_hashes=True) or "")
