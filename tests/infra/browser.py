"""Real headless Chromium through Playwright, never downloading a browser.

    with chromium() as browser:                       # skips (fails in CI) without Chromium
        page = browser.new_page(viewport={"width": 390, "height": 844})
    guard = LocalOnly(); context.route("**/*", guard.route)   # records + blocks other hosts

Debian's ``/usr/bin/chromium`` (``make test`` installs it); ``playwright install`` is never
run. The flags keep Chromium from calling home (INFRA-NOTES.md).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.infra.ci import unavailable

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path("test-artifacts") / "browser"


def chromium_path() -> str:
    """The system Chromium; skip the test (fail in CI) when it or Playwright is missing."""
    path = shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
    )
    reason = None
    if path is None:
        reason = "Chromium not installed (apt-get install chromium; make test does it)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            reason = "the playwright Python package is not installed"
    if reason:
        unavailable(reason)
    assert path is not None
    return path


@contextmanager
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class LocalOnly:
    """A route handler: lets 127.0.0.1 (and data:/about:) through, aborts and records the rest."""

    seen: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)

    def route(self, route: Any) -> None:
        url = route.request.url
        self.seen.append(url)
        parts = urlsplit(url)
        if parts.scheme in ("data", "about", "blob") or parts.hostname == "127.0.0.1":
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort()


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
