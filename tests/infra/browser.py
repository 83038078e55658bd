"""Real headless Chromium through Playwright, never downloading a browser.

    with chromium() as browser:                       # skips (fails in CI) without Chromium
        page = browser.new_page(viewport={"width": 390, "height": 844})
    guard = LocalOnly(); context.route("**/*", guard.route)   # records + blocks other hosts
    context = watched_context(browser, guard, errors)  # guarded; page errors, CSP recorded
    page = open_page(context, url, errors=errors)       # 200 under the site's CSP, or fails
    page.eval_on_selector_all("table.board tbody tr", ROWS_JS)   # every row's cell texts

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
ROWS_JS = "rows => rows.map(r => [...r.cells].map(c => c.innerText.trim()))"
# Records what the Content-Security-Policy blocks (Chromium also logs it as a console error).
CSP_PROBE = """document.addEventListener("securitypolicyviolation",
    e => (window.__csp = window.__csp || []).push(e.violatedDirective + " " + e.blockedURI));"""


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


def watched_context(browser: Any, guard: LocalOnly, errors: list[str], **options: Any) -> Any:
    """A browser context (``options`` as ``new_context``'s) whose requests go through ``guard``,
    whose uncaught page errors land in ``errors`` and whose CSP violations are recorded."""
    context = browser.new_context(**options)
    context.route("**/*", guard.route)
    context.add_init_script(CSP_PROBE)
    context.on("weberror", lambda e: errors.append(str(e.error)))
    return context


def open_page(context: Any, url: str, *, errors: list[str]) -> Any:
    """A new page at ``url`` (200, under the site's script policy); console errors go to
    ``errors``."""

    def on_console(message: Any) -> None:
        if message.type == "error":
            errors.append(message.text)

    page = context.new_page()
    page.set_default_timeout(15_000)
    page.on("console", on_console)
    response = page.goto(url)
    assert response is not None and response.status == 200, url
    assert "script-src 'self'" in response.headers["content-security-policy"], url
    return page


def csp_violations(page: Any) -> list[str]:
    return page.evaluate("window.__csp || []")


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
