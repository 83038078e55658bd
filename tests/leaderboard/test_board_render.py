"""Pages render what the board says, escape user text, and link only within the host."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from leaderboard.render import (
    ServerLinks,
    StaticLinks,
    board_stem,
    render_board,
    render_home,
    render_submission,
    render_team,
    slug,
)
from leaderboard.views import (
    BoardPage,
    EventView,
    SeedScores,
    Standing,
    SubmissionSummary,
    SubmissionView,
    TaskScores,
    TeamView,
)
from tests.infra.html_probe import external, parse

T0 = datetime(2025, 3, 1, tzinfo=UTC)


def test_board_table_shows_the_ranking(sample_page: BoardPage) -> None:
    html = render_board(page=sample_page, links=ServerLinks())
    page = parse(html)
    table = page.tables[0]
    board = sample_page.board
    assert table.column("Rank") == [
        str(e.rank) if e.rank is not None else ("ref" if e.reference else "–")
        for e in board.entries
    ]
    # each row's score cell starts with the 3-decimal mean
    assert [c.split(" ")[0] for c in table.column("accuracy")] == [
        f"{e.score:.3f}" if e.score is not None else "–" for e in board.entries
    ]
    assert len(page.rows_with_class("ref")) == 3
    assert "missing test3" in page.text
    assert "test4 hidden until 2025-03-31" in page.text
    # the team name is text, never markup
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert not [t for t, a in page.tags if t == "script" and "src" not in a]
    assert external(page.urls) == []
    assert (
        "/api/leaderboard/demo?fraction=0.1&amp;recipe=linear_probe&amp;version=1&amp;format=csv"
        in html
    )


def test_board_switches_are_plain_links(sample_page: BoardPage) -> None:
    page = parse(render_board(page=sample_page, links=ServerLinks()))
    for f in ("0.05", "0.1", "0.25"):
        assert f"/datasets/demo?fraction={f}&recipe=linear_probe&version=1" in page.urls
    assert "/datasets/demo?fraction=0.1&recipe=linear_probe&version=1&task=test2" in page.urls
    assert "/datasets/demo?fraction=0.1&recipe=linear_probe&version=1&all=1" in page.urls
    # the hidden task gets no board link for the public
    assert not [u for u in page.urls if "task=test4" in u]


def test_row_limit_points_to_exports(sample_page: BoardPage) -> None:
    from dataclasses import replace

    limited = replace(sample_page, limit=2, all_rows_href="/datasets/demo?fraction=0.1&rows=all")
    page = parse(render_board(page=limited, links=ServerLinks()))
    assert len(page.tables[0].body) == 2
    assert "Showing the first 2 of 7 entries: show all 7" in page.text
    assert "/datasets/demo?fraction=0.1&rows=all" in page.urls


def test_home_lists_datasets_and_leaders(sample_page: BoardPage) -> None:
    page = parse(render_home(datasets=[sample_page.dataset], links=StaticLinks()))
    leaders = page.tables[0]
    assert leaders.column("Team") == ["owls", "owls", "owls"]
    assert leaders.column("Budget") == ["5%", "10%", "25%"]
    assert "4,300" in page.text and "(1 hidden)" in page.text
    assert external(page.urls) == []


def _submission(**kw: object) -> SubmissionView:
    base: dict[str, object] = dict(
        id=7,
        team="owls",
        dataset="demo",
        fraction=0.1,
        task=None,
        recipe="linear_probe",
        recipe_version="1",
        kind="submission",
        method="nearest-query",
        sha256="ab" * 32,
        size=430,
        budget=430,
        state="scored",
        hidden=False,
        disqualified=False,
        error=None,
        created_at=T0,
        updated_at=T0,
        scored_at=T0,
        primary_metric="accuracy",
        higher_is_better=True,
        events=(
            EventView(T0, "create", None, "queued", "owls", None),
            EventView(
                T0 + timedelta(minutes=1), "transition", "queued", "running", "worker-1", "claimed"
            ),
            EventView(
                T0 + timedelta(minutes=3), "transition", "running", "scored", "worker-1", None
            ),
        ),
        scores=(
            TaskScores(
                "test1",
                800,
                2,
                {"accuracy": 0.8, "mse": 0.001},
                {"accuracy": 0.01},
                (SeedScores(0, {"accuracy": 0.79}), SeedScores(1, {"accuracy": 0.81})),
            ),
            TaskScores(
                "test2",
                600,
                2,
                {"accuracy": 0.6},
                {"accuracy": 0.0},
                (SeedScores(0, {"accuracy": 0.6}), SeedScores(1, {"accuracy": 0.6})),
            ),
        ),
        hidden_tasks=("test4",),
        manifest={"code_version": "abc123", "libraries": {"numpy": "2.1"}, "job_id": None},
        references={"random_filter": {"test1": 0.5, "test2": 0.45}},
    )
    base.update(kw)
    return SubmissionView(**base)  # type: ignore[arg-type]


def test_submission_page() -> None:
    page = parse(render_submission(sub=_submission(), links=ServerLinks()))
    scores = page.tables[0]
    assert scores.column("Task") == ["test1", "test2"]
    assert scores.column("accuracy") == ["0.800 ± 0.010", "0.600"]
    assert scores.column("mse") == ["1.00e-03", "–"]
    seeds = page.tables[1]
    assert seeds.column("Seed") == ["0", "1", "0", "1"]
    assert "queued → running" in page.text and "running → scored" in page.text
    assert "withheld until the hidden test is revealed" in page.text
    assert "abc123" in page.text and "numpy 2.1" in page.text
    assert "random_filter" in page.text
    assert external(page.urls) == []


def test_failed_submission_shows_the_error() -> None:
    sub = _submission(state="failed_user", scores=(), error="3 UIDs are not in the pool: x, y, z")
    page = parse(render_submission(sub=sub, links=ServerLinks()))
    assert "Rejected: 3 UIDs are not in the pool: x, y, z" in page.text
    infra = parse(
        render_submission(
            sub=_submission(state="failed_infra", scores=(), error="node lost"), links=ServerLinks()
        )
    )
    assert "does not count against your quota" in infra.text


def test_team_page() -> None:
    team = TeamView(
        name="owls & co",
        created_at=T0,
        submissions=(
            SubmissionSummary(
                7, "demo", 0.1, None, "linear_probe", "submission", None, "scored", 430, T0
            ),
        ),
        standings=(Standing("demo", 0.1, "linear_probe", "1", 2, 5, 0.81, ()),),
    )
    html = render_team(team=team, links=StaticLinks(published={7}))
    page = parse(html)
    assert "Team owls & co" in page.text
    assert page.tables[0].column("Rank") == ["2 / 5"]
    assert page.tables[1].column("#") == ["#7"]
    assert "submission-7.html" in page.urls
    unpublished = parse(render_team(team=team, links=StaticLinks(published=set())))
    assert "submission-7.html" not in unpublished.urls


def test_static_names_are_safe_and_distinct() -> None:
    assert slug("a b") != slug("a-b")
    assert "/" not in slug("../../etc/passwd") and not slug("../x").startswith(".")
    a = board_stem("demo", fraction=0.1, recipe="linear_probe", version="1")
    b = board_stem("demo", fraction=0.1, recipe="linear_probe", version="1", task="test1")
    c = board_stem("demo", fraction=0.1, recipe="linear_probe", version="1", all_entries=True)
    assert len({a, b, c}) == 3
