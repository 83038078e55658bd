"""Declared metric ranges: finite values inside them pass, anything else is named with where
it is; every metric the harness computes or a dataset ranks by is declared."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.metrics import classification_scores, regression_scores
from harness.recipes.detection import detection_scores
from harness.recipes.reid import reid_scores
from harness.settings import default_configs_dir
from harness.specs import load_benchmark
from submissions.metric_ranges import (
    METRIC_RANGES,
    NON_NEGATIVE,
    UNIT,
    Range,
    metric_problems,
    value_problem,
)
from submissions.schemas import EvalResult, SeedResult, TaskResult
from tests.server.helpers import make_result


def test_ranges_print_as_intervals() -> None:
    assert (str(UNIT), str(NON_NEGATIVE)) == ("[0, 1]", "[0, inf)")
    assert 0.0 in UNIT and 1.0 in UNIT and 1.0000001 not in UNIT and -1e-9 not in UNIT
    assert UNIT.spread == UNIT and Range(-2.0, 2.0).spread == Range(0.0, 4.0)


@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        ("accuracy", math.nan, "accuracy is nan, not a finite number"),
        ("accuracy", math.inf, "accuracy is inf, not a finite number"),
        ("mse", -math.inf, "mse is -inf, not a finite number"),
        ("accuracy", 1e9, "accuracy is 1e+09, outside [0, 1]"),
        ("mae", -0.25, "mae is -0.25, outside [0, inf)"),
        ("someday_metric", math.nan, "someday_metric is nan, not a finite number"),
    ],
)
def test_bad_values_are_named(name: str, value: float, said: str) -> None:
    assert value_problem(name, value, METRIC_RANGES.get(name, Range(-math.inf))) == said


def _with(result: EvalResult, **task_changes: object) -> EvalResult:
    task = result.tasks[0].model_copy(update=task_changes)
    return result.model_copy(update={"tasks": [task, *result.tasks[1:]]})


def test_a_result_is_checked_everywhere_it_holds_values() -> None:
    good = make_result(sha256="0" * 64, acc=1.0)
    assert metric_problems(good) == []
    seed = SeedResult(seed=4, metrics={"accuracy": 0.5}, per_class={"cat": 1.2},
                      query_metrics={"balanced_accuracy": math.nan})  # fmt: skip
    bad = _with(good, seeds=[seed], std={"accuracy": 2.0}, query_mean={"mse": -1.0})
    assert metric_problems(bad) == [
        "task test1 std: accuracy is 2, outside [0, 1]",
        "task test1 query_mean: mse is -1, outside [0, inf)",
        "task test1 seed 4 query_metrics: balanced_accuracy is nan, not a finite number",
        "task test1 seed 4 per_class: cat is 1.2, outside [0, 1]",
    ]
    huge_mse = _with(good, mean={"mse": 1e9}, std={"mse": 1e9})  # errors have no upper bound
    assert metric_problems(huge_mse) == []
    many = _with(good, seeds=[seed.model_copy(update={"per_class": dict.fromkeys("abcde", 7.0)})])
    assert metric_problems(many, limit=3) == [
        "task test1 seed 4 query_metrics: balanced_accuracy is nan, not a finite number",
        "task test1 seed 4 per_class: a is 7, outside [0, 1]",
        "task test1 seed 4 per_class: b is 7, outside [0, 1]",
        "and 3 more",
    ]


def test_every_ranked_metric_of_the_shipped_configs_is_declared() -> None:
    specs = load_benchmark(default_configs_dir())
    names = {n: (d.primary_metric, d.secondary_metric) for n, d in specs.datasets.items()}
    undeclared = {n: m for n, ms in names.items() for m in ms if m and m not in METRIC_RANGES}
    assert undeclared == {}


def test_every_metric_the_harness_computes_is_declared_and_in_range() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 50)
    truth = [np.array([[0, 0.5, 0.5, 0.2, 0.2]]), np.array([[1, 0.3, 0.3, 0.1, 0.1]])]
    preds = [np.array([[0.4, 0.4, 0.6, 0.6, 0.9, 0]]), np.zeros((0, 6))]
    emb = rng.normal(size=(8, 4))
    ids = np.repeat(np.arange(4), 2)
    computed = [
        classification_scores(y_true=labels, y_pred=rng.integers(0, 4, 50), n_classes=4),
        regression_scores(y_true=rng.normal(size=20), y_pred=rng.normal(size=20)),
        detection_scores(truth=truth, preds=preds),
        reid_scores(query=emb[::2], query_ids=ids[::2], gallery=emb[1::2], gallery_ids=ids[1::2]),
    ]
    for scores in computed:
        assert set(scores.metrics) <= set(METRIC_RANGES), scores.metrics
        seed = SeedResult(seed=0, metrics=scores.metrics,
                          per_class={str(k): v for k, v in scores.per_class.items()})  # fmt: skip
        task = TaskResult(task="t", test_size=1, seeds=[seed], mean=scores.metrics,
                          std=dict.fromkeys(scores.metrics, 0.0))  # fmt: skip
        result = make_result(sha256="0" * 64).model_copy(update={"tasks": [task]})
        assert metric_problems(result) == []
