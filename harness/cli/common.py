"""Shared option helpers for the harness commands.

Settings (pydantic-settings) and specs (pydantic, numpy) are imported when a command runs, not
when the command modules are imported, so ``tdc-harness --help`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.settings import HarnessSettings
    from harness.specs import BenchmarkSpecs


def settings() -> HarnessSettings:
    from harness.settings import HarnessSettings

    return HarnessSettings()


def specs(s: HarnessSettings | None = None) -> BenchmarkSpecs:
    from harness.specs import load_benchmark

    return load_benchmark((s or settings()).configs_dir)
