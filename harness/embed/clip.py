"""``open_clip``: CLIP image and caption embeddings from a local checkpoint, never a download.

    embeddings: {default: clip, sets: {clip: {embedder: open_clip, params: {arch: ViT-B-32}}}}
    TDC_CLIP_CHECKPOINT=/ckpt/ViT-B-32-openai.pt tdc-harness embed GeoDE

``pretrained`` is a file path (default: settings.clip_checkpoint) or an open_clip tag that is
already in the local cache; with a path, ``HF_HUB_OFFLINE=1`` is set so nothing waits on a
hub, and a missing file fails at once with DataNotFound. Work is batched (``batch_size``)
on cuda when available (autocast there only), else cpu, with a rich progress bar; rows are
processed in chunks of ``chunk_size`` that are written as they finish, so an interrupted run
resumes at the first unfinished chunk. ``random_init: true`` builds the architecture without
weights (smoke tests of this code path only; the manifest records it).
``model_overrides`` are passed to ``open_clip.create_model`` (e.g. a tiny test config).
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
from harness.embed.chunks import batches, embed_in_chunks, image_batches, loader_workers
from harness.registry import unknown
from harness.settings import HarnessSettings
from submissions.errors import DataNotFound

log = logging.getLogger(__name__)


class OpenClipParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    arch: str = Field("ViT-B-32", description="open_clip architecture name")
    pretrained: str | None = Field(None, description="checkpoint path or cached tag")
    random_init: bool = Field(False, description="no weights: smoke tests only")
    seed: int = Field(0, description="torch seed of random_init weights")
    model_overrides: dict[str, Any] = Field(default_factory=dict)
    draft: bool = Field(True, description="decode JPEGs at the smallest DCT scale >= input")
    batch_size: int = Field(128, gt=0)
    chunk_size: int = Field(8192, gt=0, description="rows written per resumable chunk")
    device: str | None = Field(None, description="default: cuda if available, else cpu")
    num_workers: int | None = Field(None, ge=0, description="decoding processes (default: auto)")


def looks_like_path(value: str) -> bool:
    return os.sep in value or "/" in value or Path(value).suffix in {".pt", ".bin", ".safetensors"}


def resolve_weights(params: OpenClipParams, settings: HarnessSettings) -> str | None:
    """The checkpoint path or tag to load; sets HF_HUB_OFFLINE for paths."""
    import open_clip

    if params.arch not in open_clip.list_models():
        raise unknown("open_clip architecture", params.arch, open_clip.list_models())
    if params.random_init:
        return None
    weights = params.pretrained or (
        str(settings.clip_checkpoint) if settings.clip_checkpoint else None
    )
    if weights is None:
        raise DataNotFound(
            f"no open_clip weights for {params.arch}: set TDC_CLIP_CHECKPOINT to a local "
            "checkpoint file (nothing is downloaded) or `pretrained:` in datasets.yaml"
        )
    if looks_like_path(weights):
        os.environ["HF_HUB_OFFLINE"] = "1"  # a path never needs the hub: fail fast, not retry
        path = Path(weights).expanduser()
        if not path.is_file():
            raise DataNotFound(f"open_clip checkpoint not found: {path} (TDC_CLIP_CHECKPOINT)")
        return str(path)
    tags = open_clip.list_pretrained_tags_by_model(params.arch)
    if weights not in tags:
        raise unknown(f"pretrained tag of {params.arch}", weights, tags)
    return weights


def load_model(
    params: OpenClipParams, weights: str | None, device: str
) -> tuple[Any, Any, Any, int]:
    """(model, image preprocess, tokenizer, context length) in eval mode on ``device``."""
    import open_clip
    import torch

    if weights is None:
        torch.manual_seed(params.seed)  # random_init weights are reproducible
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            params.arch, pretrained=weights, device=device, **params.model_overrides
        )
    except RuntimeError as err:  # e.g. a tag whose weights are not cached and cannot download
        raise DataNotFound(f"cannot load open_clip {params.arch} ({weights}): {err}") from None
    model.eval()
    context = int(getattr(model, "context_length", 77))
    tokenizer = open_clip.get_tokenizer(params.arch, context_length=context)
    return model, preprocess, tokenizer, context


def encode_rows(
    ds: Dataset, rows: Any, *, model: Any, preprocess: Any, tokenizer: Any, device: str,
    params: OpenClipParams,
) -> dict[str, npt.NDArray[np.float32]]:  # fmt: skip
    """Image, caption and label-free caption features of a block of split rows."""
    import torch

    out: dict[str, list[npt.NDArray[np.float32]]] = {"image": [], "text": [], "text_nolabel": []}
    amp = torch.autocast("cuda") if device.startswith("cuda") else _null()
    size = model.visual.image_size
    images = image_batches(
        ds, rows, transform=preprocess, batch_size=params.batch_size, device=device,
        workers=loader_workers(device, params.num_workers),
        draft=(size if isinstance(size, int) else min(size)) if params.draft else None,
    )  # fmt: skip
    for part, pixels in zip(batches(len(rows), params.batch_size), images, strict=True):
        block = rows.iloc[part]
        with torch.no_grad(), amp:
            feats = {
                "image": model.encode_image(pixels),
                "text": model.encode_text(tokenizer(list(block["caption"])).to(device)),
                "text_nolabel": model.encode_text(
                    tokenizer(list(block["caption_nolabel"])).to(device)
                ),
            }
        for kind, value in feats.items():
            out[kind].append(value.float().cpu().numpy())
    return {k: np.concatenate(v).astype(np.float32) for k, v in out.items()}


def _null() -> Any:
    import contextlib

    return contextlib.nullcontext()


def details(params: OpenClipParams, weights: str | None, device: str) -> dict[str, Any]:
    """The embedder's own record for the set manifest."""
    import open_clip
    import torch

    return {
        "arch": params.arch,
        "pretrained": Path(weights).name if weights and looks_like_path(weights) else weights,
        "random_init": params.random_init,
        "open_clip": open_clip.__version__,
        "torch": torch.__version__,
        "device": device,
    }


def pick_device(params: OpenClipParams) -> str:
    import torch

    return params.device or ("cuda" if torch.cuda.is_available() else "cpu")


def weights_of(params: OpenClipParams, settings: HarnessSettings) -> str | None:
    """The sha256 of the checkpoint file (or the cached tag); checked before any work."""
    weights = resolve_weights(params, settings)
    if weights is None:
        return None
    return sha256_file(Path(weights)) if looks_like_path(weights) else weights


@register(
    "open_clip",
    params=OpenClipParams,
    description="open_clip image/text towers from a local checkpoint (arch + pretrained)",
    weights=weights_of,
)
def embed_open_clip(
    ds: Dataset,
    *,
    params: OpenClipParams,
    store: EmbeddingStore,
    settings: HarnessSettings,
) -> dict[str, Any]:
    """Embed every unfinished split chunk by chunk; finished splits and chunks are skipped."""
    weights = resolve_weights(params, settings)
    device = pick_device(params)
    record = details(params, weights, device)
    if all(store.done(s) for s in ds.spec.split_names()):
        return record
    model, preprocess, tokenizer, _ = load_model(params, weights, device)

    def encode(rows: Any) -> dict[str, npt.NDArray[np.float32]]:
        return encode_rows(ds, rows, model=model, preprocess=preprocess, tokenizer=tokenizer,
                           device=device, params=params)  # fmt: skip

    done = embed_in_chunks(ds, store, encode=encode, kinds=("image", "text", "text_nolabel"),
                           chunk_size=params.chunk_size)  # fmt: skip
    log.info("open_clip %s embedded %s", params.arch, ", ".join(done))
    return record
