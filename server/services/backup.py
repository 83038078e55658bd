"""Consistent backups of the database and the stored subset files (restore: ``.restore``).

    done = backup(engine=engine, storage=storage, out=Path("/backups"))
    done.path                       # /backups/tdc-backup-20250301T120000Z (complete, or absent)
    read_manifest(done.path).files  # [BackupFile(path="storage/subsets/ab/....npy", ...)]

A backup is a directory that appears only once it is complete (it is built in a hidden
scratch directory beside it and renamed into place); an existing one is never overwritten::

    tdc-backup-20250301T120000Z/
        manifest.json               format, time, code version; the database's kind, sha256
                                    and alembic revision; row counts; every stored file
                                    with its sha256 and size
        tdc.sqlite3 | tdc.pgdump    the database
        storage/subsets/ab/<sha256>.npy   every file a row of that database references

The database copy is one snapshot: SQLite's online backup API (writers go on meanwhile), or
for PostgreSQL ``pg_dump --format=custom`` (it must be on PATH) of a snapshot exported from
the transaction that also reads the counts and the file list. The files are those the
snapshot's rows reference, so the copy is consistent: stored files are immutable and never
removed while referenced. They are hard-linked where the backup is on the storage's
filesystem (no space used; they are never modified in place, and ``link=False`` copies them
anyway) and copied elsewhere, each checked against its sha256; a missing or corrupt file is
left out and listed under ``problems``.

``server.services.restore`` puts a backup back into a new database and a storage directory.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ValidationError
from sqlalchemy import URL, Connection, Engine, create_engine, func, inspect, select, text
from sqlmodel import SQLModel, col

from server.models import Submission, utcnow
from server.services.integrity import CHUNK, file_digest
from server.storage import Storage
from submissions.errors import TdcError

FORMAT: Literal["tdc-backup/1"] = "tdc-backup/1"
MANIFEST = "manifest.json"
DB_FILES = {"sqlite": "tdc.sqlite3", "postgresql": "tdc.pgdump"}
DbKind = Literal["sqlite", "postgresql"]


class BackupError(TdcError):
    """A backup cannot be made or restored (the message says why and what to do)."""

    code = "backup"


class BackupFile(BaseModel):
    path: str  # relative to the backup directory: storage/subsets/ab/<sha256>.npy
    sha256: str
    bytes: int


class DatabaseCopy(BaseModel):
    kind: DbKind
    file: str
    sha256: str
    bytes: int
    alembic_revision: str | None
    source: str  # the database URL, without its password


class BackupManifest(BaseModel):
    format: Literal["tdc-backup/1"] = FORMAT
    created_at: datetime
    code_version: str  # the git commit (or the package version) that made it
    database: DatabaseCopy
    counts: dict[str, int]
    files: list[BackupFile]
    problems: list[str] = []


@dataclass
class BackupDone:
    path: Path
    manifest: BackupManifest
    linked: int
    copied: int


def backup(
    *, engine: Engine, storage: Storage, out: Path, link: bool = True, now: datetime | None = None
) -> BackupDone:
    """Write a complete backup into a new directory under ``out``; returns where and what."""
    kind = db_kind(engine.url)
    now = now or utcnow()
    out.mkdir(parents=True, exist_ok=True)
    name = f"tdc-backup-{now:%Y%m%dT%H%M%SZ}"
    scratch = out / f".{name}.partial-{uuid.uuid4().hex[:8]}"
    scratch.mkdir()
    try:
        db_file = scratch / DB_FILES[kind]
        snap = _sqlite_backup(engine, db_file) if kind == "sqlite" else _pg_backup(engine, db_file)
        fsync_path(db_file)
        db_sha, db_bytes = file_digest(db_file)
        entries, problems, linked = _copy_files(storage, snap.files, scratch, link=link)
        database = DatabaseCopy(
            kind=kind,
            file=db_file.name,
            sha256=db_sha,
            bytes=db_bytes,
            alembic_revision=snap.revision,
            source=engine.url.render_as_string(hide_password=True),
        )
        manifest = BackupManifest(
            created_at=now,
            code_version=_version(),
            database=database,
            counts=snap.counts,
            files=entries,
            problems=problems,
        )
        _write_durably(scratch / MANIFEST, manifest.model_dump_json(indent=2).encode())
        final = _free_name(out, name)
        os.rename(scratch, final)
        fsync_path(out)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return BackupDone(path=final, manifest=manifest, linked=linked, copied=len(entries) - linked)


def db_kind(url: URL) -> DbKind:
    backend = url.get_backend_name()
    if backend == "sqlite":
        return "sqlite"
    if backend == "postgresql":
        return "postgresql"
    raise BackupError(f"cannot back up or restore a {backend} database (SQLite or PostgreSQL)")


@dataclass
class _Snapshot:
    revision: str | None
    counts: dict[str, int]
    files: dict[str, int]  # sha256 -> bytes


def _describe(conn: Connection) -> _Snapshot:
    from server import models  # noqa: F401  (registers the tables)

    present = set(inspect(conn).get_table_names())
    counts = {
        t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
        for t in SQLModel.metadata.sorted_tables
        if t.name in present
    }
    stmt = select(col(Submission.file_sha256), col(Submission.file_bytes)).where(
        col(Submission.file_bytes) > 0
    )
    files = {sha: int(n) for sha, n in conn.execute(stmt.distinct())}
    revision = None
    if "alembic_version" in present:  # absent where the schema was made without migrations
        revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return _Snapshot(revision=revision, counts=counts, files=files)


def sqlite_path(url: URL) -> Path:
    if url.database in (None, "", ":memory:"):
        raise BackupError("an in-memory SQLite database has nothing to back up or restore")
    return Path(str(url.database))


def _sqlite_backup(engine: Engine, dest: Path) -> _Snapshot:
    path = sqlite_path(engine.url)
    if not path.is_file():
        raise BackupError(f"there is no SQLite database at {path} (TDC_DATABASE_URL)")
    sqlite_copy(sqlite3.connect(path, timeout=60), dest)
    copy = create_engine(f"sqlite:///{dest}")
    try:
        with copy.connect() as conn:
            return _describe(conn)
    finally:
        copy.dispose()


def sqlite_copy(src: sqlite3.Connection, dest: Path) -> None:
    """One snapshot of ``src`` (closed after) into the new file ``dest`` (no WAL)."""
    try:
        dst = sqlite3.connect(dest)
        try:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")
        finally:
            dst.close()
    finally:
        src.close()


def _pg_backup(engine: Engine, dest: Path) -> _Snapshot:
    exe = pg_tool("pg_dump", "back up a PostgreSQL database")
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        with conn.begin():
            snapshot = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
            snap = _describe(conn)  # the same snapshot as the dump
            run_pg(exe, engine.url, "--format=custom", f"--snapshot={snapshot}", f"--file={dest}")
    return snap


def pg_tool(name: str, purpose: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        raise BackupError(
            f"{name} is not on PATH: install the PostgreSQL client tools (the server's major "
            f"version or newer) to {purpose}"
        )
    return exe


def run_pg(exe: str, url: URL, *args: str) -> None:
    """Run a libpq tool on ``url``'s database; its password goes through the environment."""
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    target = url.set(drivername="postgresql", password=None)
    dbname = target.render_as_string(hide_password=False)
    cmd = [exe, *args, f"--dbname={dbname}"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tool = Path(exe).name
        raise BackupError(f"{tool} failed: {proc.stderr.strip() or proc.stdout.strip()}")


def _copy_files(
    storage: Storage, files: dict[str, int], scratch: Path, *, link: bool
) -> tuple[list[BackupFile], list[str], int]:
    entries, problems, linked = [], [], 0
    for sha, nbytes in sorted(files.items()):
        try:
            src = storage.path_for(sha)
        except ValueError:
            problems.append(f"a submission references {sha!r}, which is not a sha256")
            continue
        rel = Path("storage") / src.relative_to(storage.root)
        dst = scratch / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            was_linked = link and _try_link(src, dst)
            digest, size = file_digest(dst) if was_linked else copy_hashing(src, dst)
        except FileNotFoundError:
            problems.append(f"{rel.relative_to('storage')} is missing from storage: not backed up")
            continue
        if digest != sha or size != nbytes:
            dst.unlink()
            problems.append(
                f"{rel.relative_to('storage')} has sha256 {digest} and {size} bytes (expected "
                f"{nbytes}): not backed up"
            )
            continue
        linked += was_linked
        entries.append(BackupFile(path=rel.as_posix(), sha256=sha, bytes=size))
    return entries, problems, linked


def _try_link(src: Path, dst: Path) -> bool:
    try:
        os.link(src, dst)
    except FileNotFoundError:
        raise
    except OSError:  # another filesystem, or links not allowed: copy instead
        return False
    return True


def copy_hashing(src: Path, dst: Path) -> tuple[str, int]:
    """Copy ``src`` to the new file ``dst`` (fsynced); the sha256 and size of what was read."""
    h, n = hashlib.sha256(), 0
    with src.open("rb") as fin, dst.open("xb") as fout:
        while chunk := fin.read(CHUNK):
            h.update(chunk)
            fout.write(chunk)
            n += len(chunk)
        fout.flush()
        os.fsync(fout.fileno())
    return h.hexdigest(), n


def _write_durably(path: Path, data: bytes) -> None:
    with path.open("xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _free_name(out: Path, name: str) -> Path:
    final, i = out / name, 1
    while final.exists():
        final, i = out / f"{name}-{i}", i + 1
    return final


def _version() -> str:
    from harness.manifest import code_version

    return code_version()


def read_manifest(backup_dir: Path) -> BackupManifest:
    """The manifest of a complete backup; BackupError if ``backup_dir`` is not one."""
    path = backup_dir / MANIFEST
    try:
        return BackupManifest.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        raise BackupError(
            f"{backup_dir} is not a backup: it has no {MANIFEST} (give the "
            "tdc-backup-<time> directory that `tdc-server backup` printed)"
        ) from None
    except ValidationError as err:
        raise BackupError(f"{path} is not a tdc backup manifest: {err}") from None
