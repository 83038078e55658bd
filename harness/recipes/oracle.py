"""The train-on-query oracle: a recipe trained on a task's own query set, scored on its test set.

    results = evaluate_oracle(ds=ds, recipe=specs.recipe("linear_probe"))   # one per task
    results[0].task, results[0].subset_size      # "test1", size of the query split val1

    recipes:
      oracle_linear_probe:
        kind: oracle
        task_types: [classification]
        params: {kind: linear_probe, params: {C: 0.75, max_iter: 1000}}

The oracle is a reference, never a participant: it shows how well the fixed recipe does
when its training data is drawn from the deployment distribution itself. For each task, the
base recipe trains on *every* row of the task's query split and is scored on the whole test
split, through the same runner and scorers as a submission (:func:`query_view` presents the
query split as the training pool, so every recipe kind runs unchanged).

Two ways in:

- :func:`evaluate_oracle` / ``tdc-harness oracle``: one :class:`EvalResult` per task, with
  ``recipe`` = the base recipe (so the row belongs on that recipe's boards) and
  ``subset_size`` = the query size; the CLI writes them under ``{"kind": "oracle"}``.
- the ``oracle`` recipe kind (``params: {kind, params}`` = the base recipe's kind and params,
  so its config hash changes when they do): evaluated like any recipe, it ignores the
  submitted subset and trains one model per evaluated task on that task's query split.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import Field, model_validator

from harness.recipes.base import Params, TrainContext
from harness.recipes.registry import get_kind, register_kind
from harness.specs import RecipeSpec, TaskSpec
from submissions.errors import ConfigError

if TYPE_CHECKING:
    from harness.datasets import Dataset
    from submissions.schemas import EvalResult

log = logging.getLogger(__name__)


class OracleParams(Params):
    kind: str = Field(description="the base recipe's kind")
    params: dict[str, Any] = Field(default_factory=dict, description="the base recipe's params")

    @model_validator(mode="after")
    def _base_valid(self) -> OracleParams:
        if self.kind == "oracle":
            raise ValueError("an oracle's base recipe cannot itself be an oracle")
        get_kind(self.kind).params.model_validate(self.params)  # unknown kind / bad params fail
        return self


def query_view(ds: Dataset, task: TaskSpec) -> Dataset:
    """The dataset with ``task``'s query split in the pool's place (same files, same tasks)."""
    return ds.with_spec(ds.spec.model_copy(update={"pool": task.query}))


def base_recipe(recipe: RecipeSpec) -> RecipeSpec:
    """The recipe an oracle trains with: ``recipe`` itself, or an oracle recipe's base."""
    if recipe.kind != "oracle":
        return recipe
    p = OracleParams.model_validate(recipe.params)
    return recipe.model_copy(update={"name": recipe.name, "kind": p.kind, "params": p.params})


def oracle_recipe(recipe: RecipeSpec) -> RecipeSpec:
    """``recipe`` as an oracle-kind recipe (unchanged if it already is one)."""
    if recipe.kind == "oracle":
        return recipe
    params = {"kind": recipe.kind, "params": dict(recipe.params)}
    return recipe.model_copy(
        update={"name": f"oracle_{recipe.name}", "kind": "oracle", "params": params}
    )


def evaluate_oracle(
    *,
    ds: Dataset,
    recipe: RecipeSpec,
    tasks: Sequence[str] | None = None,
    fraction: float | None = None,
    seeds: Sequence[int] | None = None,
    weights_dir: Path | None = None,
) -> list[EvalResult]:
    """One EvalResult per task (all tasks by default): the base recipe trained on the task's
    query split, scored on its test split. ``fraction`` labels the board the row is a
    reference on (default: the dataset's smallest fraction; the score does not depend on it)."""
    from harness.runner import evaluate_subset
    from harness.validation import subset_sha256

    base = base_recipe(recipe)
    chosen = [ds.spec.task(t) for t in tasks] if tasks else list(ds.spec.tasks)
    out = []
    for task in chosen:
        view = query_view(ds, task)
        rows = np.arange(view.pool_size, dtype=np.int64)
        log.info("oracle %s/%s: training %s on %s", ds.spec.name, task.name, base.name, task.query)
        out.append(
            evaluate_subset(
                ds=view,
                recipe=base,
                pool_rows=rows,
                subset_sha256=subset_sha256(rows),
                fraction=fraction if fraction is not None else min(ds.spec.fractions),
                task=task.name,
                seeds=seeds,
                weights_dir=weights_dir,
            )
        )
    return out


@dataclasses.dataclass(frozen=True)
class PerTaskPredictor:
    """Answers each test split with the model trained on its own task's query split."""

    by_test_split: dict[str, Any]

    def predict(self, split: str) -> Any:
        try:
            predictor = self.by_test_split[split]
        except KeyError:
            raise ConfigError(f"the oracle trained no model for test split {split!r}") from None
        return predictor.predict(split)


@register_kind(
    "oracle",
    params=OracleParams,
    task_types=("classification", "regression", "detection", "reid"),
    libraries=("numpy", "torch", "torchvision", "timm", "pillow", "ultralytics"),
)
def train(*, ctx: TrainContext, seed: int) -> PerTaskPredictor:
    """Ignores the subset: one base-recipe model per evaluated task, on its query split."""
    p: OracleParams = ctx.params
    kind = get_kind(p.kind)
    params = kind.params.model_validate(p.params)
    by_split: dict[str, Any] = {}
    for task in ctx.tasks:
        view = query_view(ctx.ds, task)
        # Same label space as the outer context, so predictions index the classes it scores.
        inner = dataclasses.replace(
            ctx,
            ds=view,
            params=params,
            rows=np.arange(view.pool_size, dtype=np.int64),
            tasks=(task,),
        )
        # The query split is the model's own training data: its score there is the fit.
        by_split[task.test] = by_split[task.query] = kind.train(ctx=inner, seed=seed)
    return PerTaskPredictor(by_split)
