"""What sweep jobs leave behind: one JSON record per selection and per training, by key.

    runs/sweep/selections/<k[:2]>/<k>.json   SelectionRecord: ok (subset sha256) or failed
    runs/sweep/trainings/<k[:2]>/<k>.json    TrainingRecord: ok (score keys) or failed
    runs/sweep/experiments/<name>.json       the training keys an experiment planned

A key hashes everything that determines the job's product, so a record is reused by every
sweep that plans the same job. Records are written atomically; a failed job's record keeps
its message, traceback and log path until a re-run replaces it.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

Status = Literal["ok", "failed"]
R = TypeVar("R", bound=BaseModel)


def job_key(fields: dict[str, Any]) -> str:
    blob = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


class SelectionRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str
    status: Status
    dataset: str
    method: str
    params: dict[str, Any]
    fraction: float
    task: str | None
    seed: int
    sha256: str | None = None
    size: int | None = None
    budget: int | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    message: str | None = None
    traceback: str | None = None
    log: str | None = None
    finished_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class TrainingRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str
    status: Status
    selection: str
    recipe: str
    base_recipe: str
    recipe_hash: str
    variant: dict[str, Any] = Field(default_factory=dict)
    scores: dict[str, dict[str, str]] = Field(
        default_factory=dict, description="task -> seed -> score digest (harness.store)"
    )
    reused_seeds: list[int] = Field(default_factory=list)
    message: str | None = None
    traceback: str | None = None
    log: str | None = None
    finished_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class Records:
    """The record directories of one runs directory."""

    def __init__(self, runs_dir: Path) -> None:
        self.root = Path(runs_dir) / "sweep"

    def _path(self, kind: str, key: str) -> Path:
        return self.root / kind / key[:2] / f"{key}.json"

    def selection(self, key: str) -> SelectionRecord | None:
        return _read(self._path("selections", key), SelectionRecord)

    def training(self, key: str) -> TrainingRecord | None:
        return _read(self._path("trainings", key), TrainingRecord)

    def put(self, record: SelectionRecord | TrainingRecord) -> None:
        kind = "selections" if isinstance(record, SelectionRecord) else "trainings"
        _write(self._path(kind, record.key), record.model_dump_json())

    def training_paths(self) -> dict[str, Path]:
        base = self.root / "trainings"
        return {p.stem: p for p in base.glob("*/*.json")} if base.is_dir() else {}

    def selection_path(self, key: str) -> Path:
        return self._path("selections", key)

    def save_experiment(self, name: str, training_keys: list[str]) -> None:
        _write(self.root / "experiments" / f"{name}.json", json.dumps(sorted(training_keys)))

    def experiment(self, name: str) -> list[str] | None:
        path = self.root / "experiments" / f"{name}.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def experiments(self) -> list[str]:
        base = self.root / "experiments"
        return sorted(p.stem for p in base.glob("*.json")) if base.is_dir() else []


def _read(path: Path, model: type[R]) -> R | None:
    try:
        return model.model_validate_json(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError:
        return None  # unreadable: the job is redone


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
