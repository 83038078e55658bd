"""What services need besides a session: settings, the dataset catalog, storage, validator.

    ctx = ServerContext.from_settings(settings)      # one per app (create_app makes it)
    ctx.validator(path, ds=ctx.catalog.dataset("demo"), fraction=0.1, task=None)

The validator defaults to ``harness.validation.load_and_validate`` (imported on first use):
it reads the file in chunks, so an upload's validation holds a few MB whatever its size (a
1 GiB upload grows the process by < 100 MB; harness.validation_stream), and returns a report
with ``.sha256`` (the subset's canonical identity) and ``.size`` (UIDs), or raises
``ValidationFailed`` listing every problem.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from server.services.catalog import Catalog
from server.settings import Settings
from server.storage import Storage

if TYPE_CHECKING:
    from harness.datasets import Dataset


class ValidationReport(Protocol):
    @property
    def sha256(self) -> str | None: ...

    @property
    def size(self) -> int: ...


Validator = Callable[..., ValidationReport]


def default_validator(
    path: Path, *, ds: Dataset, fraction: float, task: str | None, max_bytes: int
) -> ValidationReport:
    from harness.validation import load_and_validate

    report: Any = load_and_validate(
        path, ds=ds, fraction=fraction, task=task, max_bytes=max_bytes, keep_rows=False
    )
    return report  # type: ignore[no-any-return]


@dataclass
class ServerContext:
    settings: Settings
    catalog: Catalog
    storage: Storage
    validator: Validator = default_validator

    @property
    def replicates_dir(self) -> Path:
        """Where detection boards keep their bootstrap replicates between restarts (derived
        data: deleting it costs one recomputation)."""
        return Path(self.settings.runs_dir) / "replicates"

    @classmethod
    def from_settings(cls, settings: Settings) -> ServerContext:
        return cls(
            settings=settings, catalog=Catalog.load(settings), storage=Storage(settings.storage_dir)
        )
