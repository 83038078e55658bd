"""timm backbones with a new head, pretrained weights from local files only, LoRA via peft.

    model, data_cfg = build_timm(params, out_dim=10, weights_dir=Path("weights"))
    model, data_cfg = build_lora(params, out_dim=10, weights_dir=Path("weights"))
    data_cfg            # {"mean": (...), "std": (...)} for the transforms

A checkpoint is a ``.safetensors`` file or a torch file read with ``weights_only=True`` (no
pickled objects). The checkpoint's classifier is always dropped, so the head is new even
when the class counts happen to agree; every other key must match the backbone exactly.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from harness.recipes.params import FinetuneParams, LoraParams
from submissions.errors import ConfigError, DataNotFound

log = logging.getLogger(__name__)


def build_timm(
    params: FinetuneParams, out_dim: int, weights_dir: Path
) -> tuple[nn.Module, dict[str, Any]]:
    import timm

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # belt and braces: timm never downloads here
    try:
        model = timm.create_model(
            params.backbone, pretrained=False, num_classes=out_dim, **params.model_kwargs
        )
    except RuntimeError as err:  # timm's "Unknown model"
        raise ConfigError(f"backbone {params.backbone!r}: {err}") from None
    if params.weights:
        _load_backbone(model, resolve_weights(params.weights, weights_dir))
    cfg: dict[str, Any] = dict(model.pretrained_cfg)  # type: ignore[arg-type]
    return model, {"mean": tuple(cfg["mean"]), "std": tuple(cfg["std"])}


def build_lora(
    params: FinetuneParams, out_dim: int, weights_dir: Path
) -> tuple[nn.Module, dict[str, Any]]:
    from peft import LoraConfig, get_peft_model

    if not isinstance(params, LoraParams):
        raise TypeError("build_lora needs LoraParams")
    model, data_cfg = build_timm(params, out_dim, weights_dir)
    config = LoraConfig(
        r=params.lora_r,
        lora_alpha=params.lora_alpha,
        lora_dropout=params.lora_dropout,
        target_modules=list(params.target_modules),
        modules_to_save=list(_classifier_names(model)),  # the new head trains in full
    )
    peft_model = get_peft_model(model, config)
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    log.info("LoRA: %d trainable parameters", trainable)
    return peft_model, data_cfg


def resolve_weights(name: str, weights_dir: Path) -> Path:
    path = Path(name) if Path(name).is_absolute() else Path(weights_dir) / name
    if not path.is_file():
        raise DataNotFound(
            f"backbone weights not found: {path}. Put the checkpoint there (TDC_WEIGHTS_DIR sets "
            "the folder) or set the recipe's `weights: null` to train from scratch."
        )
    return path


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    data = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):  # common wrappers of training checkpoints
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: not a state dict")
    return data


def _classifier_names(model: nn.Module) -> tuple[str, ...]:
    cfg: dict[str, Any] = dict(model.pretrained_cfg)  # type: ignore[arg-type]
    names = cfg.get("classifier", ())
    return (names,) if isinstance(names, str) else tuple(names)


def _load_backbone(model: nn.Module, path: Path) -> None:
    heads = _classifier_names(model)

    def is_head(key: str) -> bool:
        return any(key == h or key.startswith(h + ".") for h in heads)

    state = {k: v for k, v in read_checkpoint(path).items() if not is_head(k)}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not is_head(k)]
    if missing or unexpected:
        raise ConfigError(
            f"{path} does not fit the backbone: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    log.info("loaded backbone weights from %s", path)
