"""``detection``: ultralytics YOLO trained on exactly the subset's images and boxes.

    recipes:
      detection_yolo:
        kind: detection
        task_types: [detection]
        params: {model: yolov8n.yaml, image_size: 640, epochs: 50, batch_size: 16}

The training set is a YOLO dataset directory written into a scratch run directory: one
symlink (or copy) per subset image plus its label file from the split's ``boxes`` column
(docs/benchmark-format.md, "Detection splits"), and a ``data.yaml``. Ultralytics' own model
selection (``best.pt``) sees only a UID-hash holdout of the subset (``val_fraction``), never
a test split. Each task is then scored on its whole test split: detections are made by
ultralytics' validation protocol (multi-label NMS, ``conf`` 0.001; the protocol behind
published YOLO mAPs) and scored by :func:`detection_scores` (mAP@0.5 and mAP@0.5:0.95,
101-point interpolation, equal to ultralytics' own numbers).

Fully offline (harness.recipes.yolo_env): the ultralytics config directory is inside the run
directory, settings sync is off, plots are off (no font download) and AMP runs only as bf16 on
CUDA (the fp16 AMP self-check would fetch weights). ``model`` is a model YAML shipped with
ultralytics (``yolov8n.yaml``), a YAML file, or local ``.pt`` weights under
``settings.weights_dir``; nothing is ever downloaded. ``scale`` rescales a YAML model
(``[depth, width, max_channels]``), which is how the CPU demo recipe stays tiny.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from harness.metrics import Scores
from harness.recipes.base import TrainContext
from harness.recipes.params import DetectionParams
from harness.recipes.registry import register_kind
from harness.recipes.scoring import SCORERS
from submissions.detection_map import IOU_THRESHOLDS, ap_per_class, map_metrics
from submissions.errors import ConfigError, DataNotFound

if TYPE_CHECKING:
    import pandas as pd

    from harness.datasets import Dataset

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DetectionPredictor:
    """A trained YOLO model; ``predict`` gives each image's detections."""

    ds: Dataset
    model: Any  # ultralytics YOLO with the trained weights loaded
    params: DetectionParams
    device: str

    def predict(self, split: str) -> npt.NDArray[np.object_]:
        """Per image of ``split`` (row order): float array (k, 6) of x1, y1, x2, y2, conf, cls
        in coordinates normalised to the image (ultralytics' validation protocol)."""
        import tempfile

        from harness.recipes.yolo_env import val_predictions

        table = self.ds.split(split)
        names = class_names(self.ds)
        with tempfile.TemporaryDirectory(prefix="tdc-detection-eval-") as tmp:
            root = Path(tmp)
            images = _write_part(self.ds, table, root / "data" / split, len(names))
            data = {
                "path": str(root / "data"),
                "train": str(images),
                "val": str(images),
                "names": dict(enumerate(names)),
            }
            (root / "data.yaml").write_text(json.dumps(data))  # JSON is YAML
            found = val_predictions(
                self.model,
                data_yaml=root / "data.yaml",
                params=self.params,
                device=self.device,
                run_dir=root,
            )
        out = np.empty(len(table), dtype=object)
        for i, uid in enumerate(table["uid"].astype(str)):
            out[i] = found.get(uid, np.zeros((0, 6)))
        return out


@register_kind(
    "detection",
    params=DetectionParams,
    task_types=("detection",),
    libraries=("numpy", "torch", "ultralytics"),
)
def train(*, ctx: TrainContext, seed: int) -> DetectionPredictor:
    """Train YOLO on the subset's images and boxes; returns a predictor of its best weights."""
    import tempfile

    from harness.recipes.yolo_env import train_yolo

    p: DetectionParams = ctx.params
    names = class_names(ctx.ds)
    # The YOLO dataset (symlinks + labels) and ultralytics' run files live only while training;
    # the trained model stays in memory.
    with tempfile.TemporaryDirectory(prefix="tdc-detection-") as tmp:
        run_dir = Path(tmp)
        data_yaml = write_yolo_dataset(
            ctx=ctx, table=ctx.subset_table(), names=names, root=run_dir / "data"
        )
        model = train_yolo(
            params=p,
            data_yaml=data_yaml,
            run_dir=run_dir,
            nc=len(names),
            seed=seed,
            device=ctx.device,
            weights_dir=ctx.weights_dir,
        )
    return DetectionPredictor(ctx.ds, model, p, ctx.device)


# --- the training set on disk ------------------------------------------------------------


def parse_boxes(cell: Any) -> npt.NDArray[np.float64]:
    """One ``boxes`` cell (JSON text or a list) as a (k, 5) array of cls, cx, cy, w, h."""
    raw = json.loads(cell) if isinstance(cell, str) else cell
    arr = np.asarray(raw if raw is not None else [], dtype=np.float64).reshape(-1, 5)
    if len(arr) and (arr[:, 1:].min() < 0 or arr[:, 1:].max() > 1 or (arr[:, 3:] <= 0).any()):
        raise DataNotFound(f"boxes must be normalised [cls, cx, cy, w, h], got {raw!r}")
    return arr


def split_boxes(ds: Dataset, split: str) -> list[npt.NDArray[np.float64]]:
    table = ds.split(split)
    if "boxes" not in table.columns:
        raise DataNotFound(f"split {split!r} of {ds.spec.name} has no 'boxes' column")
    return [parse_boxes(c) for c in table["boxes"]]


def class_names(ds: Dataset) -> list[str]:
    """The manifest's ``classes`` list, else "0".."k" for k = the largest class id in the pool."""
    names = ds.manifest.get("classes")
    if names:
        return [str(n) for n in names]
    boxes = split_boxes(ds, ds.spec.pool)
    top = max((int(b[:, 0].max()) for b in boxes if len(b)), default=0)
    return [str(i) for i in range(top + 1)]


def write_yolo_dataset(
    *, ctx: TrainContext, table: pd.DataFrame, names: Sequence[str], root: Path
) -> Path:
    """Images (symlinks) + label files of ``table`` split into train / holdout; the data.yaml."""
    import yaml

    from harness.recipes.base import uid_holdout

    held = uid_holdout(table["uid"].astype(str).tolist(), ctx.params.val_fraction)
    train_dir = _write_part(ctx.ds, table[~held], root / "train", len(names))
    # Without a holdout, ultralytics' final validation runs on the training images.
    val_dir = (
        _write_part(ctx.ds, table[held], root / "val", len(names)) if held.any() else train_dir
    )
    data = {
        "path": str(root),
        "train": str(train_dir),
        "val": str(val_dir),
        "names": dict(enumerate(names)),
    }
    path = root / "data.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _write_part(ds: Dataset, table: pd.DataFrame, root: Path, nc: int) -> Path:
    images, labels = root / "images", root / "labels"
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    for uid, fname, cell in zip(table["uid"], table["filename"], table["boxes"], strict=True):
        src = ds.image_root / str(fname)
        if not src.is_file():
            raise DataNotFound(f"image missing: {src}")
        # Named by UID: unique, and the label file must share the image's stem.
        link = images / f"{uid}{src.suffix}"
        try:
            link.symlink_to(src.resolve())
        except OSError:  # filesystems without symlinks
            import shutil

            shutil.copyfile(src, link)
        boxes = parse_boxes(cell)
        if len(boxes) and boxes[:, 0].max() >= nc:
            raise DataNotFound(f"{uid}: class {int(boxes[:, 0].max())} but only {nc} classes")
        lines = "".join(f"{int(b[0])} {b[1]:.6f} {b[2]:.6f} {b[3]:.6f} {b[4]:.6f}\n" for b in boxes)
        (labels / f"{uid}.txt").write_text(lines)
    return images


# --- metrics -------------------------------------------------------------------------------


def detection_scores(
    *, truth: Sequence[npt.NDArray[np.float64]], preds: Sequence[npt.NDArray[np.float64]]
) -> Scores:
    """mAP@0.5 and mAP@0.5:0.95 over every image and every class with test boxes.

    ``truth[i]``: (k, 5) cls, cx, cy, w, h; ``preds[i]``: (m, 6) x1, y1, x2, y2, conf, cls,
    all normalised. A class with test boxes but no correct detection has AP 0; images without
    detections count (their boxes are missed). ``per_class``: AP@0.5 per class id. As in
    ultralytics (101-point interpolation; precision 0 beyond the last recall reached), so our
    numbers stay comparable with published YOLO results.
    """
    if len(truth) != len(preds):
        raise ValueError(f"{len(preds)} predictions for {len(truth)} test images")
    tps, confs, pcls, tcls = [], [], [], []
    for t, p in zip(truth, preds, strict=True):
        p = p[np.argsort(-p[:, 4], kind="stable")] if len(p) else np.zeros((0, 6))
        tps.append(_match(t, p))
        confs.append(p[:, 4])
        pcls.append(p[:, 5])
        tcls.append(t[:, 0])
    target = np.concatenate(tcls) if tcls else np.zeros(0)
    if len(target) == 0:
        raise DataNotFound("the test split has no boxes: mAP is undefined")
    ap = ap_per_class(np.concatenate(tps), np.concatenate(confs), np.concatenate(pcls), target)
    classes = np.unique(target).astype(int)
    return Scores(
        metrics=map_metrics(ap),
        per_class={int(c): float(a) for c, a in zip(classes, ap[:, 0], strict=True)},
        outcome_kind="detection_matches",
        outcomes=_matches(tps, confs, pcls, tcls),
    )


def _matches(
    tps: list[npt.NDArray[np.bool_]],
    confs: list[npt.NDArray[np.float64]],
    pcls: list[npt.NDArray[np.float64]],
    tcls: list[npt.NDArray[np.float64]],
) -> dict[str, npt.NDArray[np.generic]]:
    """Per-image matches (``submissions.outcomes``' ``detection_matches``): enough to
    recompute mAP on any resample of the images (``submissions.detection_map``)."""
    bits = 1 << np.arange(len(IOU_THRESHOLDS))
    tp = np.concatenate(tps) if tps else np.zeros((0, len(IOU_THRESHOLDS)), bool)
    return {
        "gt_count": np.array([len(t) for t in tcls], np.int64),
        "det_count": np.array([len(c) for c in confs], np.int64),
        "gt_cls": np.concatenate(tcls).astype(np.int64) if tcls else np.zeros(0, np.int64),
        "det_conf": np.concatenate(confs) if confs else np.zeros(0),
        "det_cls": np.concatenate(pcls).astype(np.int64) if pcls else np.zeros(0, np.int64),
        "det_tp": (tp.astype(np.int64) * bits).sum(1),
    }


def _xyxy(t: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    cx, cy, w, h = t[:, 1], t[:, 2], t[:, 3], t[:, 4]
    return np.column_stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


def _iou(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / (area_a[:, None] + area_b[None, :] - inter + 1e-12)


def _match(t: npt.NDArray[np.float64], p: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """(m, 10) correct-at-threshold flags; detections in descending confidence claim the best
    unclaimed box of their class (ultralytics' greedy matching)."""
    correct = np.zeros((len(p), len(IOU_THRESHOLDS)), bool)
    if not len(t) or not len(p):
        return correct
    iou = _iou(_xyxy(t), p[:, :4]) * (t[:, 0][:, None] == p[:, 5][None, :])
    claimed = np.zeros((len(t), len(IOU_THRESHOLDS)), bool)
    cols = np.arange(len(IOU_THRESHOLDS))
    for j in np.flatnonzero((iou >= IOU_THRESHOLDS[0]).any(0)):
        avail = np.where(claimed, 0.0, iou[:, j, None])
        k = avail.argmax(0)
        correct[j] = avail[k, cols] >= IOU_THRESHOLDS
        claimed[k, cols] |= correct[j]
    return correct


@SCORERS.register("detection")
def score_detection(*, ctx: TrainContext, split: str, predictor: Any) -> Scores:
    """mAP of the predictor's detections on every image of ``split``."""
    if not hasattr(predictor, "predict"):
        raise ConfigError("detection scoring needs a predictor of boxes")
    return detection_scores(truth=split_boxes(ctx.ds, split), preds=list(predictor.predict(split)))
