"""``reid``: a timm embedding network trained with batch-hard triplet loss on identities.

    recipes:
      reid_resnet50:
        kind: reid
        task_types: [reid]
        params: {backbone: resnet50, weights: resnet50.safetensors, image_size: 224,
                 embedding_dim: 256, epochs: 30, batch_size: 64, instances_per_id: 4}

Training: the subset's ``label`` is the identity. Each batch holds ``batch_size /
instances_per_id`` identities with ``instances_per_id`` images each (P x K sampling; an
identity with fewer images repeats them), and the loss is the batch-hard triplet loss of
Hermans et al. (2017) on L2-normalised embeddings: for every anchor, its farthest positive
against its nearest negative, with a margin. Identities with a single image in the subset
only ever serve as negatives. An epoch is ``ceil(subset size / batch_size)`` batches.

Evaluation (:func:`reid_scores`): each task's test split is divided by its ``role`` column
into ``query`` and ``gallery`` images (docs/benchmark-format.md); every query is ranked
against the whole gallery by cosine similarity. rank-k = share of queries whose k nearest
gallery images include their identity; mAP = mean average precision over queries. A query
whose identity has no gallery image cannot be answered and is left out, as in the
Market-1501 protocol, with a warning.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from harness.metrics import Scores
from harness.recipes.base import TrainContext
from harness.recipes.params import FinetuneParams, ReidParams
from harness.recipes.registry import register_kind
from harness.recipes.scoring import SCORERS
from submissions.errors import DataNotFound

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


@dataclass
class EmbeddingPredictor:
    """A trained embedding network; ``predict`` gives L2-normalised embeddings per image."""

    ctx: TrainContext
    model: Any  # torch.nn.Module
    data_cfg: dict[str, Any]

    def predict(self, split: str) -> npt.NDArray[np.float32]:
        from harness.recipes.images import ImageFiles, image_transforms, make_loader, recipe_cache

        p: ReidParams = self.ctx.params
        table = self.ctx.ds.split(split)
        tf = image_transforms(
            size=p.image_size,
            mean=self.data_cfg["mean"],
            std=self.data_cfg["std"],
            train=False,
            augment="none",
        )
        paths = [self.ctx.ds.image_root / str(f) for f in table["filename"]]
        cache = recipe_cache(self.ctx.ds, image_size=p.image_size, mode=p.image_cache)
        data = ImageFiles(paths=paths, targets=np.zeros(len(paths)), transform=tf, cache=cache)
        loader = make_loader(
            data, batch_size=p.eval_batch_size, shuffle=False, seed=0,
            num_workers=p.num_workers, device=self.ctx.device,
        )  # fmt: skip
        return embed(self.model, loader, device=self.ctx.device)


@register_kind(
    "reid",
    params=ReidParams,
    task_types=("reid",),
    libraries=("numpy", "torch", "torchvision", "timm", "pillow"),
)
def train(*, ctx: TrainContext, seed: int) -> EmbeddingPredictor:
    """Batch-hard triplet training on exactly the subset's images and identities."""
    from harness.recipes.backbones import build_timm
    from harness.recipes.torch_env import reproducible

    p: ReidParams = ctx.params
    spec = FinetuneParams(backbone=p.backbone, weights=p.weights, model_kwargs=p.model_kwargs)
    ids = ctx.subset_table()["label"].to_numpy()
    with reproducible(seed=seed, device=ctx.device):
        model, data_cfg = build_timm(spec, p.embedding_dim, ctx.weights_dir)
        model.to(ctx.device)
        _fit(ctx, model, data_cfg, ids, seed)
    return EmbeddingPredictor(ctx, model.eval(), data_cfg)


def pk_batches(
    ids: npt.NDArray[Any], *, p: int, k: int, n_batches: int, rng: np.random.Generator
) -> list[npt.NDArray[np.int64]]:
    """``n_batches`` index batches of ``p`` identities x ``k`` images (repeats if an identity
    has fewer than ``k``); identities with at least two images are preferred as anchors."""
    order = np.argsort(ids, kind="stable")
    _, starts, counts = np.unique(np.asarray(ids)[order], return_index=True, return_counts=True)
    members = [order[a : a + c].astype(np.int64) for a, c in zip(starts, counts, strict=True)]
    multi = [m for m in members if len(m) >= 2]
    pool = multi if len(multi) >= 2 else members
    out = []
    for _ in range(n_batches):
        chosen = rng.choice(len(pool), size=min(p, len(pool)), replace=False)
        batch = [rng.choice(pool[c], size=k, replace=len(pool[c]) < k) for c in chosen]
        out.append(np.concatenate(batch))
    return out


def _fit(ctx: TrainContext, model: Any, data_cfg: dict[str, Any], ids: Any, seed: int) -> None:
    import math

    import torch

    from harness.recipes.images import ImageFiles, image_transforms, loader_options, recipe_cache
    from harness.recipes.torch_env import amp_dtype, autocast, grad_scaler

    p: ReidParams = ctx.params
    table = ctx.subset_table()
    tf = image_transforms(
        size=p.image_size, mean=data_cfg["mean"], std=data_cfg["std"], train=True, augment=p.augment
    )
    paths = [ctx.ds.image_root / str(f) for f in table["filename"]]
    cache = recipe_cache(ctx.ds, image_size=p.image_size, mode=p.image_cache)
    data = ImageFiles(paths=paths, targets=np.zeros(len(paths)), transform=tf, cache=cache)
    _, dense = np.unique(ids, return_inverse=True)
    labels = torch.from_numpy(dense.astype(np.int64))
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(model.parameters(), lr=p.lr, weight_decay=p.weight_decay)
    dtype = amp_dtype(device=ctx.device, amp=p.amp)
    scaler = grad_scaler(dtype)
    per_epoch = math.ceil(len(ids) / p.batch_size)
    for epoch in range(p.epochs):
        model.train()
        total = 0.0
        batches = pk_batches(
            dense,
            p=p.batch_size // p.instances_per_id,
            k=p.instances_per_id,
            n_batches=per_epoch,
            rng=rng,
        )
        loader = torch.utils.data.DataLoader(
            data,
            batch_sampler=[b.tolist() for b in batches],
            **loader_options(p.num_workers, device=ctx.device),
            generator=torch.Generator().manual_seed(seed * 100_003 + epoch),
        )
        for idx, (x, _) in zip(batches, loader, strict=True):
            x = x.to(ctx.device)
            with autocast(device=ctx.device, dtype=dtype):
                out = model(x)
            emb = torch.nn.functional.normalize(out.float(), dim=1)
            loss = batch_hard_triplet(emb, labels[idx].to(ctx.device), margin=p.margin)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            total += float(loss.detach())
        log.info("reid epoch %d: triplet loss %.4f", epoch, total / per_epoch)


def embed(model: Any, loader: Any, *, device: str) -> npt.NDArray[np.float32]:
    import torch

    model.eval()
    outs: list[torch.Tensor] = []
    with torch.no_grad():
        for x, _ in loader:
            outs.append(torch.nn.functional.normalize(model(x.to(device)).float(), dim=1).cpu())
    return torch.cat(outs).numpy()


def batch_hard_triplet(emb: torch.Tensor, ids: torch.Tensor, *, margin: float) -> torch.Tensor:
    """Mean over anchors with a positive of relu(d(a, hardest p) - d(a, hardest n) + margin).

    ``emb`` are L2-normalised, d is the cosine distance 1 - a.b."""
    import torch

    dist = 1.0 - emb @ emb.T
    same = ids[:, None] == ids[None, :]
    eye = torch.eye(len(ids), dtype=torch.bool, device=emb.device)
    pos = same & ~eye
    hardest_pos = torch.where(pos, dist, torch.full_like(dist, -1.0)).amax(1)
    hardest_neg = torch.where(~same, dist, torch.full_like(dist, 3.0)).amin(1)
    valid = pos.any(1) & (~same).any(1)
    if not valid.any():
        return emb.sum() * 0.0  # keeps the graph; nothing to learn from this batch
    return torch.relu(hardest_pos - hardest_neg + margin)[valid].mean()


# --- metrics -------------------------------------------------------------------------------


def reid_scores(
    *,
    query: npt.NDArray[np.floating],
    query_ids: npt.NDArray[Any],
    gallery: npt.NDArray[np.floating],
    gallery_ids: npt.NDArray[Any],
) -> Scores:
    """rank1, rank5 and mAP of L2-normalised query embeddings against the gallery."""
    if len(gallery) == 0 or len(query) == 0:
        raise DataNotFound("re-identification scoring needs query and gallery images")
    sim = np.asarray(query, np.float64) @ np.asarray(gallery, np.float64).T
    # Stable sort on -similarity: ties keep gallery row order, so results are deterministic.
    order = np.argsort(-sim, axis=1, kind="stable")
    hits = np.asarray(gallery_ids)[order] == np.asarray(query_ids)[:, None]
    answerable = hits.any(1)
    if not answerable.all():
        log.warning(
            "%d queries have no gallery image of their identity; left out", int((~answerable).sum())
        )
    hits = hits[answerable]
    if len(hits) == 0:
        raise DataNotFound("no query identity occurs in the gallery")
    first = hits.argmax(1)
    cum = hits.cumsum(1)
    ranks = np.arange(1, hits.shape[1] + 1)
    ap = (cum / ranks * hits).sum(1) / hits.sum(1)
    hit = np.zeros(len(answerable), bool)
    hit[answerable] = first < 1
    return Scores(
        metrics={
            "rank1": float(np.mean(first < 1)),
            "rank5": float(np.mean(first < 5)),
            "map": float(ap.mean()),
        },
        outcome_kind="rank1_hit",  # per query here; score_reid spreads them over the split
        outcomes={"hit": hit, "counted": answerable},
    )


@SCORERS.register("reid")
def score_reid(*, ctx: TrainContext, split: str, predictor: Any) -> Scores:
    """Query vs gallery of ``split`` (its ``role`` column) with the predictor's embeddings."""
    table = ctx.ds.split(split)
    if "role" not in table.columns:
        raise DataNotFound(f"reid test split {split!r} of {ctx.ds.spec.name} has no 'role' column")
    role = table["role"].to_numpy().astype(str)
    bad = sorted(set(role) - {"query", "gallery"})
    if bad:
        raise DataNotFound(f"split {split!r}: role must be query or gallery, found {bad}")
    emb = predictor.predict(split)
    ids = table["label"].to_numpy()
    q, g = role == "query", role == "gallery"
    scores = reid_scores(query=emb[q], query_ids=ids[q], gallery=emb[g], gallery_ids=ids[g])
    spread = {}  # over every row of the split: gallery rows are never counted
    for name, per_query in scores.outcomes.items():
        spread[name] = np.zeros(len(table), bool)
        spread[name][q] = per_query
    return replace(scores, outcomes=spread)
