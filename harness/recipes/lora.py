"""``lora``: a timm ViT with peft LoRA adapters; only the adapters and the new head train.

    recipes:
      lora_finetune_vit:
        kind: lora
        task_types: [classification]
        params: {backbone: vit_base_patch16_224, weights: vit_base_patch16_224.safetensors,
                 lora_r: 8, lora_alpha: 16, target_modules: [qkv], ...}

Same data, held-out split, early stopping and devices as :mod:`harness.recipes.finetune`.
"""

from __future__ import annotations

from harness.recipes.base import Predictor, TrainContext
from harness.recipes.params import LoraParams
from harness.recipes.registry import register_kind


@register_kind(
    "lora",
    params=LoraParams,
    task_types=("classification",),
    libraries=("numpy", "torch", "torchvision", "timm", "peft", "pillow"),
)
def train(*, ctx: TrainContext, seed: int) -> Predictor:
    from harness.recipes.backbones import build_lora
    from harness.recipes.network import train_network

    return train_network(ctx=ctx, seed=seed, build=build_lora)
