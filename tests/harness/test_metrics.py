"""Metrics agree with scikit-learn and never drop a test example."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from harness.metrics import classification_scores, confusion, mean_std, regression_scores


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
@pytest.mark.parametrize("seed", range(5))
def test_classification_scores_match_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_classes = 7
    y = rng.integers(0, n_classes - 1, 200)  # class 6 never in the test labels
    p = np.where(rng.random(200) < 0.6, y, rng.integers(0, n_classes, 200))
    s = classification_scores(y_true=y, y_pred=p, n_classes=n_classes)
    assert s.metrics["accuracy"] == pytest.approx(skm.accuracy_score(y, p))
    assert s.metrics["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, p))
    assert s.metrics["macro_f1"] == pytest.approx(
        skm.f1_score(y, p, average="macro", zero_division=0)
    )
    recall = skm.recall_score(y, p, average=None, labels=np.unique(y), zero_division=0)
    assert s.per_class == pytest.approx(dict(zip(np.unique(y).tolist(), recall, strict=True)))


def test_a_class_never_predicted_counts_as_wrong_everywhere() -> None:
    # The model only knows classes 0 and 1; class 2 makes up a third of the test split.
    y = np.array([0, 0, 1, 1, 2, 2])
    p = np.array([0, 0, 1, 1, 0, 1])
    s = classification_scores(y_true=y, y_pred=p, n_classes=3)
    assert s.metrics["accuracy"] == pytest.approx(4 / 6)
    assert s.metrics["balanced_accuracy"] == pytest.approx(2 / 3)
    assert s.per_class == {0: 1.0, 1: 1.0, 2: 0.0}
    assert confusion(y_true=y, y_pred=p, n_classes=3).sum() == len(y)


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="predictions"):
        classification_scores(y_true=np.zeros(3, int), y_pred=np.zeros(2, int), n_classes=2)
    with pytest.raises(ValueError, match="outside"):
        classification_scores(y_true=np.zeros(2, int), y_pred=np.array([0, 5]), n_classes=2)
    with pytest.raises(ValueError, match="non-finite"):
        regression_scores(y_true=np.zeros(2), y_pred=np.array([0.0, np.nan]))


def test_regression_scores_match_sklearn() -> None:
    rng = np.random.default_rng(0)
    t, p = rng.normal(size=50), rng.normal(size=50)
    s = regression_scores(y_true=t, y_pred=p)
    assert s.metrics["mse"] == pytest.approx(skm.mean_squared_error(t, p))
    assert s.metrics["mae"] == pytest.approx(skm.mean_absolute_error(t, p))


def test_mean_and_sample_std_over_seeds() -> None:
    mean, std = mean_std([{"a": 1.0}, {"a": 2.0}, {"a": 3.0}])
    assert mean == {"a": 2.0} and std == {"a": pytest.approx(1.0)}
    assert mean_std([{"a": 0.5}]) == ({"a": 0.5}, {"a": 0.0})
