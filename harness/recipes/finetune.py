"""``finetune``: a timm backbone with a new head, trained end to end with Adam.

Used by ``full_finetune_resnet50``, ``full_finetune_resnet101`` and (with ``loss: mse``, one
output) ``regression_resnet50``::

    recipes:
      full_finetune_resnet50:
        kind: finetune
        task_types: [classification]
        seeds: [0, 1, 2]
        params: {backbone: resnet50, weights: resnet50.safetensors, image_size: 224, epochs: 30,
                 batch_size: 64, lr: 0.001, patience: 5, val_fraction: 0.1}

Model selection never sees a test split: early stopping (patience in epochs, on the held-out
loss, best weights restored) uses ``floor(val_fraction * n)`` subset examples chosen by a
salted hash of their UID (:func:`harness.recipes.base.uid_holdout`). Subsets too small to hold
out one example train on everything for ``epochs`` epochs. Pretrained weights come only from a
local file (``weights``, relative to ``settings.weights_dir`` or absolute); nothing is
downloaded. The CPU test configuration is this same kind with a tiny backbone and image size.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from harness.recipes.base import Params, Predictor, TrainContext
from harness.recipes.registry import register_kind


class FinetuneParams(Params):
    backbone: str = Field(description="timm model name")
    weights: str | None = Field(
        None, description="local checkpoint (.safetensors/.pth) of the backbone; None = random init"
    )
    model_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="extra timm.create_model arguments (e.g. img_size)"
    )
    image_size: int = Field(224, ge=8)
    epochs: int = Field(30, gt=0)
    batch_size: int = Field(64, gt=0)
    eval_batch_size: int = Field(256, gt=0)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    patience: int = Field(
        5, ge=1, description="epochs without held-out improvement before stopping"
    )
    val_fraction: float = Field(0.1, ge=0, lt=1)
    loss: Literal["cross_entropy", "mse"] = "cross_entropy"
    augment: Literal["none", "crop", "crop_flip"] = "crop_flip"
    amp: Literal["auto", "off", "bf16", "fp16"] = Field(
        "auto", description="mixed precision on CUDA (auto: bf16 where supported); never on CPU"
    )
    num_workers: int = Field(4, ge=0, description="image-loading worker processes")


@register_kind(
    "finetune",
    params=FinetuneParams,
    task_types=("classification", "regression"),
    libraries=("numpy", "torch", "torchvision", "timm", "pillow"),
)
def train(*, ctx: TrainContext, seed: int) -> Predictor:
    from harness.recipes.backbones import build_timm
    from harness.recipes.network import train_network

    return train_network(ctx=ctx, seed=seed, build=build_timm)
