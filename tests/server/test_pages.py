"""HTML pages over a database seeded through the worker path (SQLite and PostgreSQL).

Board of the tiny dataset (test1 public, test2 hidden), fraction 0.1, hand-computed:
public (test1 only): oracle 0.99 (ref), alpha 0.85 (best of its two), beta 0.833 (group "=1":
one example apart from alpha), random 0.50 (ref)
organizer (test1+test2): oracle, beta 0.867, alpha 0.725, random, gamma unranked (missing test1)
delta is disqualified and epsilon hidden: on no board.

Every test here only reads, so the module shares one seeded app per database (``shared_world``;
``client`` and ``tokens`` below are its); tests that write live in test_pages_cache.py.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.infra.html_probe import parse
from tests.server import board_seed
from tests.server.board_seed import World, board_rows, get_page
from tests.server.conftest import auth

shared_world = board_seed.shared_world  # the module-scoped fixture, made visible here


@pytest.fixture
def world(shared_world: World) -> World:
    return shared_world


@pytest.fixture
def client(world: World) -> TestClient:
    return world.client  # type: ignore[no-any-return]


@pytest.fixture
def tokens(world: World) -> dict[str, str]:
    return world.tokens


def test_public_board_ranks_public_tasks_only(client: TestClient, world: World) -> None:
    page = get_page(client, "/datasets/tiny?fraction=0.1")
    assert board_rows(page) == [
        ("ref", "oracle", "0.990"),
        ("1", "alpha", "0.850"),
        ("2", "beta", "0.833"),
        ("ref", "random_filter", "0.500"),
    ]
    assert "test2" not in page.tables[0].headers
    assert "Ranking on the public tests only" in page.text
    assert "delta" not in page.text and "epsilon" not in page.text and "gamma" not in page.text
    budget = page.tables[0].column("Subset / budget")
    assert set(budget) == {"30 / 30"}


def test_organizer_board_includes_hidden_tasks(
    client: TestClient, world: World, tokens: dict[str, str]
) -> None:
    page = get_page(client, "/datasets/tiny?fraction=0.1", headers=auth(tokens["ops"]))
    assert board_rows(page) == [
        ("ref", "oracle", "0.990"),
        ("1", "beta", "0.867"),
        ("2", "alpha", "0.725"),
        ("ref", "random_filter", "0.500"),
        ("–", "gamma", "–"),
    ]
    assert "missing test1" in page.text
    # alpha: test1 from its task-specific entry (std 0), test2 from the all-task one (3 seeds)
    # (its test1 row has per-example outcomes, so an interval; the test2 row has none, so the
    # entry has no score interval and a group of its own)
    alpha = page.tables[0].body[2].cells
    assert alpha[2] == "0.725 ± 0.004" and alpha[3] == "2"
    assert alpha[4:6] == ["0.850 [0.750, 0.933]", "0.600 ± 0.008"]
    # a participant token is no organizer
    assert (
        "test2"
        not in get_page(client, "/datasets/tiny?fraction=0.1", headers=auth(tokens["alpha"]))
        .tables[0]
        .headers
    )


def test_switching_fraction_task_and_entries(client: TestClient, world: World) -> None:
    page = get_page(client, "/datasets/tiny?fraction=0.25")
    assert board_rows(page) == [("1", "alpha", "0.880"), ("2", "beta", "0.860")]
    task = get_page(client, "/datasets/tiny?fraction=0.1&task=test1")
    assert board_rows(task)[1] == ("1", "alpha", "0.850")
    every = get_page(client, "/datasets/tiny?fraction=0.1&all=1")
    assert [r[:2] for r in board_rows(every)] == [
        ("ref", "oracle"),
        ("1", "alpha"),
        ("2", "beta"),
        ("3", "alpha"),
        ("ref", "random_filter"),
    ]
    assert get_page(client, "/datasets/tiny").tables[0].column("Rank")[1] == "1"  # default fraction


def test_board_errors_are_html_404(client: TestClient, world: World) -> None:
    for url, needle in (
        ("/datasets/tinny", "Did you mean 'tiny'"),
        ("/datasets/tiny?fraction=0.3", "not allowed"),
        ("/datasets/tiny?task=test2", "hidden until its test is revealed"),
        ("/submissions/99999", "not found"),
        ("/teams/nobody", "no team named"),
    ):
        r = client.get(url)
        assert r.status_code == 404 and needle in parse(r.text).text, url


def test_out_of_range_submission_ids_are_html_404(client: TestClient, world: World) -> None:
    """Ids beyond the 32-bit id column (or below 1) are pages that do not exist, never a 500."""
    for sid in ("9223372036854775808", "2147483648", "0", "-1", "1" + "0" * 40):
        r = client.get(f"/submissions/{sid}")
        assert r.status_code == 404, sid
        assert r.headers["content-type"].startswith("text/html")
        assert "not found" in parse(r.text).text


def test_home_lists_entries_and_leaders(client: TestClient, world: World) -> None:
    page = get_page(client, "/")
    assert "tiny" in page.text and "classification" in page.text
    # alpha_all, alpha_t1, beta_all, gamma_t2, random, oracle, alpha_25, beta_25 (not: delta,
    # epsilon, failed, queued)
    assert "Entries 8" in page.text
    leaders = page.tables[0]
    assert leaders.column("Team") == ["alpha", "alpha", "no ranked entry yet"]
    assert leaders.column("Budget") == ["10%", "25%", "50%"]


def test_submission_page(client: TestClient, world: World, tokens: dict[str, str]) -> None:
    page = get_page(client, f"/submissions/{world.ids['alpha_all']}")
    scores = page.tables[0]
    assert scores.column("Task") == ["test1"]  # test2 withheld for the public
    assert scores.column("accuracy") == ["0.800 ± 0.008"]
    assert page.tables[1].column("Seed") == ["0", "1", "2"]
    assert "withheld until the hidden test is revealed" in page.text
    assert "random_filter" in page.text  # the reference tick on the bar chart
    # The public timeline says when it was submitted and scored; no worker, no organizer.
    assert "submit" in page.text.lower() and "running → scored" in page.text
    assert "queued → running" not in page.text and "by participant:" not in page.text
    own = get_page(client, f"/submissions/{world.ids['alpha_all']}", headers=auth(tokens["alpha"]))
    assert "queued → running" in own.text and "by participant:alpha" in own.text
    org = get_page(client, f"/submissions/{world.ids['alpha_all']}", headers=auth(tokens["ops"]))
    assert org.tables[0].column("Task") == ["test1", "test2"]


def test_what_no_board_shows_is_for_the_team_and_organizers(
    client: TestClient, world: World, tokens: dict[str, str]
) -> None:
    """The public and other teams get 404 for a submission no public board shows (queued,
    failed, disqualified, hidden), as the API answers; its team and organizers see it."""
    unshown = {"failed": "beta", "queued": "gamma", "delta": "delta", "epsilon": "epsilon"}
    for role in unshown:
        url = f"/submissions/{world.ids[role]}"
        assert client.get(url).status_code == 404, role
        assert client.get(url, headers=auth(tokens["alpha"])).status_code == 404, role
        get_page(client, url, headers=auth(tokens["ops"]))
    failed = get_page(client, f"/submissions/{world.ids['failed']}", headers=auth(tokens["beta"]))
    assert "Rejected: 3 UIDs are not in the pool: a, b, c" in failed.text
    assert "failed user" in failed.text
    dq = get_page(client, f"/submissions/{world.ids['delta']}", headers=auth(tokens["ops"]))
    assert "disqualified and is not ranked" in dq.text
    queued = get_page(client, f"/submissions/{world.ids['queued']}", headers=auth(tokens["ops"]))
    assert "queued" in queued.text and not queued.tables


def test_team_page(client: TestClient, world: World, tokens: dict[str, str]) -> None:
    page = get_page(client, "/teams/alpha")
    standings, subs = page.tables
    assert standings.column("Rank") == ["1 / 2", "1 / 2"]
    assert len(subs.body) == 3
    beta = get_page(client, "/teams/beta")  # its failed upload is its own business
    assert "failed user" not in beta.text and len(beta.tables[1].body) == 2
    own = get_page(client, "/teams/beta", headers=auth(tokens["beta"]))
    assert "failed user" in own.text and len(own.tables[1].body) == 3
    hidden_only = get_page(client, "/teams/epsilon")  # its one submission is hidden
    assert not hidden_only.tables and "No public submissions" in hidden_only.text


def test_pages_hold_nothing_the_content_security_policy_forbids(
    client: TestClient, world: World
) -> None:
    """No inline script, style element or style attribute (the charts included), no other
    origin: the policy's ``script-src 'self'; style-src 'self'`` keeps every page working."""
    paths = ["/", "/datasets/tiny?fraction=0.1", "/datasets/tiny?fraction=0.1&task=test1",
             "/teams/alpha", *(f"/submissions/{i}" for i in world.ids.values())]  # fmt: skip
    for path in paths:
        html = client.get(path).text.lower()
        assert "<svg" in html or not path.startswith("/datasets"), path  # charts are checked
        for needle in ("<script>", "<style", " style=", "javascript:", " onclick=", 'src="http'):
            assert needle not in html, (path, needle)


def test_static_files_are_served(client: TestClient) -> None:
    css = client.get("/static/style.css")
    assert css.status_code == 200 and "system-ui" in css.text
    assert "http" not in css.text.replace("http-equiv", "")
    js = client.get("/static/sort.js")
    assert js.status_code == 200 and "data-sortable" in js.text and "fetch(" not in js.text


def test_intervals_and_tied_groups(client: TestClient, world: World) -> None:
    """alpha (51 of 60 test1 examples right) and beta (50, the same ones but one): their
    paired difference is not significant, so beta is "=1"; rows without per-example outcomes
    (the references here) have no interval and no group."""
    page = get_page(client, "/datasets/tiny?fraction=0.1")
    board = page.tables[0]
    assert board.column("Group") == ["", "1", "=1", ""]
    assert board.column("Rank") == ["ref", "1", "2", "ref"]  # the strict ranks stay
    alpha, beta = board.column("accuracy")[1:3]
    assert alpha.startswith("0.850 [") and beta.startswith("0.833 [")
    assert "not distinguishable at 95%" in page.text
    api = client.get("/api/leaderboard/tiny", params={"fraction": 0.1}).json()
    entries = api["boards"][0]["entries"]
    assert [e["group"] for e in entries] == [None, 1, 1, None]
    assert [e["rank_label"] for e in entries] == ["", "1", "=1", ""]
    low, high = entries[1]["score_ci95"]
    assert low < 0.85 < high and entries[1]["tasks"]["test1"]["ci95"] == [low, high]
    assert entries[0]["score_ci95"] is None  # the oracle: no outcomes recorded
    csv_text = client.get("/api/leaderboard/tiny", params={"fraction": 0.1, "format": "csv"}).text
    header, _, alpha_row = csv_text.splitlines()[:3]
    cols = dict(zip(header.split(","), alpha_row.split(","), strict=True))
    assert cols["group"] == "1" and float(cols["accuracy_ci95_low"]) == low
    assert float(cols["test1_ci95_high"]) == high


def test_submission_page_shows_its_intervals(client: TestClient, world: World) -> None:
    page = get_page(client, f"/submissions/{world.ids['beta_all']}")
    assert page.tables[0].column("accuracy")[0].startswith("0.833 [")
    without = get_page(client, f"/submissions/{world.ids['alpha_all']}")
    assert without.tables[0].column("accuracy") == ["0.800 ± 0.008"]  # stored before outcomes
