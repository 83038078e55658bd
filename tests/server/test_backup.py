"""``tdc-server backup`` / ``restore``: a backup restored into new, empty places gives the same
rows and files, and ``check`` passes; bad input never loses anything (SQLite and PostgreSQL).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from server.cli import main
from server.db import make_engine
from server.services.integrity import check_integrity
from server.settings import Settings
from server.storage import Storage
from tests.server import ops_seed
from tests.server.ops_seed import Seeded, new_pg_database, table_rows

SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


db_url, seeded = ops_seed.db_url, ops_seed.seeded  # the fixtures, made visible here


def _backup(out: Path, capsys: pytest.CaptureFixture[str], *args: str) -> Path:
    capsys.readouterr()
    assert main(["backup", "--out", str(out), *args]) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out.strip()
    return Path(printed)


def _restore_target(request: pytest.FixtureRequest, db_url: str, root: Path) -> str:
    if db_url.startswith("sqlite"):
        return f"sqlite:///{root / 'restored.db'}"
    return new_pg_database(request, template=None)  # empty, as `createdb` makes it


def test_backup_restores_into_new_places_with_the_same_rows_and_files(
    seeded: Seeded,
    engine: Engine,
    settings: Settings,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = _backup(tmp_path / "backups", capsys)
    assert path.parent == tmp_path / "backups" and path.name.startswith("tdc-backup-")
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no scratch left behind
    manifest = json.loads((path / "manifest.json").read_text())
    kind = "sqlite" if settings.database_url.startswith("sqlite") else "postgresql"
    assert manifest["database"]["kind"] == kind
    assert (path / manifest["database"]["file"]).is_file()
    assert manifest["database"]["alembic_revision"] == table_rows(engine)["alembic_version"][0][0]
    assert manifest["counts"]["submission"] == 4 and manifest["problems"] == []
    assert len(manifest["files"]) == 3  # the three uploads; the oracle row has no file
    # Restore into a new database and an empty storage.
    target = _restore_target(request, settings.database_url, tmp_path)
    new_storage = tmp_path / "restored-storage"
    monkeypatch.setenv("TDC_DATABASE_URL", target)
    monkeypatch.setenv("TDC_STORAGE_DIR", str(new_storage))
    assert main(["restore", str(path)]) == 0, capsys.readouterr().err
    assert "and 3 files into" in capsys.readouterr().err
    restored = make_engine(target)
    try:
        assert table_rows(restored) == table_rows(engine)
        with Session(restored) as db:
            assert check_integrity(db=db, storage=Storage(new_storage)).findings == []
        old = Storage(settings.storage_dir)
        for entry in manifest["files"]:
            rel = Path(entry["path"]).relative_to("storage")
            assert (new_storage / rel).read_bytes() == (old.root / rel).read_bytes()
    finally:
        restored.dispose()
    assert main(["check"]) == 0
    # Restoring again would replace the database: refused, nothing touched.
    assert main(["restore", str(path)]) == 2
    err = capsys.readouterr().err
    assert "nothing restored" in err and ("exists" in err or "has tables" in err)


@SQLITE_ONLY
def test_files_are_linked_or_copied_and_backups_never_overwrite(
    seeded: Seeded, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "backups"
    first, second = _backup(out, capsys), _backup(out, capsys, "--copy")
    assert first != second and sorted(out.iterdir()) == sorted([first, second])
    storage = Storage(settings.storage_dir)
    for entry in json.loads((first / "manifest.json").read_text())["files"]:
        stored = storage.root / Path(entry["path"]).relative_to("storage")
        assert (first / entry["path"]).stat().st_ino == stored.stat().st_ino  # same fs: linked
        assert (second / entry["path"]).stat().st_ino != stored.stat().st_ino  # --copy


@SQLITE_ONLY
def test_a_missing_stored_file_makes_an_incomplete_backup_and_exit_1(
    seeded: Seeded, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    victim = next((settings.storage_dir / "subsets").rglob("*.npy"))
    victim.unlink()
    capsys.readouterr()
    assert main(["backup", "--out", str(tmp_path / "b")]) == 1
    out, err = capsys.readouterr()
    manifest = json.loads((Path(out.strip()) / "manifest.json").read_text())
    assert len(manifest["files"]) == 2 and victim.name in manifest["problems"][0]
    assert "incomplete" in err and victim.name in err


@SQLITE_ONLY
def test_a_damaged_backup_restores_nothing(
    seeded: Seeded,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = _backup(tmp_path / "b", capsys, "--copy")
    entry = json.loads((path / "manifest.json").read_text())["files"][0]
    (path / entry["path"]).write_bytes(b"rotten")
    monkeypatch.setenv("TDC_DATABASE_URL", f"sqlite:///{tmp_path / 'new.db'}")
    monkeypatch.setenv("TDC_STORAGE_DIR", str(tmp_path / "new-storage"))
    assert main(["restore", str(path)]) == 2
    assert "damaged" in capsys.readouterr().err
    assert not (tmp_path / "new.db").exists() and not (tmp_path / "new-storage").exists()
    assert main(["restore", str(tmp_path)]) == 2
    assert "is not a backup" in capsys.readouterr().err


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_postgres_backup_needs_pg_dump(
    seeded: Seeded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    capsys.readouterr()
    assert main(["backup", "--out", str(tmp_path / "b")]) == 2
    assert "pg_dump is not on PATH" in capsys.readouterr().err
    assert list((tmp_path / "b").iterdir()) == []  # the scratch directory is gone


def test_an_in_memory_database_cannot_be_backed_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TDC_DATABASE_URL", "sqlite://")
    monkeypatch.setenv("TDC_STORAGE_DIR", str(tmp_path))
    assert main(["backup", "--out", str(tmp_path / "b")]) == 2
    assert "in-memory" in capsys.readouterr().err
