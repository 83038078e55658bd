"""Phases: hidden tests stay hidden for the public until their reveal time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from harness.specs import TaskSpec
from leaderboard.phases import parse_time, phase_of, visible_tasks

NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)
TASKS = (
    TaskSpec(name="test1", query="val1", test="test1"),
    TaskSpec(name="test2", query="val2", test="test2", hidden=True),
    TaskSpec(name="test3", query="val3", test="test3", hidden=True, reveal_at="2025-06-01T11:00"),
    TaskSpec(name="test4", query="val4", test="test4", hidden=True, reveal_at="2025-07-01T00:00Z"),
)


def test_public_sees_public_and_revealed_tasks_only() -> None:
    assert visible_tasks(TASKS, now=NOW) == ("test1", "test3")
    assert visible_tasks(TASKS, now=NOW, organizer=True) == ("test1", "test2", "test3", "test4")


def test_reveal_time_passes() -> None:
    later = datetime(2025, 7, 1, tzinfo=UTC)
    assert visible_tasks(TASKS, now=later - timedelta(seconds=1)) == ("test1", "test3")
    assert visible_tasks(TASKS, now=later) == ("test1", "test3", "test4")


def test_setting_overrides_spec_reveal_time() -> None:
    over: dict[str, str | datetime] = {
        "test2": "2025-05-01T00:00:00+00:00",
        "test3": datetime(2030, 1, 1, tzinfo=UTC),
    }
    assert visible_tasks(TASKS, now=NOW, reveal_overrides=over) == ("test1", "test2")
    phase = phase_of(TASKS[2], now=NOW, reveal_overrides=over)
    assert phase.state == "hidden" and phase.reveal_at == datetime(2030, 1, 1, tzinfo=UTC)


def test_naive_times_are_utc() -> None:
    assert parse_time("2025-06-01T11:00") == datetime(2025, 6, 1, 11, tzinfo=UTC)
    assert phase_of(TASKS[2], now=datetime(2025, 6, 1, 10, 59)).state == "hidden"
