"""The one exception hierarchy of Task-DataComp.

Every user-facing failure is a :class:`TdcError`. Boundaries translate it exactly once:
the console scripts print ``error: <message>`` and exit with code 2 (one runner for all
three, :mod:`submissions.cli_runner`; ``tdc-submit`` maps kinds of failure to their own
codes), the server answers a 4xx JSON problem list::

    def main(argv: list[str] | None = None) -> int:
        return run_app(app, argv, prog_name="tdc-harness")
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class TdcError(Exception):
    """Base class of every error a user can cause and fix."""

    http_status: int = 400
    code: str = "error"

    def problems(self) -> list[dict[str, Any]]:
        """The JSON problem list the server answers with."""
        return [{"code": self.code, "message": str(self)}]


class ConfigError(TdcError):
    """A YAML config or a setting is invalid (file, key and what is allowed are in the text)."""

    code = "config_error"


class UnknownName(TdcError, KeyError):
    """A name looked up in a registry or spec does not exist."""

    code = "unknown_name"
    http_status = 404

    def __init__(self, kind: str, name: str, near: Sequence[str], valid: Sequence[str]) -> None:
        self.kind, self.name = kind, name
        self.near, self.valid = list(near), list(valid)
        hint = f" Did you mean {', '.join(repr(n) for n in self.near)}?" if self.near else ""
        super().__init__(f"unknown {kind} {name!r}.{hint} Valid: {', '.join(self.valid)}.")

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class DataNotFound(TdcError):
    """A dataset, split, embedding or checkpoint is missing on disk."""

    code = "data_not_found"
    http_status = 404


class SubsetFileError(TdcError):
    """A submitted subset file cannot be read under the file contract."""

    code = "bad_subset_file"

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


class ValidationFailed(TdcError):
    """A subset broke one or more benchmark rules; ``problems()`` lists them all."""

    code = "invalid_submission"
    http_status = 422

    def __init__(self, problems: Sequence[Any]) -> None:
        self._problems = list(problems)
        lines = [getattr(p, "message", str(p)) for p in self._problems]
        super().__init__("; ".join(lines) or "invalid submission")

    def problems(self) -> list[dict[str, Any]]:
        return [p.model_dump() if hasattr(p, "model_dump") else dict(p) for p in self._problems]
