"""HTML pages over a database seeded through the worker path (SQLite and PostgreSQL).

Board of the tiny dataset (test1 public, test2 hidden), fraction 0.1, hand-computed:
public (test1 only): oracle 0.99 (ref), alpha 0.85 (best of its two), beta 0.82, random 0.50 (ref)
organizer (test1+test2): oracle, beta 0.86, alpha 0.725, random, gamma unranked (missing test1)
delta is disqualified and epsilon hidden: on no board.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from server.context import ServerContext
from tests.infra.html_probe import Page, external, parse
from tests.server.board_seed import Planned, fail_one, moderate, queue_one, seed
from tests.server.conftest import auth


@dataclass(frozen=True)
class World:
    ids: dict[str, int]


def build_world(engine: Engine, ctx: ServerContext) -> World:
    plans = {
        "alpha_all": Planned("alpha", {"test1": 0.80, "test2": 0.60}, spread=0.01),
        "alpha_t1": Planned("alpha", {"test1": 0.85}, task="test1", name="nearest-query"),
        "beta_all": Planned("beta", {"test1": 0.82, "test2": 0.90}),
        "gamma_t2": Planned("gamma", {"test2": 0.95}, task="test2"),
        "random": Planned(
            "ops", {"test1": 0.5, "test2": 0.5}, kind="baseline", name="random_filter"
        ),
        "oracle": Planned("ops", {"test1": 0.99, "test2": 0.99}, kind="oracle", name="oracle"),
        "delta": Planned("delta", {"test1": 0.97, "test2": 0.97}),
        "epsilon": Planned("epsilon", {"test1": 0.96, "test2": 0.96}),
        "alpha_25": Planned("alpha", {"test1": 0.88, "test2": 0.70}, fraction=0.25),
        "beta_25": Planned("beta", {"test1": 0.86, "test2": 0.92}, fraction=0.25),
    }
    ids = dict(zip(plans, seed(engine, ctx, list(plans.values())), strict=True))
    moderate(engine, ctx, ids["delta"], "disqualify")
    moderate(engine, ctx, ids["epsilon"], "hide")
    ids["failed"] = fail_one(
        engine, ctx, team="beta", message="3 UIDs are not in the pool: a, b, c"
    )
    ids["queued"] = queue_one(engine, team="gamma")
    return World(ids)


@pytest.fixture
def world(app: FastAPI, engine: Engine, client: TestClient, tokens: dict[str, str]) -> World:
    return build_world(engine, app.state.ctx)


def get_page(client: TestClient, url: str, **kw: object) -> Page:
    r = client.get(url, **kw)  # type: ignore[arg-type]
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    page = parse(r.text)
    assert external(page.urls) == [], "pages load nothing from outside the host"
    return page


def board_rows(page: Page) -> list[tuple[str, str, str]]:
    """(rank, team or method, score mean) per row."""
    t = page.tables[0]
    first = [c.split(" ")[0] for c in t.column("Team / method")]
    means = [c.split(" ")[0] for c in t.column("accuracy")]
    return list(zip(t.column("Rank"), first, means, strict=True))


def test_public_board_ranks_public_tasks_only(client: TestClient, world: World) -> None:
    page = get_page(client, "/datasets/tiny?fraction=0.1")
    assert board_rows(page) == [
        ("ref", "oracle", "0.990"),
        ("1", "alpha", "0.850"),
        ("2", "beta", "0.820"),
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
        ("1", "beta", "0.860"),
        ("2", "alpha", "0.725"),
        ("ref", "random_filter", "0.500"),
        ("–", "gamma", "–"),
    ]
    assert "missing test1" in page.text
    # alpha: test1 from its task-specific entry (std 0), test2 from the all-task one (3 seeds)
    alpha = page.tables[0].body[2].cells
    assert alpha[2] == "0.725 ± 0.004" and alpha[3:5] == ["0.850", "0.600 ± 0.008"]
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
    assert (
        "submit" in page.text.lower()
        and "queued → running" in page.text
        and "running → scored" in page.text
    )
    assert "random_filter" in page.text  # the reference tick on the bar chart
    org = get_page(client, f"/submissions/{world.ids['alpha_all']}", headers=auth(tokens["ops"]))
    assert org.tables[0].column("Task") == ["test1", "test2"]


def test_failed_hidden_and_disqualified_submissions(
    client: TestClient, world: World, tokens: dict[str, str]
) -> None:
    failed = get_page(client, f"/submissions/{world.ids['failed']}")
    assert "Rejected: 3 UIDs are not in the pool: a, b, c" in failed.text
    assert "failed user" in failed.text
    assert client.get(f"/submissions/{world.ids['epsilon']}").status_code == 404
    get_page(client, f"/submissions/{world.ids['epsilon']}", headers=auth(tokens["ops"]))
    dq = get_page(client, f"/submissions/{world.ids['delta']}")
    assert "disqualified and is not ranked" in dq.text
    queued = get_page(client, f"/submissions/{world.ids['queued']}")
    assert "queued" in queued.text and not queued.tables


def test_team_page(client: TestClient, world: World) -> None:
    page = get_page(client, "/teams/alpha")
    standings, subs = page.tables
    assert standings.column("Rank") == ["1 / 2", "1 / 2"]
    assert len(subs.body) == 3
    beta = get_page(client, "/teams/beta")
    assert "failed user" in beta.text
    hidden_only = get_page(client, "/teams/epsilon")  # its one submission is hidden
    assert not hidden_only.tables and "No public submissions" in hidden_only.text


def test_static_files_are_served(client: TestClient) -> None:
    css = client.get("/static/style.css")
    assert css.status_code == 200 and "system-ui" in css.text
    assert "http" not in css.text.replace("http-equiv", "")
    js = client.get("/static/sort.js")
    assert js.status_code == 200 and "data-sortable" in js.text and "fetch(" not in js.text


def test_board_cache_is_revalidated_by_new_scores(
    app: FastAPI, engine: Engine, client: TestClient, world: World
) -> None:
    pages = app.state.pages
    get_page(client, "/datasets/tiny?fraction=0.1")
    builds = pages.boards.builds
    get_page(client, "/datasets/tiny?fraction=0.1")
    assert pages.boards.builds == builds, "an unchanged database is served from the cache"
    seed(engine, app.state.ctx, [Planned("zeta", {"test1": 0.93, "test2": 0.1})])
    assert board_rows(get_page(client, "/datasets/tiny?fraction=0.1"))[1] == ("1", "zeta", "0.930")
    moderate(engine, app.state.ctx, world.ids["alpha_t1"], "disqualify")
    rows = board_rows(get_page(client, "/datasets/tiny?fraction=0.1"))
    assert ("2", "beta", "0.820") in rows and ("3", "alpha", "0.800") in rows
