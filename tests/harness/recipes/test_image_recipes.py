"""The image recipes (finetune, LoRA, regression) end to end on tiny data, on the CPU.

Each runs the shipped recipe's kind and code path with ``tiny_recipe``'s small settings.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.datasets import Dataset
from harness.recipes.backbones import build_lora, build_timm
from harness.recipes.base import LabelSpace, TrainContext, uid_holdout
from harness.recipes.params import FinetuneParams, LoraParams
from harness.runner import evaluate_subset
from harness.specs import RecipeSpec
from harness.validation import subset_sha256
from submissions.errors import ConfigError, DataNotFound
from submissions.schemas import EvalResult

Recipes = Callable[[str], RecipeSpec]
ROWS = np.r_[0:270:5, 270:300:2]  # 54 rows of source a + 15 of source b, all classes


def run(ds: Dataset, recipe: RecipeSpec, rows: np.ndarray = ROWS, **kw: object) -> EvalResult:
    return evaluate_subset(
        ds=ds, recipe=recipe, pool_rows=rows, subset_sha256=subset_sha256(np.sort(rows)),
        fraction=0.25, task=None, **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def comparable(result: EvalResult) -> str:
    data = json.loads(result.model_dump_json())
    data["manifest"].pop("wall_time_s")
    return json.dumps(data, sort_keys=True)


@pytest.mark.parametrize(
    "name", ["full_finetune_resnet50", "full_finetune_resnet101", "lora_finetune_vit"]
)
def test_classification_recipe_runs_end_to_end(
    name: str, tiny_dataset: Dataset, tiny_recipe: Recipes
) -> None:
    result = run(tiny_dataset, tiny_recipe(name))
    assert result.recipe == name and result.subset_size == len(ROWS) and result.classes_seen == 3
    assert {"timm", "torch"} <= set(result.manifest.libraries)
    for task in result.tasks:
        assert task.test_size == 60
        assert set(task.mean) == {"accuracy", "balanced_accuracy", "macro_f1"}
        assert all(0.0 <= v <= 1.0 for v in task.mean.values())
    if name == "lora_finetune_vit":
        assert "peft" in result.manifest.libraries


def test_regression_recipe_runs_end_to_end(
    regression_dataset: Dataset, tiny_recipe: Recipes
) -> None:
    result = run(regression_dataset, tiny_recipe("regression_resnet50"), seeds=[0, 1])
    assert result.classes_seen is None
    for task in result.tasks:
        assert task.test_size == 60 and [s.seed for s in task.seeds] == [0, 1]
        assert set(task.mean) == {"mse", "mae"} and task.mean["mse"] >= 0
        assert task.seeds[0].metrics != task.seeds[1].metrics  # seeds differ, std is real
        assert task.std["mse"] > 0


def test_same_inputs_give_the_same_json_twice_in_any_order(
    tiny_dataset: Dataset, tiny_recipe: Recipes
) -> None:
    recipe = tiny_recipe("full_finetune_resnet50")
    first = run(tiny_dataset, recipe)
    again = run(tiny_dataset, recipe, rows=ROWS[::-1].copy())
    assert comparable(first) == comparable(again)


def test_different_subsets_of_equal_size_give_different_models(
    tiny_dataset: Dataset, tiny_recipe: Recipes
) -> None:
    from harness.recipes.network import train_network

    recipe = tiny_recipe("full_finetune_resnet50")
    models = []
    for rows in (ROWS, np.r_[1:270:5, 271:300:2]):
        ctx = context(tiny_dataset, recipe)
        ctx = TrainContext(**{**ctx.__dict__, "rows": np.sort(rows)})
        predictor = train_network(ctx=ctx, seed=0, build=build_timm)
        assert predictor.model is not None
        models.append(torch.cat([p.detach().flatten() for p in predictor.model.parameters()]))
    assert not torch.equal(models[0], models[1])  # other rows, other model (order: see above)


def test_a_classification_loss_on_a_regression_dataset_is_refused(
    regression_dataset: Dataset, tiny_recipe: Recipes
) -> None:
    recipe = tiny_recipe("regression_resnet50")
    wrong = recipe.model_copy(update={"params": {**recipe.params, "loss": "cross_entropy"}})
    with pytest.raises(ConfigError, match="loss"):
        run(regression_dataset, wrong)


def test_early_stopping_on_the_holdout_restores_the_best_epoch(
    tiny_dataset: Dataset, tiny_recipe: Recipes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scripted held-out losses: best at epoch 1, patience 2 -> stop after epoch 3, restore 1."""
    from harness.recipes import network

    losses = iter([0.9, 0.5, 0.7, 0.6, 0.1, 0.1])
    snapshots: list[torch.Tensor] = []

    def scripted(self: network._Fit, loader: object) -> float:
        snapshots.append(next(iter(self.model.parameters())).detach().clone())
        return next(losses)

    monkeypatch.setattr(network._Fit, "_val_loss", scripted)
    recipe = tiny_recipe("full_finetune_resnet50")
    params = {**recipe.params, "epochs": 6, "patience": 2}
    predictor = network.train_network(
        ctx=context(tiny_dataset, recipe.model_copy(update={"params": params})),
        seed=0,
        build=build_timm,
    )
    assert len(snapshots) == 4  # epochs 0..3; epoch 4's 0.1 is never reached
    assert predictor.model is not None
    assert torch.equal(next(iter(predictor.model.parameters())), snapshots[1])
    assert not torch.equal(snapshots[1], snapshots[3])


def context(ds: Dataset, recipe: RecipeSpec) -> TrainContext:
    from harness.recipes.registry import check_recipe_params

    return TrainContext(
        ds=ds, recipe=recipe, params=check_recipe_params(recipe), rows=ROWS,
        labels=LabelSpace.of(ds), tasks=ds.spec.tasks, device="cpu", weights_dir=Path("none"),
    )  # fmt: skip


def test_a_one_class_subset_predicts_that_class(
    tiny_dataset: Dataset, tiny_recipe: Recipes
) -> None:
    labels = tiny_dataset.split("train")["label"].to_numpy()
    rows = np.flatnonzero(labels == 1)[:20]
    result = run(tiny_dataset, tiny_recipe("full_finetune_resnet50"), rows=rows)
    assert result.classes_seen == 1
    test2 = next(t for t in result.tasks if t.task == "test2")
    assert test2.seeds[0].per_class == {"0": 0.0, "1": 1.0}


def test_holdout_is_by_uid_hash_exact_and_order_free() -> None:
    uids = [f"u{i}" for i in range(95)]
    mask = uid_holdout(uids, 0.1)
    assert mask.sum() == 9
    held = {u for u, m in zip(uids, mask, strict=True) if m}
    shuffled = uids[::-1]
    assert held == {u for u, m in zip(shuffled, uid_holdout(shuffled, 0.1), strict=True) if m}
    assert not uid_holdout(uids[:9], 0.1).any()  # too small to hold one out: no early stopping


def test_backbone_weights_come_from_a_local_file_and_the_head_is_new(weights_dir: Path) -> None:
    import timm
    from safetensors.torch import save_file

    source = timm.create_model("test_resnet", num_classes=1000)
    weights_dir.mkdir()
    save_file(source.state_dict(), str(weights_dir / "tr.safetensors"))
    params = FinetuneParams(backbone="test_resnet", weights="tr.safetensors")
    model, cfg = build_timm(params, 4, weights_dir)
    assert torch.equal(model.state_dict()["conv1.0.weight"], source.state_dict()["conv1.0.weight"])
    assert model.state_dict()["fc.weight"].shape[0] == 4 and len(cfg["mean"]) == 3
    with pytest.raises(DataNotFound, match="weights not found"):
        build_timm(params.model_copy(update={"weights": "nope.safetensors"}), 4, weights_dir)
    with pytest.raises(ConfigError, match="does not fit"):
        build_timm(params.model_copy(update={"backbone": "test_vit"}), 4, weights_dir)


def test_lora_trains_only_adapters_and_head(weights_dir: Path) -> None:
    params = LoraParams(backbone="test_vit", model_kwargs={"img_size": 16, "patch_size": 8})
    model, _ = build_lora(params, 3, weights_dir)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n or ".head." in n for n in trainable)
    assert any("qkv.lora_A" in n for n in trainable)
    assert any("qkv" in n and "base_layer" in n for n, _ in model.named_parameters())


@pytest.mark.slow
def test_finetune_runs_end_to_end_on_the_demo(demo_dataset: Dataset, tiny_recipe: Recipes) -> None:
    rows = np.sort(np.random.default_rng(1).choice(demo_dataset.pool_size, 215, replace=False))
    result = run(demo_dataset, tiny_recipe("full_finetune_resnet50"), rows=rows)
    assert [t.task for t in result.tasks] == ["test1", "test2", "test3", "test4"]
    assert [t.test_size for t in result.tasks] == [
        demo_dataset.split_size(demo_dataset.spec.task(t.task).test) for t in result.tasks
    ]
    assert result.classes_seen == 10
