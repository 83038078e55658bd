"""The training loop shared by the image recipes (finetune, lora), and their predictor.

    predictor = train_network(ctx=ctx, seed=0, build=build_timm)
    predictor.predict("test1")      # class indices into ctx.labels, or regression values

One loop for classification and regression: the head has one output per class seen in the
subset (cross-entropy) or a single output (MSE). Adam; early stopping on the held-out part of
the subset (see harness.recipes.finetune); best held-out weights restored; reproducible per
seed on the CPU.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from harness.recipes.base import TrainContext, uid_holdout
from harness.recipes.images import ImageFiles, image_transforms, make_loader, recipe_cache
from harness.recipes.params import FinetuneParams
from harness.recipes.torch_env import (
    amp_dtype,
    autocast,
    grad_scaler,
    prepare_model,
    reproducible,
    to_device,
)
from submissions.errors import ConfigError

log = logging.getLogger(__name__)

Builder = Callable[[FinetuneParams, int, Path], tuple[nn.Module, dict[str, Any]]]
Loader = torch.utils.data.DataLoader[tuple[torch.Tensor, Any]]


@dataclass
class NetworkPredictor:
    """A trained network; ``seen`` maps head outputs to dataset classes (None: regression)."""

    ctx: TrainContext
    model: nn.Module | None  # None: the subset had one class, which is always predicted
    data_cfg: dict[str, Any]
    seen: npt.NDArray[np.int64] | None

    def predict(self, split: str) -> npt.NDArray[Any]:
        table = self.ctx.ds.split(split)
        if self.model is None:
            assert self.seen is not None
            return np.full(len(table), self.seen[0], np.int64)
        out = _forward_all(self.model, self._loader(split), self.ctx)
        if self.seen is None:
            return out[:, 0].astype(np.float64)
        return self.seen[out.argmax(1)]

    def _loader(self, split: str) -> Loader:
        p: FinetuneParams = self.ctx.params
        table = self.ctx.ds.split(split)
        data = _images(self.ctx, table["filename"], np.zeros(len(table)), self.data_cfg, False)
        return make_loader(
            data, batch_size=p.eval_batch_size, shuffle=False, seed=0,
            num_workers=p.num_workers, device=self.ctx.device,
        )  # fmt: skip


def train_network(*, ctx: TrainContext, seed: int, build: Builder) -> NetworkPredictor:
    p: FinetuneParams = ctx.params
    _check_loss(ctx, p)
    table = ctx.subset_table()
    targets = ctx.targets(ctx.pool, ctx.rows)
    seen: npt.NDArray[np.int64] | None = None
    if ctx.labels is not None:
        seen, y = np.unique(targets, return_inverse=True)
        if len(seen) == 1:
            log.info("subset holds one class; predicting it everywhere")
            return NetworkPredictor(ctx, None, {}, seen.astype(np.int64))
        targets = y.astype(np.int64)
    else:
        targets = targets.astype(np.float32)
    held = uid_holdout(table["uid"].astype(str).tolist(), p.val_fraction)
    with reproducible(seed=seed, device=ctx.device):
        model, data_cfg = build(p, len(seen) if seen is not None else 1, ctx.weights_dir)
        prepare_model(model, ctx.device)
        fit = _Fit(ctx, model, regression=seen is None)
        train = _images(ctx, table["filename"][~held], targets[~held], data_cfg, True)
        val = _images(ctx, table["filename"][held], targets[held], data_cfg, False)
        loader = functools.partial(
            make_loader, seed=seed, num_workers=p.num_workers, device=ctx.device
        )
        fit.run(
            loader(train, batch_size=p.batch_size, shuffle=True),
            loader(val, batch_size=p.eval_batch_size, shuffle=False) if held.any() else None,
        )
    return NetworkPredictor(ctx, model.eval(), data_cfg, seen)


def _check_loss(ctx: TrainContext, p: FinetuneParams) -> None:
    want = "cross_entropy" if ctx.labels is not None else "mse"
    if p.loss != want:
        raise ConfigError(
            f"recipe {ctx.recipe.name!r}: loss {p.loss!r} does not fit task type "
            f"{ctx.ds.spec.task_type!r} (use {want!r})"
        )


def _images(
    ctx: TrainContext, filenames: Any, targets: npt.NDArray[Any], cfg: dict[str, Any], train: bool
) -> ImageFiles:
    p: FinetuneParams = ctx.params
    tf = image_transforms(
        size=p.image_size, mean=cfg["mean"], std=cfg["std"], train=train, augment=p.augment
    )
    paths = [ctx.ds.image_root / str(f) for f in filenames]
    cache = recipe_cache(ctx.ds, image_size=p.image_size, mode=p.image_cache)
    return ImageFiles(paths=paths, targets=targets, transform=tf, cache=cache)


class _Fit:
    """Adam epochs with early stopping on the held-out loss."""

    def __init__(self, ctx: TrainContext, model: nn.Module, *, regression: bool) -> None:
        self.ctx, self.model, self.p = ctx, model, ctx.params
        self.loss: nn.Module = nn.MSELoss() if regression else nn.CrossEntropyLoss()
        self.regression = regression
        self.amp = amp_dtype(device=ctx.device, amp=self.p.amp)

    def run(self, train: Loader, val: Loader | None) -> None:
        params = [q for q in self.model.parameters() if q.requires_grad]
        opt = torch.optim.Adam(params, lr=self.p.lr, weight_decay=self.p.weight_decay)
        scaler = grad_scaler(self.amp)
        best_loss, best_state, stale = math.inf, None, 0
        for epoch in range(self.p.epochs):
            train_loss = self._epoch(train, opt, scaler)
            if val is None:
                log.info("epoch %d: train loss %.4f", epoch, train_loss)
                continue
            val_loss = self._val_loss(val)
            log.info("epoch %d: train loss %.4f, held-out loss %.4f", epoch, train_loss, val_loss)
            if val_loss < best_loss:
                best_loss, stale = val_loss, 0
                best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            else:
                stale += 1
                if stale >= self.p.patience:
                    log.info("early stop after epoch %d (best held-out %.4f)", epoch, best_loss)
                    break
        if best_state is not None:
            self.model.load_state_dict(best_state)

    def _epoch(self, loader: Loader, opt: torch.optim.Optimizer, scaler: Any) -> float:
        self.model.train()
        total, count = 0.0, 0
        for x, t in loader:
            if len(x) < 2:  # BatchNorm cannot train on a single image; skip that remainder
                continue
            with autocast(device=self.ctx.device, dtype=self.amp):
                out = self.model(to_device(x, self.ctx.device))
            loss = self._loss(out, t)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            total, count = total + loss.item() * len(x), count + len(x)
        return total / max(count, 1)

    @torch.no_grad()
    def _val_loss(self, loader: Loader) -> float:
        self.model.eval()
        total, count = 0.0, 0
        for x, t in loader:
            with autocast(device=self.ctx.device, dtype=self.amp):
                out = self.model(to_device(x, self.ctx.device))
            total, count = total + float(self._loss(out, t)) * len(x), count + len(x)
        return total / max(count, 1)

    def _loss(self, out: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = t.to(self.ctx.device)
        if self.regression:
            return self.loss(out.float()[:, 0], t.float())
        return self.loss(out.float(), t.long())


@torch.no_grad()
def _forward_all(model: nn.Module, loader: Loader, ctx: TrainContext) -> npt.NDArray[np.float32]:
    model.eval()
    dtype = amp_dtype(device=ctx.device, amp=ctx.params.amp)
    outs = []
    for x, _ in loader:
        with autocast(device=ctx.device, dtype=dtype):
            outs.append(model(to_device(x, ctx.device)).float().cpu())
    return torch.cat(outs).numpy()
