"""The train-on-query oracle: per task, the recipe trains on the query split only."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from harness.cli.main import main
from harness.datasets import Dataset
from harness.recipes.oracle import evaluate_oracle, oracle_recipe, query_view
from harness.runner import evaluate_subset
from harness.specs import RecipeSpec
from harness.validation import subset_sha256
from submissions.errors import ConfigError
from submissions.schemas import EvalResult


def _probe(shipped_recipes: dict[str, RecipeSpec]) -> RecipeSpec:
    return shipped_recipes["linear_probe"]


def test_one_result_per_task_trained_on_the_query_split(
    tiny_dataset: Dataset, shipped_recipes: dict[str, RecipeSpec]
) -> None:
    results = evaluate_oracle(ds=tiny_dataset, recipe=_probe(shipped_recipes))
    assert [r.task for r in results] == ["test1", "test2"]
    for r, task in zip(results, tiny_dataset.spec.tasks, strict=True):
        assert r.subset_size == tiny_dataset.split_size(task.query)
        assert r.recipe == "linear_probe" and r.dataset == "tiny"
        assert [t.task for t in r.tasks] == [task.name]
        assert r.tasks[0].test_size == tiny_dataset.split_size(task.test)
        assert r.fraction == min(tiny_dataset.spec.fractions)
        assert r.tasks[0].mean["accuracy"] > 0.8  # chance is 1/3 (test1) or 1/2 (test2)


def test_the_oracle_is_the_recipe_on_the_query_rows(
    tiny_dataset: Dataset, shipped_recipes: dict[str, RecipeSpec]
) -> None:
    """Same numbers as evaluating the query split as if it were a pool subset."""
    task = tiny_dataset.spec.task("test1")
    view = query_view(tiny_dataset, task)
    assert view.pool_size == tiny_dataset.split_size("val1")
    rows = np.arange(view.pool_size)
    direct = evaluate_subset(
        ds=view,
        recipe=_probe(shipped_recipes),
        pool_rows=rows,
        subset_sha256=subset_sha256(rows),
        fraction=0.1,
        task="test1",
    )
    oracle = evaluate_oracle(ds=tiny_dataset, recipe=_probe(shipped_recipes), tasks=["test1"])
    assert oracle[0].tasks[0].seeds == direct.tasks[0].seeds


def test_oracle_kind_ignores_the_subset(
    tiny_dataset: Dataset, shipped_recipes: dict[str, RecipeSpec]
) -> None:
    recipe = oracle_recipe(_probe(shipped_recipes))
    assert recipe.kind == "oracle" and recipe.name == "oracle_linear_probe"
    shipped = shipped_recipes["oracle_linear_probe"]
    assert shipped.params == recipe.params  # the shipped reference = the probe's own params
    scores = []
    for rows in (np.arange(0, 30), np.arange(100, 160)):
        res = evaluate_subset(
            ds=tiny_dataset,
            recipe=shipped,
            pool_rows=rows,
            subset_sha256=subset_sha256(rows),
            fraction=0.1,
            task=None,
        )
        scores.append([t.mean for t in res.tasks])
    assert scores[0] == scores[1]
    expected = evaluate_oracle(ds=tiny_dataset, recipe=shipped)
    assert scores[0] == [r.tasks[0].mean for r in expected]


def test_an_oracle_cannot_wrap_an_oracle_or_an_unknown_kind() -> None:
    from harness.recipes.oracle import OracleParams

    with pytest.raises(ValueError, match="cannot itself be an oracle"):
        OracleParams(kind="oracle")
    with pytest.raises(Exception, match="Did you mean 'linear_probe'"):
        OracleParams(kind="linear_prob")


def test_cli_on_the_demo_beats_chance_and_marks_rows_oracle(
    demo_dataset: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TDC_DATA_ROOT", str(demo_dataset.dir.root.parent))
    out = tmp_path / "oracle.json"
    assert main(["oracle", "--dataset", "demo", "--out", str(out)]) == 0
    payload = json.loads(out.read_text())
    assert payload["kind"] == "oracle"
    results = [EvalResult.model_validate(r) for r in payload["results"]]
    assert [r.task for r in results] == demo_dataset.spec.task_names()
    for r in results:
        assert r.recipe == demo_dataset.spec.default_recipe
        assert r.tasks[0].mean["accuracy"] > 0.3  # ten classes: chance 0.1
    assert main(["oracle", "--dataset", "demo", "--fraction", "0.3"]) == 2


def test_oracle_rows_are_references_on_the_board(
    tiny_dataset: Dataset, shipped_recipes: dict[str, RecipeSpec]
) -> None:
    from leaderboard.ranking import BoardKey, RankingRule, rank_dataset_board
    from leaderboard.rows import ResultRow

    results = evaluate_oracle(ds=tiny_dataset, recipe=_probe(shipped_recipes), fraction=0.1)
    now = datetime.now(UTC)
    rows = [
        ResultRow(
            submission_id=i,
            team="organizers",
            dataset="tiny",
            fraction=r.fraction,
            recipe=r.recipe,
            recipe_version="1",
            task=t.task,
            created_at=now,
            mean=t.mean,
            std=t.std,
            kind="oracle",
            method="oracle",
        )
        for i, r in enumerate(results)
        for t in r.tasks
    ]
    rows.append(
        ResultRow(
            submission_id=9,
            team="owls",
            dataset="tiny",
            fraction=0.1,
            recipe="linear_probe",
            recipe_version="1",
            task="test1",
            created_at=now,
            mean={"accuracy": 0.5, "balanced_accuracy": 0.5},
        )
    )
    key = BoardKey(dataset="tiny", fraction=0.1, recipe="linear_probe", recipe_version="1")
    board = rank_dataset_board(
        rows, key=key, tasks=("test1", "test2"), rule=RankingRule.of(tiny_dataset.spec)
    )
    oracle = [e for e in board.entries if e.kind == "oracle"]
    assert len(oracle) == 1 and oracle[0].rank is None and oracle[0].reference
    assert oracle[0].complete


def test_unknown_task_fails_with_suggestion(
    tiny_dataset: Dataset, shipped_recipes: dict[str, RecipeSpec]
) -> None:
    with pytest.raises(Exception, match="test1"):
        evaluate_oracle(ds=tiny_dataset, recipe=_probe(shipped_recipes), tasks=["tset1"])
    with pytest.raises(ConfigError):
        from harness.recipes.oracle import PerTaskPredictor

        PerTaskPredictor({}).predict("test1")
