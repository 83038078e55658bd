"""Restore a backup of ``tdc-server backup`` into a new database and a storage directory.

    done = restore(backup_dir=Path("/backups/tdc-backup-20250301T120000Z"),
                   database_url="sqlite:///srv/tdc.db", storage_dir=Path("/srv/storage"))
    done.added, done.present        # files copied into storage, files already there

Restore loses nothing. It first checks everything: the whole backup (every file against its
sha256), that the target database does not exist yet (SQLite: no file; PostgreSQL: a
database without tables, e.g. just made with ``createdb``) and that no file already in the
target storage differs from the backup's. Only then it adds the missing files to the storage
(each through ``tmp/`` and a rename, as uploads are stored) and, last, writes the database:
SQLite through the online backup API into a new file that is linked into place (never over a
file that appeared meanwhile); PostgreSQL with ``pg_restore --single-transaction`` (on PATH).
Interrupted, it can be run again: files already restored are kept, and the database is
written last. By hand, the same for PostgreSQL is::

    createdb tdc && pg_restore --no-owner --no-privileges --exit-on-error \
        --single-transaction --dbname=postgresql://user@host/tdc BACKUP/tdc.pgdump
    cp -an BACKUP/storage/. "$TDC_STORAGE_DIR"/

A backup of an older schema is brought up to date by ``tdc-server migrate`` (``serve`` runs
it too); then ``tdc-server check`` confirms the database and the files agree.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import URL, create_engine, inspect, make_url
from sqlalchemy.exc import SQLAlchemyError

from server.services.backup import (
    DB_FILES,
    BackupError,
    BackupFile,
    BackupManifest,
    DbKind,
    copy_hashing,
    db_kind,
    fsync_path,
    pg_tool,
    read_manifest,
    run_pg,
    sqlite_copy,
    sqlite_path,
)
from server.services.integrity import file_digest
from server.storage import Storage

PG_RESTORE_ARGS = ("--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction")
SHOWN_PROBLEMS = 10


@dataclass
class RestoreDone:
    manifest: BackupManifest
    database: str  # the URL restored into, without its password
    added: int
    present: int


def restore(*, backup_dir: Path, database_url: str, storage_dir: Path) -> RestoreDone:
    """Restore ``backup_dir`` into a database that does not exist yet and ``storage_dir``."""
    manifest = read_manifest(backup_dir)
    url = make_url(database_url)
    kind = db_kind(url)
    if kind != manifest.database.kind:
        raise BackupError(
            f"the backup holds a {manifest.database.kind} database; TDC_DATABASE_URL names a "
            f"{kind} one"
        )
    db_file = backup_dir / manifest.database.file
    problems = verify_backup(backup_dir, manifest)
    problems += _target_problems(url, kind) + _storage_conflicts(manifest, storage_dir)
    if problems:
        more = len(problems) - SHOWN_PROBLEMS
        tail = f"; and {more} more" if more > 0 else ""
        raise BackupError("nothing restored: " + "; ".join(problems[:SHOWN_PROBLEMS]) + tail)
    added, present = _restore_files(manifest, backup_dir, Storage(storage_dir))
    if kind == "sqlite":
        _sqlite_restore(db_file, sqlite_path(url))
    else:
        exe = pg_tool("pg_restore", "restore a PostgreSQL backup")
        run_pg(exe, url, *PG_RESTORE_ARGS, str(db_file))
    shown = url.render_as_string(hide_password=True)
    return RestoreDone(manifest=manifest, database=shown, added=added, present=present)


def verify_backup(backup_dir: Path, manifest: BackupManifest) -> list[str]:
    """What is missing or damaged in a backup (every file is read); [] if it is whole."""
    problems = []
    db = manifest.database
    if db.file != DB_FILES[db.kind]:
        problems.append(f"the database copy is named {db.file!r}, not {DB_FILES[db.kind]!r}")
    elif not (backup_dir / db.file).is_file():
        problems.append(f"the database copy {db.file} is missing")
    elif file_digest(backup_dir / db.file) != (db.sha256, db.bytes):
        problems.append(f"the database copy {db.file} is damaged (its sha256 differs)")
    for entry in manifest.files:
        path = backup_dir / entry.path
        if not _safe_entry(entry):
            problems.append(f"{entry.path} is not a stored file's path")
            continue
        try:
            digest, size = file_digest(path)
        except FileNotFoundError:
            problems.append(f"{entry.path} is missing from the backup")
            continue
        if (digest, size) != (entry.sha256, entry.bytes):
            problems.append(f"{entry.path} in the backup is damaged (sha256 {digest})")
    return problems


def _safe_entry(entry: BackupFile) -> bool:
    """A manifest entry names ``storage/subsets/<ab>/<its sha256>.npy`` and nothing else."""
    sha = entry.sha256
    ok_sha = len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)
    return ok_sha and entry.path == f"storage/subsets/{sha[:2]}/{sha}.npy"


def _target_problems(url: URL, kind: DbKind) -> list[str]:
    if kind == "sqlite":
        path = sqlite_path(url)
        taken = [p for p in (path, Path(f"{path}-wal"), Path(f"{path}-journal")) if p.exists()]
        return [f"{p} exists (restore writes a new database only)" for p in taken]
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            tables = inspect(conn).get_table_names()
    except SQLAlchemyError as err:
        return [f"cannot connect to {url.render_as_string(hide_password=True)}: {err}"]
    finally:
        engine.dispose()
    if tables:
        return [f"the database {url.database} has tables; restore into a new, empty database"]
    return []


def _storage_conflicts(manifest: BackupManifest, storage_dir: Path) -> list[str]:
    out = []
    for entry in manifest.files:
        target = storage_dir / Path(entry.path).relative_to("storage")
        if target.exists() and file_digest(target) != (entry.sha256, entry.bytes):
            out.append(f"{target} exists with other content")
    return out


def _restore_files(manifest: BackupManifest, backup_dir: Path, storage: Storage) -> tuple[int, int]:
    added = present = 0
    for entry in manifest.files:
        final = storage.path_for(entry.sha256)
        if final.exists():
            present += 1
            continue
        tmp = storage.new_temp()
        try:
            copy_hashing(backup_dir / entry.path, tmp)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        fsync_path(final.parent)
        added += 1
    return added, present


def _sqlite_restore(db_file: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.restoring-{uuid.uuid4().hex[:8]}")
    try:
        sqlite_copy(sqlite3.connect(db_file.resolve().as_uri() + "?mode=ro", uri=True), tmp)
        fsync_path(tmp)
        _place_new(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_path(target.parent)


def _place_new(tmp: Path, target: Path) -> None:
    """Give ``tmp`` the name ``target``, never replacing a file that appeared meanwhile."""
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise BackupError(f"{target} appeared while restoring; nothing replaced") from None
    except OSError:  # no hard links on this filesystem
        if target.exists():
            raise BackupError(f"{target} appeared while restoring; nothing replaced") from None
        os.replace(tmp, target)
