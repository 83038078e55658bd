"""``dinov2``: DINOv2 image embeddings (timm) from a local checkpoint, never a download.

    embeddings: {default: clip, sets: {dinov2: {embedder: dinov2,
                 params: {arch: vit_base_patch14_dinov2, image_size: 224}}}}    # datasets.yaml
    tdc-harness embed GeoDE --set dinov2   # $TDC_WEIGHTS_DIR/vit_base_patch14_dinov2.safetensors

The checkpoint is ``checkpoint`` (absolute, or relative to ``TDC_WEIGHTS_DIR``), by default
``<arch>.safetensors`` there; timm loads it through its own pretrained path (a local file:
``HF_HUB_OFFLINE=1``), which resamples the position embedding when ``image_size`` differs
from the checkpoint's (518 px for DINOv2). Image features only (the CLS token after the final
norm, L2-normalised): caption methods refuse a DINOv2 set. Batched and chunked like open_clip.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from harness.datasets.dataset import Dataset, sha256_file
from harness.embed.base import EmbeddingStore, register
from harness.embed.chunks import embed_in_chunks, image_batches, loader_workers
from harness.settings import HarnessSettings
from submissions.errors import ConfigError, DataNotFound

log = logging.getLogger(__name__)


class Dinov2Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    arch: str = Field("vit_base_patch14_dinov2", description="timm model name")
    checkpoint: str | None = Field(
        None, description="file; default <weights_dir>/<arch>.safetensors"
    )
    image_size: int | None = Field(None, gt=0, description="input size; default the model's")
    random_init: bool = Field(False, description="no weights: smoke tests only")
    seed: int = 0
    model_overrides: dict[str, Any] = Field(default_factory=dict)
    draft: bool = Field(True, description="decode JPEGs at the smallest DCT scale >= input")
    batch_size: int = Field(64, gt=0)
    chunk_size: int = Field(8192, gt=0)
    device: str | None = None
    num_workers: int | None = Field(None, ge=0, description="decoding processes (default: auto)")


def checkpoint_path(params: Dinov2Params, settings: HarnessSettings) -> Path | None:
    """The checkpoint file to load (None for random_init); DataNotFound when it is missing."""
    if params.random_init:
        return None
    name = params.checkpoint or f"{params.arch}.safetensors"
    path = Path(name).expanduser()
    path = path if path.is_absolute() else Path(settings.weights_dir) / path
    if not path.is_file():
        raise DataNotFound(
            f"DINOv2 checkpoint not found: {path}. Put the timm checkpoint of {params.arch} "
            "there (TDC_WEIGHTS_DIR sets the folder) or give `checkpoint:` in datasets.yaml"
        )
    return path


def weights_of(params: Dinov2Params, settings: HarnessSettings) -> str | None:
    path = checkpoint_path(params, settings)
    return None if path is None else sha256_file(path)


def load_model(params: Dinov2Params, path: Path | None, device: str) -> tuple[Any, Any, int]:
    """(model in eval mode on ``device``, eval transform, input side)."""
    import timm
    import torch

    os.environ["HF_HUB_OFFLINE"] = "1"
    kwargs: dict[str, Any] = {"num_classes": 0, **params.model_overrides}
    if params.image_size:
        kwargs["img_size"] = params.image_size
    if path is None:
        torch.manual_seed(params.seed)
    try:
        model = timm.create_model(
            params.arch,
            pretrained=path is not None,
            pretrained_cfg_overlay={"file": str(path)} if path else None,
            **kwargs,
        )
    except RuntimeError as err:
        raise ConfigError(f"DINOv2 {params.arch} from {path}: {err}") from None
    model.eval().to(device)
    cfg = timm.data.resolve_model_data_config(model)
    if params.image_size:  # the checkpoint's config still names its own size (518 px)
        cfg["input_size"] = (3, params.image_size, params.image_size)
    return model, timm.data.create_transform(**cfg, is_training=False), cfg["input_size"][-1]


def encode_images(
    ds: Dataset, rows: Any, *, model: Any, transform: Any, size: int, device: str,
    params: Dinov2Params,
) -> dict[str, npt.NDArray[np.float32]]:  # fmt: skip
    import torch

    out = []
    images = image_batches(
        ds, rows, transform=transform, batch_size=params.batch_size, device=device,
        workers=loader_workers(device, params.num_workers), draft=size if params.draft else None,
    )  # fmt: skip
    for pixels in images:
        with torch.no_grad():
            out.append(model(pixels).float().cpu().numpy())
    return {"image": np.concatenate(out).astype(np.float32)}


@register(
    "dinov2",
    params=Dinov2Params,
    description="DINOv2 image features (timm) from a local checkpoint; no captions",
    weights=weights_of,
)
def embed_dinov2(
    ds: Dataset, *, params: Dinov2Params, store: EmbeddingStore, settings: HarnessSettings
) -> dict[str, Any]:
    import timm
    import torch

    path = checkpoint_path(params, settings)
    device = params.device or ("cuda" if torch.cuda.is_available() else "cpu")
    record = {"arch": params.arch, "checkpoint": path.name if path else None,
              "timm": timm.__version__, "torch": torch.__version__, "device": device}  # fmt: skip
    if all(store.done(s) for s in ds.spec.split_names()):
        return record
    model, transform, size = load_model(params, path, device)

    def encode(rows: Any) -> dict[str, npt.NDArray[np.float32]]:
        return encode_images(ds, rows, model=model, transform=transform, size=size,
                             device=device, params=params)  # fmt: skip

    done = embed_in_chunks(ds, store, encode=encode, kinds=("image",), chunk_size=params.chunk_size)
    log.info("dinov2 %s embedded %s", params.arch, ", ".join(done))
    return record
