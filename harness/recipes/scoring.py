"""Scorers by dataset task type: a trained predictor + a test split -> metrics. No torch.

    scores = get_scorer(ds.spec.task_type)(ctx=ctx, split="test1", predictor=predictor)

Classification and regression are registered here; a task type with its own metrics
(detection, re-identification) registers a scorer from its recipe module::

    @SCORERS.register("detection")
    def score_detection(*, ctx: TrainContext, split: str, predictor: Predictor) -> Scores: ...
"""

from __future__ import annotations

from collections.abc import Callable

from harness.metrics import Scores, classification_scores, regression_scores
from harness.recipes.base import Predictor, TrainContext
from harness.registry import Registry

Scorer = Callable[..., Scores]  # (*, ctx, split, predictor) -> Scores

SCORERS: Registry[Scorer] = Registry("scorer for task type")


def get_scorer(task_type: str) -> Scorer:
    from harness.recipes.registry import load_kinds

    load_kinds()  # kind modules may register scorers of their task types
    return SCORERS.get(task_type)


@SCORERS.register("classification")
def score_classification(*, ctx: TrainContext, split: str, predictor: Predictor) -> Scores:
    """Every example of the split, over every class of the dataset."""
    if ctx.labels is None:
        raise ValueError("classification scoring needs the dataset's label space")
    return classification_scores(
        y_true=ctx.targets(split), y_pred=predictor.predict(split), n_classes=len(ctx.labels)
    )


@SCORERS.register("regression")
def score_regression(*, ctx: TrainContext, split: str, predictor: Predictor) -> Scores:
    return regression_scores(y_true=ctx.targets(split), y_pred=predictor.predict(split))
