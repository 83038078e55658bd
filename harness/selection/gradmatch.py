"""``gradmatch``: the research's GradMatch (DeepCore's, as its ``apply_filter_ours.py`` runs it).

    out = selector("gradmatch")(ctx, 430, rng=rng)                      # research defaults
    out = selector("gradmatch")(ctx, 430, rng=rng, weights="resnet18.safetensors")
    out.metadata["class_counts"], out.metadata["relative_residual"]

Steps, as the research runs them (GradMatch of Killamsetty et al., 2021, ``balance=True``):

1. EarlyTrain (:mod:`harness.selection.early_train`): a ResNet-18 trained on the whole pool's
   images and labels for ``epochs`` epochs, SGD (``selection_lr``, momentum, weight decay,
   Nesterov) in batches of ``selection_batch``, seeded from the selector's ``rng``.
2. Per class c with a budget, in eval mode: the last-layer gradient of every pool row and
   every query row of class c, ``g = [r, (r (x) e).flatten()]`` (r = softmax - onehot, e the
   512-d penultimate feature), dimension C * 513. The research takes them from a mean-reduced
   cross-entropy over batches of ``selection_batch`` rows in order, so each gradient carries
   1 / its batch's size: ``selection_batch`` for most rows, the size of the class's last,
   partial batch for its last rows (a quirk we keep: it changes the effective ridge ``lam``).
3. Target: the mean gradient of the class's query rows. OMP (:mod:`harness.selection.omp`,
   DeepCore's algorithm: signed correlations, ridge least squares with ``lam``, first step
   unregularised) picks the class's budget of pool rows.

Where we differ from the research, and why:

- Budget: the research gives each class ``round(n_c * fraction)`` OMP steps, then NNLS weights,
  and keeps the rows with a non-zero weight, so its subsets fall short of the budget; classes
  absent from the query set get a NaN target and nothing. The benchmark trains on unweighted
  subsets of an exact size, so we drop the weights and keep every OMP pick, and share the
  exact ``budget`` over the classes of the query set in proportion to their pool counts
  (largest remainder, capped at what each class has: ``labels.allocate``). Query classes thus
  get more rows than the research's ``round(n_c * fraction)``; non-query classes none, as there.
- ``lam``: the research passes ``lam=1.0`` but DeepCore never forwards it (its OMP always uses
  its default 1.0); ours uses the parameter, default 1.0, so the default is what ran.
- Init: the research sets ``torchvision_pretrain: True`` in an args dict that EarlyTrain never
  reads (it is a constructor argument GradMatch does not pass), so its ResNet-18 starts from
  random weights: our default. ``weights`` (a local resnet18 checkpoint, .safetensors or a
  torch state dict, absolute or relative to ``TDC_WEIGHTS_DIR``; never downloaded) gives the
  ImageNet-initialised variant; ``normalize`` (default: on exactly when ``weights`` is set)
  applies the backbone's mean/std, which ImageNet weights expect and the research never did.
- Images: one transform for every dataset (iWildCam's: short side 256, centre crop 224); the
  research's GeoDE loader squashes to 256x256 uncropped. A single-image last training batch
  is skipped (see early_train).
- Arithmetic: float64 OMP without ever building the (n_c, C * 513) gradient matrix, and a
  Cholesky update instead of a fresh ``lstsq`` per step: the same picks up to rounding, far
  less time and memory (the research keeps float32 gradients on the GPU).

Cost: the training dominates: ``epochs`` passes over the pool at batch 4, about 5.4 GFLOPs
(forward + backward) per 224 px image per pass. Measured on one CPU core, 0.14 s per image
per pass: 50 epochs over 100k images is about 190 core-hours, so use a GPU (``device: auto``).
On the CPU the same seed gives the same rows.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from harness.selection.context import SelectionContext
from harness.selection.labels import ClassIndex, allocate
from harness.selection.registry import SELECTORS, SelectionOutput, output
from harness.settings import DEFAULT_WEIGHTS_DIR
from submissions.errors import ConfigError, DataNotFound

if TYPE_CHECKING:
    from harness.selection.early_train import EarlyNet, EarlyTrainSpec

log = logging.getLogger(__name__)


@SELECTORS.register("gradmatch")
def gradmatch(
    ctx: SelectionContext,
    budget: int,
    *,
    rng: np.random.Generator,
    epochs: int = 50,
    selection_lr: float = 0.01,
    selection_batch: int = 4,
    selection_momentum: float = 0.9,
    selection_weight_decay: float = 1e-4,
    lam: float = 1.0,
    image_size: int = 224,
    weights: str | None = None,
    normalize: bool | None = None,
    device: str = "auto",
    eval_batch_size: int = 64,
    num_workers: int = 2,
) -> SelectionOutput:
    """The research's GradMatch (see the module docstring) on the pool's and query's images.

    ``selection_*`` and ``epochs`` train the network (the research's names), ``lam`` is the
    OMP ridge term, ``weights`` a local resnet18 checkpoint (None: random init),
    ``normalize`` None means "when ``weights`` is set"; ``eval_batch_size`` and
    ``num_workers`` only change speed, ``device`` "auto" is cuda when available.
    """
    ctx.require_classification("gradmatch")
    if lam <= 0:
        raise ConfigError(f"gradmatch: lam must be > 0, got {lam}")
    spec = train_spec(
        epochs=epochs,
        lr=selection_lr,
        batch=selection_batch,
        momentum=selection_momentum,
        weight_decay=selection_weight_decay,
        image_size=image_size,
        weights=weights,
        normalize=weights is not None if normalize is None else normalize,
        device=device,
        eval_batch_size=eval_batch_size,
        num_workers=num_workers,
        weights_dir=ctx.weights_dir,
    )
    labels = ClassIndex.of(ctx)
    counts = class_budgets(budget, labels.pool, labels.query, len(labels.classes))
    if counts.sum() == 0:
        return output([], natural_size=0, note="no query class occurs in the pool")
    return _select(ctx, spec, labels, counts, lam=lam, seed=int(rng.integers(2**31 - 1)))


def _select(
    ctx: SelectionContext,
    spec: EarlyTrainSpec,
    labels: ClassIndex,
    counts: npt.NDArray[np.int64],
    *,
    lam: float,
    seed: int,
) -> SelectionOutput:
    """Train once on the pool, then OMP per class with a budget (``counts``)."""
    from harness.recipes.torch_env import device_description
    from harness.selection.early_train import cpu_threads, train_resnet18

    paths = np.asarray(ctx.pool("path")).astype(str)
    qpaths = np.asarray(ctx.query("path")).astype(str)[labels.known]
    wanted = np.flatnonzero(counts)
    parts, residual = [], {}
    with cpu_threads(spec.device):
        net = train_resnet18(
            paths.tolist(),
            labels.pool,
            n_classes=len(labels.classes),
            spec=spec,
            seed=seed,
            progress=lambda done, total: ctx.progress("gradmatch: training", done, total),
        )
        for c in wanted:
            rows, qrows = np.flatnonzero(labels.pool == c), np.flatnonzero(labels.query == c)
            picks, residual[str(labels.classes[c])] = match_class(
                net, paths[rows], qpaths[qrows], int(c), steps=int(counts[c]), lam=lam, spec=spec
            )
            parts.append(rows[picks])
            ctx.progress("gradmatch: matching classes", len(parts), len(wanted))
        device = device_description(spec.device)
    chosen = np.concatenate(parts)
    log.info("gradmatch: %d rows from %d classes", len(chosen), len(wanted))
    return output(
        chosen,
        natural_size=len(chosen),
        note=f"OMP picked {len(chosen)} rows in {len(wanted)} query classes",
        class_counts={str(labels.classes[c]): int(counts[c]) for c in wanted},
        relative_residual=residual,
        query_rows_used=int(labels.known.sum()),
        epochs=spec.epochs,
        selection_lr=spec.lr,
        selection_batch=spec.batch,
        lam=lam,
        weights=str(spec.weights) if spec.weights is not None else "random init",
        normalize=spec.normalize,
        device=device,
        torch_seed=seed,
        train_loss=net.final_loss,
    )


def class_budgets(
    budget: int, y: npt.NDArray[np.int64], yq: npt.NDArray[np.int64], n_classes: int
) -> npt.NDArray[np.int64]:
    """Rows per pool class: ``budget`` over the query's classes, in proportion to pool counts."""
    capacity = np.bincount(y, minlength=n_classes).astype(np.int64)
    weights = np.where(np.isin(np.arange(n_classes), yq), capacity, 0).astype(np.float64)
    return allocate(budget, weights, capacity)


def match_class(
    net: EarlyNet,
    pool_paths: npt.NDArray[np.str_],
    query_paths: npt.NDArray[np.str_],
    c: int,
    *,
    steps: int,
    lam: float,
    spec: EarlyTrainSpec,
) -> tuple[npt.NDArray[np.int64], float]:
    """OMP picks (indices into ``pool_paths``) for class ``c``, and |residual| / |target|."""
    import torch

    from harness.selection.early_train import last_layer_inputs
    from harness.selection.omp import LastLayerAtoms, omp, scaled_errors

    def atoms(paths: npt.NDArray[np.str_]) -> LastLayerAtoms:
        feat, logits = last_layer_inputs(net, paths.tolist(), spec=spec)
        y = torch.full((len(paths),), c, dtype=torch.long, device=spec.device)
        err = scaled_errors(logits.to(spec.device), y, batch=spec.batch)
        return LastLayerAtoms(err=err, feat=feat.to(spec.device, torch.float64))

    target = atoms(query_paths).mean()
    fit = omp(atoms(pool_paths), target, steps=steps, lam=lam)
    norm = float(torch.linalg.vector_norm(target))
    relative = fit.residual_norms[-1] / norm if norm > 0 else 0.0
    return np.asarray(fit.indices, dtype=np.int64), relative


def train_spec(
    *, weights: str | None, device: str, weights_dir: Path = DEFAULT_WEIGHTS_DIR, **fields: Any
) -> EarlyTrainSpec:
    """The validated training spec: weights resolved to an existing file (a relative name under
    ``weights_dir``), device to one here."""
    from pydantic import ValidationError

    from harness.selection.early_train import EarlyTrainSpec

    try:
        return EarlyTrainSpec(
            weights=_weights_path(weights, weights_dir), device=_device(device), **fields
        )
    except ValidationError as err:
        lines = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors()]
        raise ConfigError(f"gradmatch: invalid parameters: {'; '.join(lines)}") from None


def _weights_path(weights: str | None, weights_dir: Path) -> Path | None:
    from harness.recipes.backbones import resolve_weights

    if weights is None:
        return None
    try:
        return resolve_weights(weights, weights_dir).absolute()
    except DataNotFound:
        raise DataNotFound(
            f"gradmatch: weights {weights!r} not found (a local resnet18 checkpoint, "
            ".safetensors or a torch state dict, absolute or relative to TDC_WEIGHTS_DIR; "
            "nothing is downloaded). Leave weights unset to start from random init, as the "
            "research does."
        ) from None


def _device(device: str) -> str:
    import torch

    from harness.recipes.torch_env import select_device

    if device == "auto":
        return select_device()
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"gradmatch: device {device!r} asked for but CUDA is not available")
    return device
