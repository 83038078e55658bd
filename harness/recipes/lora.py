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

from pydantic import Field

from harness.recipes.base import Predictor, TrainContext
from harness.recipes.finetune import FinetuneParams
from harness.recipes.registry import register_kind


class LoraParams(FinetuneParams):
    lora_r: int = Field(8, gt=0)
    lora_alpha: int = Field(16, gt=0)
    lora_dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: tuple[str, ...] = Field(("qkv",), min_length=1)


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
