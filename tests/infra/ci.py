"""In CI (``CI=true``) the real components must be there: a missing one fails, never skips.

unavailable("PostgreSQL not installed")   # pytest.fail in CI, pytest.skip elsewhere
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


def unavailable(reason: str) -> NoReturn:
    """Fail in CI (the component must be there), skip with the reason elsewhere."""
    if IN_CI:
        pytest.fail(f"{reason} (required in CI)")
    pytest.skip(reason)
