"""The params models of the recipe kinds: what ``RecipeSpec.params`` may hold. No torch here.

    from harness.recipes.params import FinetuneParams
    params = FinetuneParams(backbone="resnet50", epochs=10)     # frozen; unknown keys rejected

One module for them all, so a kind module, the training code it calls (network, backbones,
yolo_env) and other kinds that reuse its params import them from here instead of from each
other. This module imports no other recipe module but :mod:`harness.recipes.base`. Each
kind's parameters are documented with the kind (``harness.recipes.<kind>``). The oracle's
params stay in :mod:`harness.recipes.oracle`: they validate the base recipe through the kind
registry.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from harness.recipes.base import Params

Amp = Literal["auto", "off", "bf16", "fp16"]  # autocast dtype on CUDA (harness.recipes.torch_env)
Augment = Literal["none", "crop", "crop_flip"]  # training augmentation (harness.recipes.images)
# Decoded-image cache (harness.recipes.images.recipe_cache): use one if present, build, or never.
ImageCacheMode = Literal["auto", "build", "off"]
# Loader processes; "auto": the job's CPUs (SLURM_CPUS_PER_TASK) less one.
Workers = Annotated[int, Field(ge=0)] | Literal["auto"]


class LinearProbeParams(Params):
    """``linear_probe``: objective and solver settings; the defaults are sklearn's."""

    C: float = Field(0.75, gt=0, description="inverse L2 strength, as in sklearn")
    max_iter: int = Field(1000, gt=0)
    tol: float = Field(1e-4, gt=0, description="max |gradient| at convergence, as in sklearn")
    embedding: str = Field("image", description="which cached embedding to train on")
    normalize: bool = Field(True, description="L2-normalise feature rows before use")
    dtype: Literal["float32", "float64"] = "float32"


class RidgeParams(Params):
    """``linear_probe_regression``: sklearn's ``Ridge(alpha)`` on cached embeddings."""

    alpha: float = Field(1.0, gt=0, description="L2 strength, as in sklearn's Ridge")
    embedding: str = Field("image", description="which cached embedding to train on")
    normalize: bool = Field(True, description="L2-normalise feature rows before use")


class FinetuneParams(Params):
    """``finetune``: a timm backbone with a new head, trained end to end."""

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
    augment: Augment = "crop_flip"
    amp: Amp = Field(
        "auto", description="mixed precision on CUDA (auto: bf16 where supported); never on CPU"
    )
    num_workers: Workers = Field(
        4, description="image-loading worker processes (auto: SLURM_CPUS_PER_TASK less one)"
    )
    image_cache: ImageCacheMode = Field(
        "auto", description="decoded-image cache: auto (if present), build (if missing), off"
    )


class LoraParams(FinetuneParams):
    """``lora``: the finetune params plus peft LoRA adapters."""

    lora_r: int = Field(8, gt=0)
    lora_alpha: int = Field(16, gt=0)
    lora_dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: tuple[str, ...] = Field(("qkv",), min_length=1)


class FixMatchParams(FinetuneParams):
    """``fixmatch``: the finetune params plus FixMatch semi-supervision."""

    threshold: float = Field(0.95, gt=0, le=1, description="pseudo-label confidence threshold")
    lambda_u: float = Field(1.0, ge=0, description="weight of the unlabeled loss")
    mu: int = Field(7, ge=1, description="unlabeled images per labeled image in a step")
    unlabeled: Literal["pool", "query", "pool_and_query"] = "pool"
    randaugment_ops: int = Field(2, ge=0)
    randaugment_magnitude: int = Field(10, ge=0, le=30)


class ReidParams(Params):
    """``reid``: a timm embedding network trained with batch-hard triplet loss."""

    backbone: str = Field(description="timm model name")
    weights: str | None = Field(None, description="local backbone checkpoint; None = from scratch")
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    image_size: int = Field(224, ge=8)
    embedding_dim: int = Field(256, gt=0, description="the timm head outputs the embedding")
    epochs: int = Field(30, gt=0)
    batch_size: int = Field(64, gt=1)
    instances_per_id: int = Field(4, ge=2, description="K of P x K sampling")
    eval_batch_size: int = Field(256, gt=0)
    lr: float = Field(3e-4, gt=0)
    weight_decay: float = Field(5e-4, ge=0)
    margin: float = Field(0.3, gt=0, description="triplet margin on cosine distance")
    augment: Augment = "crop_flip"
    amp: Amp = "auto"
    num_workers: Workers = 4
    image_cache: ImageCacheMode = "auto"

    @model_validator(mode="after")
    def _pk(self) -> ReidParams:
        if self.batch_size % self.instances_per_id or self.batch_size < 2 * self.instances_per_id:
            raise ValueError("batch_size must be a multiple (>= 2x) of instances_per_id")
        return self


class DetectionParams(Params):
    """``detection``: ultralytics YOLO training and validation settings."""

    model: str = Field("yolov8n.yaml", description="ultralytics model YAML or local .pt weights")
    scale: tuple[float, float, int] | None = Field(
        None, description="[depth, width, max_channels] override for a YAML model"
    )
    image_size: int = Field(640, ge=32, description="training/inference size (multiple of 32)")
    epochs: int = Field(50, gt=0)
    batch_size: int = Field(16, gt=1)
    optimizer: Literal["auto", "SGD", "Adam", "AdamW"] = "auto"
    lr0: float | None = Field(None, gt=0, description="initial lr; None: ultralytics' default")
    warmup_epochs: float = Field(3.0, ge=0)
    mosaic: float = Field(1.0, ge=0, le=1)
    fliplr: float = Field(0.5, ge=0, le=1, description="0 for classes that flipping changes")
    val_fraction: float = Field(0.1, ge=0, lt=1, description="UID-hash holdout of the subset")
    val: bool = Field(True, description="validate on the holdout every epoch (picks best.pt)")
    patience: int = Field(100, ge=1, description="ultralytics early-stopping patience (epochs)")
    amp: bool = Field(False, description="bf16 autocast on CUDA; never on the CPU")
    workers: int = Field(2, ge=0, description="dataloader worker processes")
    conf: float = Field(0.001, gt=0, lt=1, description="confidence floor of scored detections")
    nms_iou: float = Field(0.7, gt=0, lt=1)
    max_det: int = Field(300, gt=0)
