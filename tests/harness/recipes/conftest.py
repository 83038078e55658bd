"""Fixtures for the recipe tests: the shipped recipes shrunk for the CPU, a regression dataset.

``tiny_recipe(name)`` is the recipe of ``configs/recipes.yaml`` with the same kind and the same
code path, only smaller: a tiny timm model, 16-pixel images (the fixture's own size), two
epochs, no worker processes, no pretrained weights.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.datasets import Dataset, DatasetDir
from harness.datasets.writer import write_splits
from harness.settings import default_configs_dir
from harness.specs import RecipeSpec, load_benchmark

# Per recipe: params replaced for the CPU test configuration (kind and everything else kept).
TINY_PARAMS: dict[str, dict[str, Any]] = {
    "full_finetune_resnet50": {"backbone": "test_resnet"},
    "full_finetune_resnet101": {"backbone": "resnet10t"},
    "regression_resnet50": {"backbone": "test_resnet"},
    "lora_finetune_vit": {
        "backbone": "test_vit",
        "model_kwargs": {"img_size": 16, "patch_size": 8},
    },
}
SMALL = {
    "weights": None,
    "image_size": 16,
    "epochs": 2,
    "batch_size": 64,
    "num_workers": 0,
    "patience": 1,
}


def shrink(recipe: RecipeSpec) -> RecipeSpec:
    """The CPU test configuration of a shipped recipe (unchanged for the linear probe)."""
    if recipe.name not in TINY_PARAMS:
        return recipe
    params = {**recipe.params, **SMALL, **TINY_PARAMS[recipe.name]}
    return recipe.model_copy(update={"params": params, "seeds": (0,)})


@pytest.fixture(scope="session")
def shipped_recipes() -> dict[str, RecipeSpec]:
    return dict(load_benchmark(default_configs_dir()).recipes)


@pytest.fixture(scope="session")
def tiny_recipe(shipped_recipes: dict[str, RecipeSpec]) -> Callable[[str], RecipeSpec]:
    return lambda name: shrink(shipped_recipes[name])


@pytest.fixture(scope="session")
def regression_dataset(tiny_dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    """The tiny dataset as a regression problem: target = 0.5 * class + source offset."""
    root = tmp_path_factory.mktemp("regression")
    spec = tiny_dataset.spec.model_copy(
        update={
            "name": "tiny_regression",
            "path": "tiny_regression",
            "task_type": "regression",
            "default_recipe": "regression_resnet50",
            "primary_metric": "mse",
            "secondary_metric": "mae",
            "higher_is_better": False,
        }
    )
    ddir = DatasetDir(root / spec.path)
    splits = {}
    for name in tiny_dataset.spec.split_names():
        df = tiny_dataset.split(name).copy()
        df["label"] = 0.5 * df["label"].astype(float) + np.where(df["source"] == "b", 0.1, 0.0)
        splits[name] = df
    shutil.copytree(tiny_dataset.image_root, ddir.root / spec.image_root)
    write_splits(ddir, splits, dataset_version=spec.version)
    return Dataset.open(spec, data_root=root)


@pytest.fixture
def weights_dir(tmp_path: Path) -> Path:
    return tmp_path / "weights"
