"""Storage that stops taking writes during an upload (read-only, full, gone): a clear 503
with Retry-After, no row, no stored file, no temp file left, and a clean integrity check.

The fault is injected at the operating-system call (``OSError(EROFS)`` from the write or the
rename): the tests run as root, which a ``chmod`` does not stop.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from server import storage as storage_module
from server.settings import Settings
from tests.server.helpers import assert_consistent
from tests.server.test_uploads import rows, stored_files, upload


def read_only(*_: Any, **__: Any) -> None:
    raise OSError(errno.EROFS, "Read-only file system")


def fail_mid_write(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first chunk is written, the next one finds the file system read-only."""
    write = storage_module._Receiver.on_part_data
    calls = []

    def on_part_data(self: Any, data: bytes, start: int, end: int) -> None:
        if self.is_file and calls:
            read_only()
        calls.append(self.is_file)
        write(self, data, start, end)

    monkeypatch.setattr(storage_module._Receiver, "on_part_data", on_part_data)


def fail_rename(monkeypatch: pytest.MonkeyPatch) -> None:
    """Storage's own ``os`` (only its calls) finds the file system read-only on rename."""
    monkeypatch.setattr(storage_module, "os", SimpleNamespace(**{**vars(os), "replace": read_only}))


@pytest.mark.parametrize("fault", [fail_mid_write, fail_rename], ids=["write", "rename"])
def test_storage_turning_read_only_mid_upload_is_503_and_keeps_nothing(
    fault: Callable[[pytest.MonkeyPatch], None], monkeypatch: pytest.MonkeyPatch,
    client: TestClient, tokens: dict[str, str], subset: Any, settings: Settings,
    engine: Engine,
) -> None:  # fmt: skip
    path = subset(0, n=30, name="s.npy")
    fault(monkeypatch)
    r = upload(client, tokens["alpha"], path)
    assert r.status_code == 503, r.text
    assert r.headers["retry-after"] == "5"
    problem = r.json()["problems"][0]
    assert problem["code"] == "unavailable"
    assert (
        "Read-only file system" in problem["message"] and "nothing was kept" in problem["message"]
    )
    assert rows(engine) == [] and stored_files(settings) == []  # not even a temp file
    assert_consistent(engine, settings.storage_dir, grace_s=0)
    monkeypatch.undo()  # writable again: the same upload goes through
    again = upload(client, tokens["alpha"], path)
    assert again.status_code == 201 and len(rows(engine)) == 1


@pytest.fixture
def subset(tmp_path: Path, tiny_dataset: Any) -> Any:
    from tests.server.helpers import write_subset

    pool = tiny_dataset.uids("train")

    def make(start: int = 0, n: int = 30, name: str = "s.npy") -> Path:
        return write_subset(tmp_path / name, pool[start : start + n])

    return make
