"""Ranking rules: tie-break chain, best per team, missing tasks, references, directions."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leaderboard.ranking import BoardKey, RankingRule, rank_dataset_board, rank_task_board
from leaderboard.rows import ResultRow, aggregate_seeds

T0 = datetime(2025, 1, 1, tzinfo=UTC)
KEY = BoardKey(dataset="demo", fraction=0.1, recipe="linear_probe", recipe_version="1")
RULE = RankingRule(primary="accuracy", secondary="balanced_accuracy")
TASKS = ("test1", "test2")


def row(
    sid: int,
    team: str,
    task: str,
    acc: float,
    *,
    bal: float | None = None,
    minutes: int = 0,
    scope: str | None = None,
    kind: str = "submission",
    method: str | None = None,
    fraction: float = 0.1,
    version: str = "1",
    std: float = 0.0,
) -> ResultRow:
    mean = {"accuracy": acc}
    if bal is not None:
        mean["balanced_accuracy"] = bal
    return ResultRow(
        submission_id=sid,
        team=team,
        dataset="demo",
        fraction=fraction,
        recipe="linear_probe",
        recipe_version=version,
        task=task,
        created_at=T0 + timedelta(minutes=minutes),
        mean=mean,
        std={"accuracy": std},
        n_seeds=3,
        scope=scope,
        kind=kind,  # type: ignore[arg-type]
        method=method,
        subset_size=100,
    )


def both(sid: int, team: str, a1: float, a2: float, **kw: object) -> list[ResultRow]:
    return [row(sid, team, "test1", a1, **kw), row(sid, team, "test2", a2, **kw)]  # type: ignore[arg-type]


def board(rows: list[ResultRow], **kw: object):  # type: ignore[no-untyped-def]
    return rank_dataset_board(rows, key=KEY, tasks=TASKS, rule=RULE, **kw)  # type: ignore[arg-type]


def test_ranks_by_mean_over_tasks() -> None:
    rows = both(1, "a", 0.9, 0.5) + both(2, "b", 0.6, 0.7) + both(3, "c", 0.8, 0.8)
    b = board(rows)
    assert [(e.rank, e.team) for e in b.entries] == [(1, "c"), (2, "a"), (3, "b")]
    assert b.entries[0].score == pytest.approx(0.8)
    assert b.entries[1].score == pytest.approx(0.7)


def test_lower_is_better_sorts_ascending() -> None:
    rule = RankingRule(primary="accuracy", higher_is_better=False)
    rows = both(1, "a", 0.9, 0.5) + both(2, "b", 0.6, 0.7)
    b = rank_dataset_board(rows, key=KEY, tasks=TASKS, rule=rule)
    assert [e.team for e in b.entries] == ["b", "a"]


def test_tie_break_secondary_then_earlier() -> None:
    rows = (
        both(1, "early", 0.7, 0.7, bal=0.5, minutes=0)
        + both(2, "late_better_secondary", 0.7, 0.7, bal=0.6, minutes=10)
        + both(3, "late_same", 0.7, 0.7, bal=0.5, minutes=5)
    )
    b = board(rows)
    assert [(e.rank, e.team) for e in b.entries] == [
        (1, "late_better_secondary"),
        (2, "early"),
        (3, "late_same"),
    ]


def test_full_tie_shares_rank() -> None:
    rows = (
        both(1, "x", 0.7, 0.7, bal=0.5) + both(2, "y", 0.7, 0.7, bal=0.5) + both(3, "z", 0.1, 0.1)
    )
    b = board(rows)
    assert [e.rank for e in b.entries] == [1, 1, 3]


def test_float_noise_does_not_break_ties() -> None:
    # 0.1 + 0.2 vs 0.3: same score after averaging, must tie on primary.
    rows = both(1, "x", 0.1 + 0.2, 0.3, minutes=1) + both(2, "y", 0.3, 0.1 + 0.2, minutes=0)
    b = board(rows)
    assert [e.team for e in b.entries] == ["y", "x"]  # decided by time, not by float noise


def test_best_per_team_on_each_task_and_all_entries() -> None:
    rows = both(1, "a", 0.9, 0.1, minutes=0) + both(2, "a", 0.2, 0.8, minutes=5)
    b = board(rows)
    (e,) = b.entries
    assert e.score == pytest.approx(0.85)
    assert e.cells["test1"].submission_id == 1 and e.cells["test2"].submission_id == 2
    assert e.submission_ids == (1, 2)
    assert e.submitted_at == T0 + timedelta(minutes=5)  # reachable only once both existed
    allb = board(rows, all_entries=True)
    assert [(e.rank, e.submission_ids) for e in allb.entries] == [
        (1, (1,)),
        (2, (2,)),
    ]  # equal score: earlier first


def test_an_entry_is_named_after_the_rows_it_shows() -> None:
    rows = both(1, "a", 0.2, 0.2, method="first try") + both(2, "a", 0.9, 0.8, method="better")
    (e,) = board(rows).entries
    assert e.submission_ids == (2,) and e.method == "better"  # not the earlier, unshown try


def test_task_specific_submissions_combine_with_all_task_ones() -> None:
    rows = [
        row(1, "a", "test1", 0.9, scope="test1"),
        row(2, "a", "test2", 0.6, scope="test2"),
        *both(3, "a", 0.5, 0.7),
        # A task-specific row can never count for another task, even if mislabelled.
        row(4, "a", "test2", 0.99, scope="test1"),
    ]
    (e,) = board(rows).entries
    assert e.cells["test1"].mean == 0.9 and e.cells["test2"].mean == 0.7
    assert e.score == pytest.approx(0.8)


def test_team_missing_task_is_unranked_and_listed_last() -> None:
    rows = [row(1, "partial", "test1", 0.99), *both(2, "full", 0.5, 0.5)]
    b = board(rows)
    assert [(e.rank, e.team, e.missing) for e in b.entries] == [
        (1, "full", ()),
        (None, "partial", ("test2",)),
    ]
    assert b.entries[1].score is None


def test_references_always_shown_flagged_and_unranked() -> None:
    rows = (
        both(1, "org", 0.95, 0.95, kind="oracle", method="oracle")
        + both(2, "org", 0.5, 0.5, kind="baseline", method="random_filter")
        + both(3, "org", 0.6, 0.6, kind="baseline", method="image_alignment")
        + both(4, "a", 0.7, 0.7)
        + both(5, "b", 0.55, 0.55)
    )
    b = board(rows)
    got = [(e.rank, e.label, e.reference) for e in b.entries]
    assert got == [
        (None, "oracle", True),
        (1, "a", False),
        (None, "image_alignment", True),
        (2, "b", False),
        (None, "random_filter", True),
    ]
    assert b.leader() is not None and b.leader().team == "a"  # type: ignore[union-attr]


def test_other_recipe_versions_and_fractions_are_never_mixed() -> None:
    rows = (
        both(1, "a", 0.5, 0.5)
        + both(2, "b", 0.9, 0.9, version="2")
        + both(3, "c", 0.9, 0.9, fraction=0.25)
    )
    assert [e.team for e in board(rows).entries] == ["a"]


def test_hidden_tasks_are_left_out_when_not_passed() -> None:
    rows = both(1, "a", 0.5, 0.9) + both(2, "b", 0.6, 0.1)
    b = rank_dataset_board(rows, key=KEY, tasks=("test1",), rule=RULE)
    assert [e.team for e in b.entries] == ["b", "a"]
    assert all(set(e.cells) == {"test1"} for e in b.entries)


def test_task_board() -> None:
    rows = [
        *both(1, "a", 0.5, 0.9),
        row(2, "b", "test2", 0.8, scope="test2"),
        row(3, "c", "test1", 1.0, scope="test1"),
    ]
    b = rank_task_board(rows, key=BoardKey(**{**KEY.__dict__, "task": "test2"}), rule=RULE)
    assert [(e.rank, e.team) for e in b.entries] == [(1, "a"), (2, "b")]


def test_score_std_combines_task_stds() -> None:
    rows = [row(1, "a", "test1", 0.5, std=0.03), row(1, "a", "test2", 0.7, std=0.04)]
    (e,) = board(rows).entries
    assert e.score_std == pytest.approx(0.025)  # sqrt(0.03² + 0.04²) / 2


def test_aggregate_seeds() -> None:
    mean, std, n = aggregate_seeds([{"accuracy": 0.8, "mse": 1.0}, {"accuracy": 0.6}])
    assert n == 2 and mean == {"accuracy": pytest.approx(0.7), "mse": 1.0}
    assert std["accuracy"] == pytest.approx(0.1) and std["mse"] == 0.0


scores = st.floats(min_value=0, max_value=1, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 5), scores, scores, st.integers(0, 50)), min_size=1, max_size=25
    )
)
def test_properties(spec: list[tuple[int, float, float, int]]) -> None:
    rows: list[ResultRow] = []
    for sid, (team, a1, a2, minutes) in enumerate(spec):
        rows += both(sid, f"t{team}", a1, a2, minutes=minutes)
    b = board(rows)
    shuffled = rows[:]
    random.Random(0).shuffle(shuffled)
    # Order of the input never matters.
    assert [(e.rank, e.team, e.score) for e in board(shuffled).entries] == [
        (e.rank, e.team, e.score) for e in b.entries
    ]
    # One entry per team; ranks are 1-based, non-decreasing; scores non-increasing.
    assert len(b.entries) == len({t for t, *_ in spec})
    ranks = [e.rank for e in b.entries]
    assert ranks[0] == 1 and ranks == sorted(ranks)  # type: ignore[type-var]
    got = [e.score for e in b.entries]
    assert all(x >= y - 1e-12 for x, y in itertools.pairwise(got))  # type: ignore[operator]
    # A team's score is the mean of its best per-task scores.
    for e in b.entries:
        mine = [r for r in rows if r.team == e.team]
        best = [max(r.mean["accuracy"] for r in mine if r.task == t) for t in TASKS]
        assert e.score == pytest.approx(sum(best) / 2)
