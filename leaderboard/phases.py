"""Phases: which tasks' test scores a viewer may see, and when hidden tests are revealed.

A task's test is public, or hidden until a reveal time (``TaskSpec.hidden`` / ``reveal_at``,
or a server setting that overrides it). Hidden scores are computed and stored as usual but
exist only for organizers until the reveal; public boards rank on the public tasks::

    tasks = visible_tasks(spec.tasks, now=utcnow(), organizer=False)
    phase_of(spec.task("test4"), now=utcnow())   # Phase(state="hidden", reveal_at=...)

A hidden task without any reveal time stays hidden until one is configured.

Final picks (:mod:`leaderboard.picks`) may change while a dataset's hidden tests are all still
hidden, and freeze at the first reveal::

    window = pick_window(spec.tasks, now=utcnow())    # PickWindow(tasks=("test4",), ...)
    window.open, window.closes_at
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol

PhaseState = Literal["public", "hidden", "revealed"]


class TaskLike(Protocol):
    """What phases need from a task spec (``harness.specs.TaskSpec`` fits)."""

    @property
    def name(self) -> str: ...
    @property
    def hidden(self) -> bool: ...
    @property
    def reveal_at(self) -> str | None: ...


@dataclass(frozen=True)
class Phase:
    task: str
    state: PhaseState
    reveal_at: datetime | None = None

    @property
    def public(self) -> bool:
        return self.state != "hidden"


def utcnow() -> datetime:
    return datetime.now(UTC)


def parse_time(value: str | datetime | None) -> datetime | None:
    """An aware UTC datetime from ISO text or a datetime; naive values are taken as UTC."""
    if value is None:
        return None
    dt = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def phase_of(
    task: TaskLike,
    *,
    now: datetime,
    reveal_overrides: Mapping[str, str | datetime] | None = None,
) -> Phase:
    """The phase of one task at ``now`` (an override from server settings wins over the spec)."""
    if not task.hidden:
        return Phase(task.name, "public")
    override = (reveal_overrides or {}).get(task.name)
    reveal = parse_time(override if override is not None else task.reveal_at)
    if reveal is not None and parse_time(now) >= reveal:  # type: ignore[operator]
        return Phase(task.name, "revealed", reveal)
    return Phase(task.name, "hidden", reveal)


def visible_tasks(
    tasks: Iterable[TaskLike],
    *,
    now: datetime,
    organizer: bool = False,
    reveal_overrides: Mapping[str, str | datetime] | None = None,
) -> tuple[str, ...]:
    """Names of the tasks whose scores this viewer may see, in spec order."""
    return tuple(
        t.name
        for t in tasks
        if organizer or phase_of(t, now=now, reveal_overrides=reveal_overrides).public
    )


@dataclass(frozen=True)
class PickWindow:
    """When a dataset's final picks may change.

    ``tasks`` are its hidden tasks (the picks choose what counts on them); picks are ``open``
    while there is at least one and none has been revealed, and freeze at ``closes_at``, the
    earliest reveal time among them (None while no reveal time is configured).
    """

    tasks: tuple[str, ...]
    closes_at: datetime | None
    open: bool


def pick_window(
    tasks: Iterable[TaskLike],
    *,
    now: datetime,
    reveal_overrides: Mapping[str, str | datetime] | None = None,
) -> PickWindow:
    """The pick window of a dataset with these tasks at ``now``."""
    phases = [phase_of(t, now=now, reveal_overrides=reveal_overrides) for t in tasks if t.hidden]
    times = [p.reveal_at for p in phases if p.reveal_at is not None]
    return PickWindow(
        tasks=tuple(p.task for p in phases),
        closes_at=min(times) if times else None,
        open=bool(phases) and all(p.state == "hidden" for p in phases),
    )
