"""Shared option helpers for the harness commands.

Settings (pydantic-settings) and specs (pydantic, numpy) are imported when a command runs, not
when the command modules are imported, so ``tdc-harness --help`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.settings import HarnessSettings
    from harness.specs import BenchmarkSpecs
    from submissions.config import ClientSettings


def settings() -> HarnessSettings:
    """The harness's settings from ``TDC_*`` (an invalid value is a ConfigError: exit 2)."""
    from harness.settings import HarnessSettings
    from submissions.config import load_settings

    return load_settings(HarnessSettings)


def client_settings() -> ClientSettings:
    """How the harness reaches the server: ``TDC_SERVER``, ``TDC_ORGANIZER_TOKEN``, ..."""
    from submissions.config import ClientSettings, load_settings

    return load_settings(ClientSettings)


def specs(s: HarnessSettings | None = None) -> BenchmarkSpecs:
    from harness.specs import load_benchmark

    return load_benchmark((s or settings()).configs_dir)
