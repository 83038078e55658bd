"""The demo's own board in real Chromium: what ``tdc-harness demo`` serves shows the JSON's 95%
intervals and statistically tied groups, for every row (references included).

The module runs the demo loop's steps once (``harness.cli.demo_loop.LOOP_STEPS``: server,
reference rows, the demo teams' entries, evaluation, oracle) on the session's prepared demo
benchmark, with its own runs directory and port. In CI (CI=true) a missing Chromium fails
these tests; elsewhere they skip.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from server.live import free_port
from tests.infra import browser as b
from tests.infra.browser import LocalOnly, chromium, chromium_path, csp_violations, screenshot

if TYPE_CHECKING:
    from harness.cli.demo import DemoRun
    from harness.datasets import Dataset

pytestmark = pytest.mark.browser

FRACTION = 0.1
BOARD = f"/datasets/demo?fraction={FRACTION}"
# Per board row: its label, the group cell, the score's interval, every cell's interval.
BOARD_JS = """rows => rows.map(r => ({
    label: r.dataset.label,
    group: r.querySelector("td.group") && r.querySelector("td.group").textContent.trim(),
    ci: [...r.cells].map(c => (c.querySelector(".ci") || {textContent: ""}).textContent.trim()),
}))"""
GROUPS = "not distinguishable at 95%"  # what the group column's tooltip says


@dataclass
class Demo:
    run: DemoRun
    url: str
    context: Any
    errors: list[str]
    guard: LocalOnly

    def open(self, path: str) -> Any:
        return b.open_page(self.context, self.url + path, errors=self.errors)

    def api(self, path: str, **params: Any) -> Any:
        return httpx.get(self.url + path, params=params, timeout=30).json()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, demo_dataset: Dataset) -> Iterator[Demo]:
    from harness.cli.demo import DemoRun
    from harness.cli.demo_loop import LOOP_STEPS
    from harness.settings import HarnessSettings

    chromium_path()  # skip early (fail in CI) without a browser
    runs = tmp_path_factory.mktemp("demo-runs")
    settings = HarnessSettings(
        data_root=demo_dataset.dir.root.parent, runs_dir=runs, port=free_port()
    )
    run = DemoRun(settings=settings, dataset=demo_dataset)
    try:
        for _, step in LOOP_STEPS:
            step(run)
        with chromium() as browser:
            guard, errors = LocalOnly(), list[str]()
            context = b.watched_context(
                browser, guard, errors, viewport={"width": 1280, "height": 900}
            )
            yield Demo(run, run.notes["server"].url, context, errors, guard)
            context.close()
    finally:
        if "server" in run.notes:
            run.notes["server"].stop()


def interval(ci: list[float] | None) -> str:
    """How a page writes a 95% interval (``leaderboard.render.fmt_ci``); "" when there is none."""
    return "" if ci is None else f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def test_the_demo_board_shows_the_json_intervals_and_groups(demo: Demo) -> None:
    page = demo.open(BOARD)
    shown = page.eval_on_selector_all("table.board tbody tr", BOARD_JS)
    (board,) = demo.api("/api/leaderboard/demo", fraction=FRACTION)["boards"]
    entries, tasks = board["entries"], board["tasks"]
    assert [r["label"] for r in shown] == [e["label"] for e in entries]
    for row, e in zip(shown, entries, strict=True):  # rank, team / method, score, group, tasks
        assert row["group"] == (e["rank_label"] or ""), (row, e)
        assert row["ci"][2] == interval(e["score_ci95"]), (row, e)
        cells = [e["tasks"].get(t) for t in tasks]
        assert row["ci"][4 : 4 + len(tasks)] == [interval(c and c["ci95"]) for c in cells], row
    refs = [e for e in entries if e["kind"] != "submission"]
    assert refs and all(e["score_ci95"] is not None for e in refs), refs  # unranked, intervals
    ranked = [e for e in entries if e["rank"] is not None]
    assert len(ranked) >= 3 and sum(e["score_ci95"] is not None for e in ranked) >= 2
    labels = [e["rank_label"] for e in ranked]
    assert any(x.startswith("=") for x in labels), labels  # a tied group...
    assert len({x.lstrip("=") for x in labels}) >= 2, labels  # ...and not everyone in it
    header = page.locator("table.board th", has_text="Group")
    assert GROUPS in (header.get_attribute("title") or "")
    for cell in page.locator("td[data-testid=group]", has_text="=").all():
        assert GROUPS in (cell.get_attribute("title") or "")
    assert csp_violations(page) == []
    screenshot(page, "demo-board")
    page.close()
    assert demo.errors == [] and demo.guard.blocked == []


def test_a_submission_page_shows_the_boards_task_intervals(demo: Demo) -> None:
    (board,) = demo.api("/api/leaderboard/demo", fraction=FRACTION)["boards"]
    entry = next(e for e in board["entries"] if e["rank"] is not None and e["score_ci95"])
    sid = entry["submission_ids"][0]
    cells = {t: c for t, c in entry["tasks"].items() if c["submission_id"] == sid}
    assert cells and all(c["ci95"] for c in cells.values()), entry
    page = demo.open(f"/submissions/{sid}")
    scores = page.locator("table.metrics").first  # (the per-seed table comes next)
    headers = [h.strip() for h in scores.locator("thead th").all_text_contents()]
    column = headers.index(board["primary_metric"])
    for task, cell in cells.items():
        shown = scores.locator(f"tr[data-task={task}] > *").nth(column).text_content() or ""
        assert shown.strip() == f"{cell['mean']:.3f} {interval(cell['ci95'])}", (task, cell)
    page.close()
    assert demo.errors == []


def test_a_rerun_of_the_demo_uploads_no_entry_twice(demo: Demo) -> None:
    from harness.cli.demo_loop import example_step

    example_step(demo.run)
    assert demo.run.notes["example"] == 0
