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

from harness.recipes.base import Predictor, TrainContext
from harness.recipes.params import FinetuneParams
from harness.recipes.registry import register_kind


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
