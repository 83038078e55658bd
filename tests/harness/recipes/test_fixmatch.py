"""FixMatch: the loss, the unlabeled set, and an end-to-end run on the demo (CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.datasets import Dataset
from harness.recipes.base import LabelSpace, TrainContext
from harness.recipes.fixmatch import fixmatch_loss, unlabeled_paths
from harness.recipes.params import FixMatchParams
from harness.recipes.registry import check_recipe_params
from harness.runner import evaluate_subset
from harness.specs import RecipeSpec
from harness.validation import subset_sha256


def test_loss_masks_unconfident_pseudo_labels() -> None:
    torch.manual_seed(0)
    labeled, targets = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    weak = torch.tensor([[9.0, 0.0, 0.0], [0.1, 0.0, 0.0]])  # confident / not confident
    strong = torch.randn(2, 3)
    ce = torch.nn.functional.cross_entropy
    loss, rate = fixmatch_loss(
        logits_labeled=labeled,
        targets=targets,
        logits_weak=weak,
        logits_strong=strong,
        threshold=0.95,
        lambda_u=2.0,
    )
    expected = ce(labeled, targets) + 2.0 * ce(strong[:1], torch.tensor([0])) / 2
    assert rate == 0.5
    assert torch.allclose(loss, expected)
    none, rate = fixmatch_loss(
        logits_labeled=labeled,
        targets=targets,
        logits_weak=weak,
        logits_strong=strong,
        threshold=1.0,
        lambda_u=2.0,
    )
    assert rate == 0.0 and torch.allclose(none, ce(labeled, targets))


def _ctx(ds: Dataset, rows: np.ndarray, params: FixMatchParams) -> TrainContext:
    recipe = RecipeSpec(name="fm", kind="fixmatch", task_types=("classification",))
    return TrainContext(
        ds=ds,
        recipe=recipe,
        params=params,
        rows=rows,
        labels=LabelSpace.of(ds),
        tasks=ds.spec.tasks,
        device="cpu",
        weights_dir=ds.dir.root,
    )


def test_unlabeled_set_is_the_rest_of_the_pool_or_the_query_images(tiny_dataset: Dataset) -> None:
    rows = np.arange(0, 300, 3)
    ctx = _ctx(tiny_dataset, rows, FixMatchParams(backbone="test_resnet"))
    pool = [tiny_dataset.image_root / f for f in tiny_dataset.split("train")["filename"]]
    rest = unlabeled_paths(ctx, "pool")
    assert rest == [p for i, p in enumerate(pool) if i % 3]
    query = unlabeled_paths(ctx, "query")
    assert len(query) == tiny_dataset.split_size("val1") + tiny_dataset.split_size("val2")
    assert len(unlabeled_paths(ctx, "pool_and_query")) == len(rest) + len(query)


def test_shipped_fixmatch_recipes_extend_finetune(shipped_recipes: dict[str, RecipeSpec]) -> None:
    p = check_recipe_params(shipped_recipes["fixmatch_resnet50"])
    assert isinstance(p, FixMatchParams) and p.threshold == 0.95 and p.unlabeled == "pool"
    assert p.backbone == "resnet50" and p.patience == 5


@pytest.mark.slow
def test_demo_end_to_end_beats_chance(
    demo_dataset: Dataset, shipped_recipes: dict[str, RecipeSpec], caplog: pytest.LogCaptureFixture
) -> None:
    recipe = shipped_recipes["fixmatch_demo"]
    rows = np.sort(np.random.default_rng(0).choice(demo_dataset.pool_size, 215, replace=False))
    with caplog.at_level("INFO", logger="harness.recipes.fixmatch"):
        result = evaluate_subset(
            ds=demo_dataset,
            recipe=recipe,
            pool_rows=rows,
            subset_sha256=subset_sha256(rows),
            fraction=0.05,
            task=None,
        )
    assert result.subset_size == 215 and result.recipe == "fixmatch_demo"
    accuracy = []
    for t in result.tasks:
        assert t.test_size == demo_dataset.split_size(demo_dataset.spec.task(t.task).test)
        assert t.mean["accuracy"] > 0.15, t  # ten classes: chance 0.1
        accuracy.append(t.mean["accuracy"])
    assert np.mean(accuracy) > 0.3
    rates = [float(r.message.rsplit(" ", 1)[1]) for r in caplog.records if "mask rate" in r.message]
    assert rates and max(rates) > 0.02  # unlabeled images passed the threshold and were used
