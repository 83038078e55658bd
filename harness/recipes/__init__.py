"""The fixed training recipes: one registry of kinds, one runner (harness.runner) drives them.

    from harness.recipes import check_recipe_params, get_kind
    params = check_recipe_params(spec)           # validate RecipeSpec.params at config time
    kind = get_kind(spec.kind)                   # RecipeKind: params model, train(), libraries
    predictor = kind.train(ctx=ctx, seed=0)      # ctx: harness.recipes.base.TrainContext

Kinds: ``linear_probe`` (logistic regression on cached embeddings, sklearn's objective),
``finetune`` (timm backbone + new head, Adam, early stopping on a UID-hash holdout of the
subset; classification or regression) and ``lora`` (timm ViT + peft LoRA). See
harness.recipes.registry for adding a kind. Nothing here imports torch until a recipe trains.
"""

from harness.recipes.base import LabelSpace, Params, Predictor, TrainContext, uid_holdout
from harness.recipes.registry import (
    KIND_MODULES,
    RecipeKind,
    check_recipe_params,
    get_kind,
    kind_names,
    register_kind,
)

__all__ = [
    "KIND_MODULES",
    "LabelSpace",
    "Params",
    "Predictor",
    "RecipeKind",
    "TrainContext",
    "check_recipe_params",
    "get_kind",
    "kind_names",
    "register_kind",
    "uid_holdout",
]
