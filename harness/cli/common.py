"""Shared option helpers for the harness commands."""

from __future__ import annotations

from harness.settings import HarnessSettings
from harness.specs import BenchmarkSpecs, load_benchmark


def settings() -> HarnessSettings:
    return HarnessSettings()


def specs(s: HarnessSettings | None = None) -> BenchmarkSpecs:
    return load_benchmark((s or settings()).configs_dir)
