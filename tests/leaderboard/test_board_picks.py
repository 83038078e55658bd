"""Final picks on a board (``leaderboard.picks``) and when they may change (``pick_window``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from harness.specs import TaskSpec
from leaderboard.phases import pick_window
from leaderboard.picks import final_picks, final_rows
from leaderboard.ranking import BoardKey, RankingRule, rank_dataset_board
from leaderboard.rows import Kind, ResultRow

T0 = datetime(2025, 3, 1, tzinfo=UTC)
RULE = RankingRule(primary="accuracy", secondary="balanced_accuracy")
KEY = BoardKey("demo", 0.1, "linear_probe", "1")
PUBLIC, HIDDEN = ("test1", "test2"), ("test3",)


def sub(
    sid: int,
    team: str,
    scores: dict[str, float],
    *,
    picked: bool = False,
    scope: str | None = None,
    kind: Kind = "submission",
) -> list[ResultRow]:
    """One submission's rows (secondary = primary, created in id order)."""
    method = team if kind != "submission" else None
    return [
        row(sid, task, v, team=team, scope=scope, kind=kind, method=method, picked=picked)
        for task, v in scores.items()
    ]


def row(sid: int, task: str, value: float, **kw: object) -> ResultRow:
    metrics = {"accuracy": value, "balanced_accuracy": value, "mse": value}
    return ResultRow(submission_id=sid, team=str(kw.pop("team", "owls")), dataset="demo",
                     fraction=0.1, recipe="linear_probe", recipe_version="1", task=task,
                     created_at=T0 + timedelta(hours=sid), mean=metrics,
                     **kw)  # type: ignore[arg-type]  # fmt: skip


def picks(rows: list[ResultRow], limit: int = 2) -> frozenset[int]:
    return final_picks(rows, hidden=HIDDEN, public=PUBLIC, limit=limit, rule=RULE)


def test_a_team_without_picks_counts_its_best_by_public_score() -> None:
    rows = [
        *sub(1, "owls", {"test1": 0.9, "test2": 0.9, "test3": 0.1}),
        *sub(2, "owls", {"test1": 0.5, "test2": 0.5, "test3": 0.99}),
        *sub(3, "owls", {"test1": 0.8, "test2": 0.8, "test3": 0.2}),
    ]
    assert picks(rows) == {1, 3}
    assert picks(rows, limit=1) == {1}
    assert picks(rows, limit=3) == {1, 2, 3}


def test_picks_replace_the_fallback_and_are_capped_at_the_limit() -> None:
    rows = [
        *sub(1, "owls", {"test1": 0.9, "test2": 0.9, "test3": 0.1}),
        *sub(2, "owls", {"test1": 0.5, "test2": 0.5, "test3": 0.99}, picked=True),
        *sub(3, "bats", {"test1": 0.7, "test2": 0.7, "test3": 0.5}, picked=True),
        *sub(4, "bats", {"test1": 0.8, "test2": 0.8, "test3": 0.6}, picked=True),
        *sub(5, "bats", {"test1": 0.6, "test2": 0.6, "test3": 0.7}, picked=True),
    ]
    assert picks(rows) == {2, 3, 4}, "owls: its one pick; bats: its 2 best picks (limit lowered)"


def test_ties_and_missing_public_scores() -> None:
    rows = [
        *sub(1, "owls", {"test3": 0.99}, scope="test3"),  # declared for the hidden task
        *sub(2, "owls", {"test1": 0.6, "test2": 0.6, "test3": 0.3}),
        *sub(3, "owls", {"test1": 0.6, "test2": 0.6, "test3": 0.4}),  # tie: the earlier wins
        *sub(4, "owls", {"test1": 0.1, "test3": 0.9}),  # no test2 score: no public score
    ]
    assert picks(rows) == {2, 3}
    assert picks(rows, limit=1) == {2}
    assert picks(rows, limit=4) == {1, 2, 3, 4}
    assert final_picks(rows, hidden=HIDDEN, public=(), limit=2, rule=RULE) == {1, 2}


def test_only_hidden_rows_of_participants_are_filtered() -> None:
    rows = [
        *sub(1, "owls", {"test1": 0.9, "test2": 0.9, "test3": 0.1}, picked=True),
        *sub(2, "owls", {"test1": 0.95, "test2": 0.95, "test3": 0.99}),
        *sub(3, "owls", {"test1": 0.99}, scope="test1"),
        *sub(4, "oracle", {"test1": 1.0, "test2": 1.0, "test3": 1.0}, kind="oracle"),
    ]
    kept = final_rows(rows, hidden=HIDDEN, public=PUBLIC, limit=2, rule=RULE)
    dropped = {(r.submission_id, r.task) for r in rows} - {(r.submission_id, r.task) for r in kept}
    assert dropped == {(2, "test3")}
    board = rank_dataset_board(kept, key=KEY, tasks=(*PUBLIC, *HIDDEN), rule=RULE)
    owls = next(e for e in board.entries if e.team == "owls")
    assert owls.cells["test1"].submission_id == 3 and owls.cells["test3"].submission_id == 1
    assert owls.rank == 1 and board.entries[0].kind == "oracle"


def test_lower_is_better_boards_pick_the_lowest_public_error() -> None:
    rule = RankingRule(primary="mse", higher_is_better=False)
    cells = [(1, "test1", 0.2), (1, "test3", 0.9), (2, "test1", 0.1), (2, "test3", 0.5),
             (3, "test1", 0.3), (3, "test3", 0.1)]  # fmt: skip
    rows = [row(sid, task, v) for sid, task, v in cells]
    assert final_picks(rows, hidden=HIDDEN, public=("test1",), limit=2, rule=rule) == {1, 2}


def test_pick_window_closes_at_the_first_reveal() -> None:
    now = datetime(2025, 6, 1, tzinfo=UTC)
    tasks = (
        TaskSpec(name="test1", query="val1", test="test1"),
        TaskSpec(name="test2", query="val2", test="test2", hidden=True, reveal_at="2025-07-01"),
        TaskSpec(name="test3", query="val3", test="test3", hidden=True, reveal_at="2025-06-15"),
    )
    window = pick_window(tasks, now=now)
    assert window.tasks == ("test2", "test3") and window.open
    assert window.closes_at == datetime(2025, 6, 15, tzinfo=UTC)
    assert not pick_window(tasks, now=datetime(2025, 6, 20, tzinfo=UTC)).open
    over = {"test3": "2025-05-01T00:00Z"}
    assert not pick_window(tasks, now=now, reveal_overrides=over).open
    never = pick_window(tasks[:2], now=now, reveal_overrides={"test2": "2031-01-01"})
    assert never.open and never.closes_at == datetime(2031, 1, 1, tzinfo=UTC)
    assert pick_window(tasks[:1], now=now) == pick_window((), now=now)
    assert not pick_window(tasks[:1], now=now).open and pick_window(tasks[:1], now=now).tasks == ()
