"""Sample rows, boards and page data for the leaderboard tests (no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from leaderboard.phases import Phase
from leaderboard.ranking import Board, BoardKey, RankingRule, rank_dataset_board
from leaderboard.rows import ResultRow
from leaderboard.views import DatasetInfo, TaskInfo

T0 = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
TASKS = ("test1", "test2", "test3")
RULE = RankingRule(primary="accuracy", secondary="balanced_accuracy")
FRACTIONS = (0.05, 0.1, 0.25)


def make_rows() -> list[ResultRow]:
    """Three teams, two baselines and an oracle at three fractions; team 'partial' lacks test3."""
    teams = {"owls": 0.80, "<script>alert(1)</script>": 0.70, "=cmd|calc": 0.60, "partial": 0.9}
    refs = {
        ("baseline", "random_filter"): 0.5,
        ("baseline", "image_alignment"): 0.75,
        ("oracle", "oracle"): 0.95,
    }
    rows: list[ResultRow] = []
    sid = 0
    for fi, fraction in enumerate(FRACTIONS):
        entrants: list[tuple[str, str, str | None, float]]
        entrants = [(t, "submission", None, v) for t, v in teams.items()]
        entrants += [("organizers", k, m, v) for (k, m), v in refs.items()]
        for team, kind, method, base in entrants:
            sid += 1
            for ti, task in enumerate(TASKS):
                if team == "partial" and task == "test3":
                    continue
                acc = base + 0.03 * fi - 0.01 * ti
                rows.append(
                    ResultRow(
                        submission_id=sid,
                        team=team,
                        dataset="demo",
                        fraction=fraction,
                        recipe="linear_probe",
                        recipe_version="1",
                        task=task,
                        created_at=T0 + timedelta(hours=sid),
                        mean={"accuracy": acc, "balanced_accuracy": acc - 0.02},
                        std={"accuracy": 0.01 * (ti + 1)},
                        n_seeds=3,
                        kind=kind,  # type: ignore[arg-type]
                        method=method,
                        subset_size=int(430 * fraction / 0.1) - ti,
                    )
                )
    return rows


def make_boards(rows: list[ResultRow]) -> dict[float, Board]:
    return {
        f: rank_dataset_board(
            rows,
            key=BoardKey(dataset="demo", fraction=f, recipe="linear_probe", recipe_version="1"),
            tasks=TASKS,
            rule=RULE,
        )
        for f in FRACTIONS
    }


def make_info(boards: dict[float, Board]) -> DatasetInfo:
    tasks = (
        *tuple(TaskInfo(t, f"task {t}", Phase(t, "public")) for t in TASKS),
        TaskInfo("test4", "hidden one", Phase("test4", "hidden", T0 + timedelta(days=30))),
    )
    return DatasetInfo(
        name="demo",
        task_type="classification",
        description="Handwritten digits.",
        pool_size=4300,
        fractions=FRACTIONS,
        tasks=tasks,
        primary_metric="accuracy",
        secondary_metric="balanced_accuracy",
        higher_is_better=True,
        default_recipe="linear_probe",
        recipe_version="1",
        n_entries=21,
        leaders={f: b.leader() for f, b in boards.items()},
    )
