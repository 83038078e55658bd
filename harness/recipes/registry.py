"""The registry of recipe kinds, keyed by ``RecipeSpec.kind``. No torch here.

A kind is a params model (validates ``RecipeSpec.params``) plus one training function::

    @register_kind("linear_probe", params=LinearProbeParams,
                   task_types=("classification",), libraries=("numpy", "torch"))
    def train(*, ctx: TrainContext, seed: int) -> Predictor: ...

    kind = get_kind("linear_probe")          # UnknownName with suggestions for a typo
    params = check_recipe_params(spec)       # ConfigError naming the bad key and valid keys

Adding a kind takes its params model in :mod:`harness.recipes.params`, one module (the
``@register_kind`` train function, heavy imports inside the function), its name in
:data:`KIND_MODULES`, and one entry in ``configs/recipes.yaml``. A task type with new metrics
also registers a scorer in :mod:`harness.recipes.scoring`. Kind modules must import without
torch: config checks load them all.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from harness.recipes.base import Params
from harness.registry import Registry
from harness.specs import RecipeSpec, format_validation
from submissions.errors import ConfigError

Train = Callable[..., Any]  # (*, ctx: TrainContext, seed: int) -> Predictor

# Modules that register kinds when imported; a new kind appends its module here.
KIND_MODULES: tuple[str, ...] = (
    "harness.recipes.linear_probe",
    "harness.recipes.linear_probe_regression",
    "harness.recipes.finetune",
    "harness.recipes.lora",
    "harness.recipes.detection",
    "harness.recipes.reid",
    "harness.recipes.fixmatch",
    "harness.recipes.oracle",
)


@dataclass(frozen=True)
class RecipeKind:
    """One kind of recipe: how its params look and how it trains."""

    name: str
    params: type[Params]
    train: Train
    task_types: tuple[str, ...]
    libraries: tuple[str, ...]  # distributions whose versions go into the manifest
    uses_embeddings: bool = False  # reads the dataset's embedding set (part of a score's key)


KINDS: Registry[RecipeKind] = Registry("recipe kind")


def register_kind(
    name: str,
    *,
    params: type[Params],
    task_types: tuple[str, ...],
    libraries: tuple[str, ...] = ("numpy",),
    uses_embeddings: bool = False,
) -> Callable[[Train], Train]:
    """Register ``fn`` as the training function of recipe kind ``name``."""

    def deco(fn: Train) -> Train:
        kind = RecipeKind(name, params, fn, task_types, libraries, uses_embeddings)
        KINDS.register(name)(kind)
        return fn

    return deco


@cache
def load_kinds() -> None:
    for module in KIND_MODULES:
        importlib.import_module(module)


def get_kind(name: str) -> RecipeKind:
    load_kinds()
    return KINDS.get(name)


def kind_names() -> list[str]:
    load_kinds()
    return KINDS.names()


def check_recipe_params(spec: RecipeSpec) -> Params:
    """The recipe's validated params; ConfigError for bad params or unsupported task types."""
    kind = get_kind(spec.kind)
    unsupported = sorted(set(spec.task_types) - set(kind.task_types))
    if unsupported:
        raise ConfigError(
            f"recipe {spec.name!r}: kind {kind.name!r} cannot train task types {unsupported}; "
            f"it supports {list(kind.task_types)}"
        )
    try:
        return kind.params.model_validate(spec.params)
    except ValidationError as err:
        where = f"recipes.{spec.name}.params"
        raise ConfigError(
            format_validation(Path("recipes.yaml"), where, err, kind.params)
        ) from None
