"""The leaderboard in real Chromium, against a real uvicorn server on 127.0.0.1.

The database is seeded through the server's services (tests.server.board_seed), the server
runs as ``python -m server.cli serve`` in a subprocess, and every request the browser makes
is checked to stay on 127.0.0.1. Screenshots go to test-artifacts/browser/ (git-ignored).
In CI (CI=true) a missing Chromium fails these tests; elsewhere they skip.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlmodel import Session

from server.context import ServerContext
from server.db import make_engine, migrate
from server.live import LiveServer
from server.services.auth import create_team, issue_token
from tests.infra import browser as b
from tests.infra.browser import (
    ROWS_JS,
    LocalOnly,
    chromium,
    chromium_path,
    csp_violations,
    screenshot,
    watched_context,
)
from tests.server.board_seed import World, build_world
from tests.server.conftest import make_settings
from tests.server.helpers import live_env

pytestmark = pytest.mark.browser


@dataclass
class Live:
    server: LiveServer
    world: World
    db_url: str
    guard: LocalOnly
    context: Any
    errors: list[str]
    organizer_token: str


@pytest.fixture(scope="module")
def live(
    tmp_path_factory: pytest.TempPathFactory, server_configs: Path, data_root: Path
) -> Iterator[Live]:
    chromium_path()  # skip early (fail in CI) without a browser
    tmp = tmp_path_factory.mktemp("browser")
    url = f"sqlite:///{tmp / 'tdc.db'}"
    settings = make_settings(
        tmp, server_configs=server_configs, data_root=data_root, database_url=url
    )
    engine = make_engine(url)
    migrate(engine)
    ctx = ServerContext.from_settings(settings)
    with Session(engine) as db:
        ctx.catalog.sync(db)
        teams = {name: create_team(db=db, name=name) for name in ("alpha", "beta", "ops")}
        organizer_token, _ = issue_token(db=db, team=teams["ops"], scope="organizer")
    world = build_world(engine, ctx)
    engine.dispose()
    env = live_env(tmp, url=url, server_configs=server_configs, data_root=data_root)
    with LiveServer.start(env=env, log_path=tmp / "server.log") as server, chromium() as browser:
        guard, errors = LocalOnly(), list[str]()
        context = watched_context(
            browser, guard, errors, viewport={"width": 1280, "height": 900}, accept_downloads=True
        )
        yield Live(server, world, url, guard, context, errors, organizer_token)
        context.close()


def open_page(live: Live, path: str, *, context: Any = None) -> Any:
    return b.open_page(context or live.context, live.server.url + path, errors=live.errors)


def expected_board(db_url: str, *, fraction: float) -> list[tuple[str, str, str]]:
    """The public board straight from the tables: best test1 score per team, references apart."""
    sql = text(
        'SELECT t.name, s.kind, s.name, ts."primary" FROM taskscore ts '
        "JOIN submission s ON s.id = ts.submission_id JOIN team t ON t.id = s.team_id "
        "WHERE s.dataset = 'tiny' AND s.state = 'scored' AND s.hidden = 0 AND s.disqualified = 0 "
        "AND abs(s.fraction - :f) < 1e-9 AND ts.task = 'test1'"
    )
    engine = create_engine(db_url)
    with engine.connect() as conn:
        rows = conn.execute(sql, {"f": fraction}).all()
    engine.dispose()
    best: dict[tuple[str, bool], float] = {}
    for team, kind, method, score in rows:
        key = (method, True) if kind != "submission" else (team, False)
        best[key] = max(best.get(key, -math.inf), score)
    out, rank = [], 0
    for (label, ref), score in sorted(best.items(), key=lambda kv: -kv[1]):
        if not ref:
            rank += 1
        out.append(("ref" if ref else str(rank), label, f"{score:.3f}"))
    return out


def shown_board(page: Any) -> list[tuple[str, str, str]]:
    rows = page.eval_on_selector_all("table.board tbody tr", ROWS_JS)
    return [(r[0], r[1].split()[0], r[2].split()[0]) for r in rows]


def test_every_page_loads_and_the_board_matches_the_database(live: Live) -> None:
    ids = live.world.ids
    pages = {
        "home": "/",
        "board": "/datasets/tiny?fraction=0.1",
        "task-board": "/datasets/tiny?fraction=0.1&task=test1",
        "all-entries": "/datasets/tiny?fraction=0.1&all=1",
        "team-alpha": "/teams/alpha",
        **{f"submission-{k}": f"/submissions/{v}" for k, v in ids.items()},
    }
    unshown = {f"submission-{k}" for k in ("epsilon", "failed", "queued", "delta")}
    organizer = watched_context(
        live.context.browser,
        live.guard,
        live.errors,
        extra_http_headers={"Authorization": f"Bearer {live.organizer_token}"},
    )
    shots = {"home", "board", "team-alpha", "submission-alpha_all", "submission-failed"}
    for name, path in pages.items():  # what no public board shows, an organizer sees
        page = open_page(live, path, context=organizer if name in unshown else None)
        assert page.title().endswith("Task-DataComp")
        if name in shots:  # full-page screenshots cost ~1 s each; the rest just load
            screenshot(page, name)
        assert csp_violations(page) == [], name
        if name == "board":
            assert shown_board(page) == expected_board(live.db_url, fraction=0.1)
            assert expected_board(live.db_url, fraction=0.1)[1][1] == "alpha"  # not vacuous
            assert page.locator("svg.chart").count() == 1
        page.close()
    organizer.close()
    assert live.errors == []


def test_intervals_and_groups_match_the_json(live: Live) -> None:
    """What the browser shows of each entry's 95% interval and tied group is the JSON's."""
    import httpx

    page = open_page(live, "/datasets/tiny?fraction=0.1")
    rows = page.eval_on_selector_all("table.board tbody tr", ROWS_JS)
    board = httpx.get(f"{live.server.url}/api/leaderboard/tiny?fraction=0.1").json()["boards"][0]
    shown_groups = [r[3] for r in rows]  # rank, team, score, group
    assert shown_groups == [e["rank_label"] for e in board["entries"]]
    assert "=1" in shown_groups, "not vacuous: the seeded pair is tied"
    for row, entry in zip(rows, board["entries"], strict=True):
        ci = entry["score_ci95"]
        want = "" if ci is None else f"[{ci[0]:.3f}, {ci[1]:.3f}]"
        assert want in row[2], (row, entry)
    tied = page.locator("td[data-testid=group]", has_text="=1")
    assert "not distinguishable at 95%" in (tied.get_attribute("title") or "")
    page.close()


def test_sorting_a_column(live: Live) -> None:
    page = open_page(live, "/datasets/tiny?fraction=0.1")
    before = shown_board(page)
    page.get_by_role("button", name="Team / method").click()
    labels = [r[1] for r in shown_board(page)]
    assert labels == sorted(labels, key=str.lower)
    assert page.locator("th[aria-sort=ascending]").text_content().strip() == "Team / method"  # type: ignore[union-attr]
    score = page.get_by_role("button", name=re.compile(r"^accuracy"))  # not balanced_accuracy
    score.click()  # ascending score
    score.click()  # descending: the ranking again
    assert shown_board(page) == before
    assert csp_violations(page) == []  # sorting runs under the policy
    screenshot(page, "board-sorted")
    page.close()


def test_switching_fraction(live: Live) -> None:
    page = open_page(live, "/datasets/tiny?fraction=0.1")
    page.get_by_role("link", name="25%", exact=True).click()
    page.wait_for_url("**fraction=0.25**")
    assert shown_board(page) == expected_board(live.db_url, fraction=0.25)
    assert page.locator(".pill.current", has_text="25%").count() == 1
    page.close()


def test_downloading_the_csv(live: Live, tmp_path: Path) -> None:
    page = open_page(live, "/datasets/tiny?fraction=0.1")
    with page.expect_download() as info:
        page.get_by_test_id("csv").click()
    target = tmp_path / info.value.suggested_filename
    info.value.save_as(target)
    rows = list(csv.DictReader(target.open()))
    shown = shown_board(page)
    assert [(r["rank"] or "ref", r["label"], f"{float(r['accuracy']):.3f}") for r in rows] == shown
    page.close()


def test_phone_width_is_readable(live: Live) -> None:
    phone = live.context.browser.new_context(viewport={"width": 390, "height": 844})
    phone.route("**/*", live.guard.route)
    for name, path in (
        ("home", "/"),
        ("board", "/datasets/tiny?fraction=0.1"),
        ("submission", f"/submissions/{live.world.ids['alpha_all']}"),
        ("team", "/teams/alpha"),
    ):
        page = open_page(live, path, context=phone)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{name} overflows horizontally: {width}px"
        smallest = page.evaluate(
            "Math.min(...[...document.querySelectorAll('main td, main p, main li')]"
            ".filter(e => e.offsetParent !== null && e.innerText.trim())"
            ".map(e => parseFloat(getComputedStyle(e).fontSize)))"
        )
        assert smallest >= 12, f"{name}: text as small as {smallest}px"
        screenshot(page, f"phone-{name}")
        page.close()
    phone.close()


def test_no_request_left_127_0_0_1(live: Live) -> None:
    page = open_page(live, "/datasets/tiny?fraction=0.1")
    page.close()
    assert live.guard.seen, "the guard saw the traffic"
    assert live.guard.blocked == []
    assert any(u.endswith("/static/style.css") for u in live.guard.seen)
