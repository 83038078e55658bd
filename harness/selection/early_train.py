"""The research GradMatch's EarlyTrain stage: a ResNet-18 trained on the whole pool's images.

    spec = EarlyTrainSpec(epochs=50, lr=0.01, batch=4, image_size=224, device="cuda")
    net = train_resnet18(paths, y, n_classes=10, spec=spec, seed=0)
    feat, logits = last_layer_inputs(net, paths[rows], spec=spec)   # (k, 512), (k, C) float32
    net.final_loss                                                   # last epoch's mean loss

As DeepCore's ``EarlyTrain.run`` with the research's arguments: timm's ``resnet18`` (the
torchvision architecture DeepCore uses at 224 px; ``zero_init_last=False`` so a random init
follows torchvision's as well), SGD with Nesterov momentum and weight decay, mean
cross-entropy, ``epochs`` passes over a fresh random permutation of the whole pool in batches
of ``batch``, no augmentation. One difference: a last batch of a single image is skipped, as
in the recipes' training loop (BatchNorm cannot train on one image when the final feature map
is 1x1, i.e. at small ``image_size``); at most one image-step per epoch is lost.

Images: the short side resized to ``image_size / 0.875``, then a centre crop of
``image_size`` (at 224: Resize(256) + CenterCrop(224), the research's iWildCam transform);
pixels stay in [0, 1] as the research's datasets leave them, unless ``normalize`` (then the
backbone's mean/std, what ImageNet weights expect). Training runs inside
``reproducible(seed)``: on the CPU, same seed, same model, bit for bit.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from harness.recipes.images import ImageFiles, image_transforms, make_loader
from harness.recipes.torch_env import reproducible

log = logging.getLogger(__name__)

BACKBONE = "resnet18"
FEATURE_DIM = 512  # ResNet-18's penultimate width: the last layer's input


class EarlyTrainSpec(BaseModel):
    """How the selection network is trained and read (the research's ``selection_*`` args)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = Field(50, gt=0)
    lr: float = Field(0.01, gt=0)
    batch: int = Field(4, gt=0)
    momentum: float = Field(0.9, ge=0)
    weight_decay: float = Field(1e-4, ge=0)
    image_size: int = Field(224, ge=16)
    weights: Path | None = Field(None, description="resolved checkpoint; None = random init")
    normalize: bool = False
    device: str = "cpu"
    eval_batch_size: int = Field(64, gt=0)
    num_workers: int = Field(2, ge=0)


@dataclass
class EarlyNet:
    """The trained network, the transform its inputs get, and its last epoch's mean loss."""

    model: nn.Module
    transform: Any
    final_loss: float


def build_resnet18(n_classes: int, spec: EarlyTrainSpec) -> tuple[nn.Module, Any]:
    """A ResNet-18 with an ``n_classes`` head (weights from ``spec.weights``, if any)."""
    from harness.recipes.backbones import build_timm
    from harness.recipes.params import FinetuneParams

    params = FinetuneParams(
        backbone=BACKBONE,
        weights=str(spec.weights) if spec.weights is not None else None,
        image_size=spec.image_size,
        model_kwargs={"zero_init_last": False},
    )
    model, cfg = build_timm(params, n_classes, Path("."))  # spec.weights is already absolute
    mean, std = (cfg["mean"], cfg["std"]) if spec.normalize else ((0.0,) * 3, (1.0,) * 3)
    tf = image_transforms(size=spec.image_size, mean=mean, std=std, train=False, augment="none")
    return model, tf


def train_resnet18(
    paths: Sequence[str],
    y: npt.NDArray[np.int64],
    *,
    n_classes: int,
    spec: EarlyTrainSpec,
    seed: int,
    progress: Callable[[int, int], None] | None = None,
) -> EarlyNet:
    """Train on every (image, class index) pair; see the module docstring."""
    with reproducible(seed=seed, device=spec.device):
        model, tf = build_resnet18(n_classes, spec)
        model.to(spec.device)
        data = ImageFiles(paths=[Path(p) for p in paths], targets=y, transform=tf)
        loader = make_loader(
            data, batch_size=spec.batch, shuffle=True, seed=seed, num_workers=spec.num_workers
        )
        opt = torch.optim.SGD(
            model.parameters(),
            lr=spec.lr,
            momentum=spec.momentum,
            weight_decay=spec.weight_decay,
            nesterov=True,
        )
        loss = float("nan")
        for epoch in range(spec.epochs):
            loss = _epoch(model, loader, opt, spec.device)
            log.info("gradmatch selection network: epoch %d, train loss %.4f", epoch, loss)
            if progress is not None:
                progress(epoch + 1, spec.epochs)
    return EarlyNet(model=model.eval(), transform=tf, final_loss=loss)


def _epoch(model: nn.Module, loader: Any, opt: torch.optim.Optimizer, device: str) -> float:
    model.train()
    criterion = nn.CrossEntropyLoss()
    total, count = 0.0, 0
    for x, t in loader:
        if len(x) < 2:  # see the module docstring
            continue
        loss = criterion(model(x.to(device)), t.to(device).long())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total, count = total + loss.item() * len(x), count + len(x)
    return total / max(count, 1)


@contextlib.contextmanager
def cpu_threads(device: str) -> Iterator[None]:
    """On the CPU, torch on its default thread count, restored after.

    CPU results depend on the thread count, and a caller's thread limit (``run_selector``
    holds BLAS/OpenMP to one thread on small pools) only reaches torch once torch is loaded:
    the first selection in a process would run on all cores, later ones on one. Pinning the
    count (``OMP_NUM_THREADS`` if set, else every core this process may use) makes the same
    seed give the same rows in every call.
    """
    if not device.startswith("cpu"):
        yield
        return
    previous = torch.get_num_threads()
    env = os.environ.get("OMP_NUM_THREADS", "")
    cores = len(os.sched_getaffinity(0))
    torch.set_num_threads(int(env) if env.isdigit() and int(env) > 0 else cores)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@torch.no_grad()
def last_layer_inputs(
    net: EarlyNet, paths: Sequence[str], *, spec: EarlyTrainSpec
) -> tuple[Tensor, Tensor]:
    """Penultimate features (k, 512) and logits (k, C) of the images, float32 on the CPU.

    In eval mode a row's outputs do not depend on its batch, so ``eval_batch_size`` is free.
    """
    model: Any = net.model.eval()  # timm's forward_features / forward_head
    head: nn.Module = model.get_classifier()
    n_classes = int(getattr(head, "out_features", 0))
    files = [Path(p) for p in paths]
    data = ImageFiles(paths=files, targets=np.zeros(len(files)), transform=net.transform)
    loader = make_loader(
        data, batch_size=spec.eval_batch_size, shuffle=False, seed=0, num_workers=spec.num_workers
    )
    feats, logits = [torch.zeros(0, FEATURE_DIM)], [torch.zeros(0, n_classes)]
    for x, _ in loader:
        f = model.forward_head(model.forward_features(x.to(spec.device)), pre_logits=True)
        feats.append(f.float().cpu())
        logits.append(head(f).float().cpu())
    return torch.cat(feats), torch.cat(logits)
