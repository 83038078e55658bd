"""Test-set metrics. Every test example counts; classes are scored over the whole dataset.

    s = classification_scores(y_true=y, y_pred=p, n_classes=10)
    s.metrics      # {"accuracy": ..., "balanced_accuracy": ..., "macro_f1": ...}
    s.per_class    # {class index: accuracy} for every class with test examples
    regression_scores(y_true=t, y_pred=v).metrics       # {"mse": ..., "mae": ...}

Labels are class *indices* into the dataset's class list (harness.recipes.base.LabelSpace),
so a class the subset never contained is still a class here: its test examples can only be
predicted wrong, and they stay in every denominator. Nothing is ever dropped.

Definitions (as scikit-learn computes them, checked in tests/harness/test_metrics.py):

- ``accuracy``: correct / test size.
- ``balanced_accuracy``: mean over classes present in the test split of per-class recall.
- ``macro_f1``: mean F1 over classes present in the test split or predicted (a class that is
  predicted but absent from the test split has F1 = 0 and lowers the mean).
- ``per_class``: recall of each class present in the test split; a class without test
  examples has no accuracy to report (0/0) and is omitted.
- ``mse`` / ``mae``: mean squared / absolute error over all test examples.

Scores also carry every example's outcome (``correct``; ``sq_err`` and ``abs_err``) in the
split's row order, which the runner stores with each seed's result for resampling.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from submissions.outcomes import OutcomeKind

if TYPE_CHECKING:
    from submissions.schemas import SeedResult


@dataclass(frozen=True)
class Scores:
    """Metrics of one model on one test split, and every example's outcome in split row
    order: ``outcome_kind`` names the arrays (``submissions.outcomes.KINDS``); None: none."""

    metrics: dict[str, float]
    per_class: dict[int, float] = field(default_factory=dict)
    outcome_kind: OutcomeKind | None = None
    outcomes: dict[str, npt.NDArray[np.generic]] = field(default_factory=dict)


def confusion(
    *, y_true: npt.NDArray[np.int64], y_pred: npt.NDArray[np.int64], n_classes: int
) -> npt.NDArray[np.int64]:
    """``n_classes x n_classes`` counts, rows = true class, columns = predicted class."""
    y_true, y_pred = _check_labels(y_true, y_pred, n_classes)
    flat = np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes)
    return flat.reshape(n_classes, n_classes).astype(np.int64)


def classification_scores(
    *, y_true: npt.NDArray[np.int64], y_pred: npt.NDArray[np.int64], n_classes: int
) -> Scores:
    """Accuracy, balanced accuracy, macro-F1 and per-class accuracy (see module docstring)."""
    cm = confusion(y_true=y_true, y_pred=y_pred, n_classes=n_classes)
    support = cm.sum(1)
    predicted = cm.sum(0)
    tp = np.diag(cm)
    present = support > 0
    recall = np.divide(tp, support, out=np.zeros(n_classes), where=present)
    f1_denominator = support + predicted
    f1 = np.divide(2 * tp, f1_denominator, out=np.zeros(n_classes), where=f1_denominator > 0)
    metrics = {
        "accuracy": float(tp.sum() / max(len(y_true), 1)),
        "balanced_accuracy": float(recall[present].mean()) if present.any() else 0.0,
        "macro_f1": float(f1[f1_denominator > 0].mean()) if present.any() else 0.0,
    }
    per_class = {int(c): float(recall[c]) for c in np.flatnonzero(present)}
    correct = _check_labels(y_true, y_pred, n_classes)
    return Scores(metrics=metrics, per_class=per_class, outcome_kind="correct",
                  outcomes={"correct": correct[0] == correct[1]})  # fmt: skip


def regression_scores(
    *, y_true: npt.NDArray[np.floating], y_pred: npt.NDArray[np.floating]
) -> Scores:
    """Mean squared and mean absolute error over every test example."""
    t = np.asarray(y_true, np.float64).reshape(-1)
    p = np.asarray(y_pred, np.float64).reshape(-1)
    if t.shape != p.shape:
        raise ValueError(f"{len(p)} predictions for {len(t)} test examples")
    if not np.isfinite(p).all():
        raise ValueError("non-finite regression predictions")
    err = p - t
    sq, ab = err**2, np.abs(err)
    return Scores(metrics={"mse": float(np.mean(sq)), "mae": float(np.mean(ab))},
                  outcome_kind="error", outcomes={"sq_err": sq, "abs_err": ab})  # fmt: skip


def mean_std(values: list[dict[str, float]]) -> tuple[dict[str, float], dict[str, float]]:
    """Mean and sample standard deviation (ddof=1; 0 for a single seed) of each metric."""
    keys = sorted(values[0]) if values else []
    arr = {k: np.array([v[k] for v in values], np.float64) for k in keys}
    mean = {k: float(a.mean()) for k, a in arr.items()}
    std = {k: float(a.std(ddof=1)) if len(a) > 1 else 0.0 for k, a in arr.items()}
    return mean, std


def seed_summary(
    seeds: Sequence[SeedResult],
) -> tuple[dict[str, float], dict[str, float], dict[str, float] | None]:
    """Mean and std (:func:`mean_std`) of the seeds' test metrics, and the mean of their
    query-split metrics when every seed has them (else None)."""
    mean, std = mean_std([s.metrics for s in seeds])
    queried = [s.query_metrics for s in seeds if s.query_metrics is not None]
    query_mean = mean_std(queried)[0] if queried and len(queried) == len(seeds) else None
    return mean, std, query_mean


def _check_labels(
    y_true: npt.NDArray[np.int64], y_pred: npt.NDArray[np.int64], n_classes: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    t = np.asarray(y_true).reshape(-1).astype(np.int64)
    p = np.asarray(y_pred).reshape(-1).astype(np.int64)
    if t.shape != p.shape:
        raise ValueError(f"{len(p)} predictions for {len(t)} test examples")
    for name, a in (("true", t), ("predicted", p)):
        if len(a) and (a.min() < 0 or a.max() >= n_classes):
            raise ValueError(f"{name} class index outside [0, {n_classes})")
    return t, p
