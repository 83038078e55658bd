"""``fixmatch``: the finetune recipe plus FixMatch semi-supervision on unlabeled images.

    recipes:
      fixmatch_resnet50:
        kind: fixmatch
        task_types: [classification]
        params: {backbone: resnet50, weights: resnet50.safetensors, image_size: 224, epochs: 30,
                 batch_size: 64, lr: 0.001, threshold: 0.95, lambda_u: 1.0, mu: 7,
                 unlabeled: pool}

Every ``finetune`` parameter means the same here (the params model extends
:class:`~harness.recipes.params.FinetuneParams`); FixMatch (Sohn et al., 2020) adds:

- labeled = exactly the subset (minus its UID-hash holdout for early stopping);
- unlabeled = ``pool``: the pool rows *not* in the subset, ``query``: the query images of
  the evaluated tasks (their labels are never read), or ``pool_and_query``;
- each step: a labeled batch of ``batch_size`` and an unlabeled batch of ``mu x batch_size``
  images, each seen under a weak view (the finetune augmentation) and a strong view (weak +
  RandAugment(2, 10) + cutout). Loss = CE(labeled) + ``lambda_u`` x mean over unlabeled of
  1[max p(weak) >= ``threshold``] x CE(strong, argmax p(weak)) (:func:`fixmatch_loss`).

Prediction is the finetune predictor's (head over the classes seen in the subset).
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.recipes.base import TrainContext
from harness.recipes.params import FixMatchParams
from harness.recipes.registry import register_kind

if TYPE_CHECKING:
    import torch

    from harness.recipes.network import NetworkPredictor

log = logging.getLogger(__name__)


def fixmatch_loss(
    *,
    logits_labeled: torch.Tensor,
    targets: torch.Tensor,
    logits_weak: torch.Tensor,
    logits_strong: torch.Tensor,
    threshold: float,
    lambda_u: float,
) -> tuple[torch.Tensor, float]:
    """Supervised CE + ``lambda_u`` x masked pseudo-label CE; also the share of unlabeled
    images that passed the threshold (the mask rate)."""
    import torch.nn.functional as F

    sup = F.cross_entropy(logits_labeled, targets)
    probs = logits_weak.detach().softmax(1)
    conf, pseudo = probs.max(1)
    mask = (conf >= threshold).float()
    unsup = (F.cross_entropy(logits_strong, pseudo, reduction="none") * mask).mean()
    return sup + lambda_u * unsup, float(mask.mean())


def unlabeled_paths(ctx: TrainContext, mode: str) -> list[Any]:
    """Image paths of the unlabeled set: the rest of the pool and/or the tasks' query images."""
    root = ctx.ds.image_root
    out: list[Any] = []
    if mode in ("pool", "pool_and_query"):
        pool = ctx.ds.split(ctx.pool)["filename"].to_numpy()
        rest = np.ones(len(pool), bool)
        rest[ctx.rows] = False
        out += [root / str(f) for f in pool[rest]]
    if mode in ("query", "pool_and_query"):
        for t in ctx.tasks:
            out += [root / str(f) for f in ctx.ds.split(t.query)["filename"]]
    return out


@register_kind(
    "fixmatch",
    params=FixMatchParams,
    task_types=("classification",),
    libraries=("numpy", "torch", "torchvision", "timm", "pillow"),
)
def train(*, ctx: TrainContext, seed: int) -> NetworkPredictor:
    from harness.recipes.backbones import build_timm
    from harness.recipes.base import uid_holdout
    from harness.recipes.network import NetworkPredictor
    from harness.recipes.torch_env import prepare_model, reproducible

    p: FixMatchParams = ctx.params
    table = ctx.subset_table()
    seen, y = np.unique(ctx.targets(ctx.pool, ctx.rows), return_inverse=True)
    if len(seen) == 1:
        log.info("subset holds one class; predicting it everywhere")
        return NetworkPredictor(ctx, None, {}, seen.astype(np.int64))
    held = uid_holdout(table["uid"].astype(str).tolist(), p.val_fraction)
    with reproducible(seed=seed, device=ctx.device):
        model, data_cfg = build_timm(p, len(seen), ctx.weights_dir)
        prepare_model(model, ctx.device)
        loop = _Loop(ctx, model, data_cfg, seed)
        files = table["filename"].to_numpy()
        loop.run(files[~held], y[~held].astype(np.int64), files[held], y[held].astype(np.int64))
    return NetworkPredictor(ctx, model.eval(), data_cfg, seen.astype(np.int64))


class _TwoViews:
    """Unlabeled images as (weak view, strong view) pairs."""

    def __init__(self, paths: list[Any], weak: Any, strong: Any, cache: Any = None) -> None:
        from harness.recipes.images import ImageFiles

        self.files = ImageFiles(paths=paths, targets=np.zeros(len(paths)), transform=None,
                                cache=cache)  # fmt: skip
        self.weak, self.strong = weak, strong

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        rgb = self.files.image(i)
        return self.weak(rgb), self.strong(rgb)


class _Loop:
    """FixMatch epochs over the labeled part, early stopping on the held-out loss."""

    def __init__(self, ctx: TrainContext, model: Any, data_cfg: dict[str, Any], seed: int) -> None:
        self.ctx, self.model, self.cfg, self.seed = ctx, model, data_cfg, seed
        self.p: FixMatchParams = ctx.params
        from harness.recipes.torch_env import amp_dtype

        self.amp = amp_dtype(device=ctx.device, amp=self.p.amp)

    def _tf(self, *, train: bool) -> Any:
        from harness.recipes.images import image_transforms

        return image_transforms(
            size=self.p.image_size,
            mean=self.cfg["mean"],
            std=self.cfg["std"],
            train=train,
            augment=self.p.augment,
        )

    def _strong(self) -> Any:
        from torchvision import transforms as T

        weak = self._tf(train=True).transforms  # [...geometry, ToTensor, Normalize]
        rand = T.RandAugment(self.p.randaugment_ops, self.p.randaugment_magnitude)
        cutout = T.RandomErasing(p=1.0, scale=(0.02, 0.15), value=0)
        return T.Compose([*weak[:-2], rand, *weak[-2:], cutout])

    def _loader(self, data: Any, *, batch: int, sampler: Any = None, shuffle: bool = False) -> Any:
        import torch

        from harness.recipes.images import _seed_worker, loader_options

        return torch.utils.data.DataLoader(
            data,
            batch_size=batch,
            shuffle=shuffle,
            sampler=sampler,
            worker_init_fn=_seed_worker,
            **loader_options(self.p.num_workers, device=self.ctx.device),
            generator=torch.Generator().manual_seed(self.seed),
            drop_last=sampler is not None,
        )

    def run(self, files: Any, y: Any, val_files: Any, val_y: Any) -> None:
        import torch

        from harness.recipes.images import ImageFiles, recipe_cache

        p, root = self.p, self.ctx.ds.image_root
        cache = recipe_cache(self.ctx.ds, image_size=p.image_size, mode=p.image_cache)
        labeled = ImageFiles(paths=[root / str(f) for f in files], targets=y,
                             transform=self._tf(train=True), cache=cache)  # fmt: skip
        val = ImageFiles(paths=[root / str(f) for f in val_files], targets=val_y,
                         transform=self._tf(train=False), cache=cache)  # fmt: skip
        paths = unlabeled_paths(self.ctx, p.unlabeled)
        steps = math.ceil(len(labeled) / p.batch_size)
        unl = None
        if paths and p.lambda_u > 0:
            sampler = torch.utils.data.RandomSampler(
                range(len(paths)),
                replacement=True,
                num_samples=steps * p.mu * p.batch_size,
                generator=torch.Generator().manual_seed(self.seed + 1),
            )
            data = _TwoViews(paths, self._tf(train=True), self._strong(), cache)
            unl = self._loader(data, batch=p.mu * p.batch_size, sampler=sampler)
        opt = torch.optim.Adam(self.model.parameters(), lr=p.lr, weight_decay=p.weight_decay)
        best, best_state, stale = math.inf, None, 0
        for epoch in range(p.epochs):
            self._epoch(self._loader(labeled, batch=p.batch_size, shuffle=True), unl, opt, epoch)
            if len(val) == 0:
                continue
            loss = self._val_loss(self._loader(val, batch=p.eval_batch_size))
            if loss < best:
                best, stale = loss, 0
                best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            else:
                stale += 1
                if stale >= p.patience:
                    log.info("fixmatch: early stop after epoch %d (held-out %.4f)", epoch, best)
                    break
        if best_state is not None:
            self.model.load_state_dict(best_state)

    def _epoch(self, labeled: Any, unl: Any, opt: Any, epoch: int) -> None:
        import torch

        from harness.recipes.torch_env import autocast, grad_scaler, to_device

        self.model.train()
        dev, p = self.ctx.device, self.p
        scaler = grad_scaler(self.amp)
        unl_iter = iter(unl) if unl is not None else None
        rates = []
        for x, t in labeled:
            if len(x) < 2:  # BatchNorm cannot train on one image
                continue
            if unl_iter is None:
                with autocast(device=dev, dtype=self.amp):
                    out = self.model(to_device(x, dev)).float()
                loss = torch.nn.functional.cross_entropy(out, t.to(dev).long())
            else:
                xw, xs = next(unl_iter)
                with autocast(device=dev, dtype=self.amp):
                    out = self.model(to_device(torch.cat([x, xw, xs]), dev)).float()
                lw, ls = out[len(x) :].chunk(2)
                loss, rate = fixmatch_loss(
                    logits_labeled=out[: len(x)],
                    targets=t.to(dev).long(),
                    logits_weak=lw,
                    logits_strong=ls,
                    threshold=p.threshold,
                    lambda_u=p.lambda_u,
                )
                rates.append(rate)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        log.info(
            "fixmatch epoch %d: pseudo-label mask rate %.3f",
            epoch,
            float(np.mean(rates)) if rates else 0.0,
        )

    def _val_loss(self, loader: Any) -> float:
        import torch

        self.model.eval()
        total, n = 0.0, 0
        with torch.no_grad():
            for x, t in loader:
                out = self.model(x.to(self.ctx.device))
                t = t.to(self.ctx.device).long()
                ce = torch.nn.functional.cross_entropy(out, t, reduction="sum")
                total, n = total + float(ce), n + len(x)
        return total / max(n, 1)
