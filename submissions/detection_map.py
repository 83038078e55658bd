"""Detection mAP from per-image matches: on the full test set, and on every bootstrap resample
of its images at once.

    ap = ap_per_class(tp, conf, pred_cls, target_cls)          # (classes, 10 IoU thresholds)
    map_of(arrays)                    # {"map50": ..., "map50_95": ...} of stored matches
    map_of(arrays, images=picked)     # the same images scored again, repeats allowed
    map_metrics(ap)                   # the same from ap_per_class's (classes, thresholds)
    map_replicates(arrays, counts, thresholds=(0,))            # (B, 1): mAP@0.5 per resample

``arrays`` are one seed's decoded ``detection_matches`` (``submissions.outcomes``). The AP is
ultralytics' (precision envelope, 101-point interpolated area; precision 0 beyond the last
recall reached), written here once so that the recipe that trains YOLO
(``harness.recipes.detection``) and the boards that resample its results
(``submissions.significance``) compute the same number.

**Resamples without building them.** A bootstrap resample draws image ``i`` ``c[i]`` times.
Instead of concatenating the drawn images' detections (a new sort per resample), each
detection keeps its place in the one confidence order and counts ``c`` times: one
``cumsum`` over a (resamples, detections) matrix of multiplicities gives every resample's
detection counts, and one over the true positives its TP counts. Of the concatenated curve
only three points per true positive decide the interpolated area (:func:`_tp_points`): the
point before it, its first copy and its last copy; the copies in between lie on the segment
between them once the envelope is taken, and the false positives between two true positives
fall in precision from the one before to the one after. The result equals scoring each
resample as a test set (tested to 1e-12), ties in confidence between different images aside,
which the concatenation orders by draw order. 1,000 resamples of 1,000 images (~3,000
detections) take ~0.1 s per seed, ~60x less than rescoring each resample
(``benchmarks/detection_intervals.py``).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import math
import os
import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_GRID = np.linspace(0.0, 1.0, 101)
METRICS = {"map50": (0,), "map50_95": tuple(range(len(IOU_THRESHOLDS)))}
"""The mAPs the matches give: the IoU thresholds (indices) each averages over."""
_CELLS = 4_000_000  # resamples x curve points per chunk: ~32 MB per float64 array
Array = npt.NDArray[np.float64]


def ap_per_class(
    tp: npt.NDArray[np.bool_],
    conf: npt.ArrayLike,
    pred_cls: npt.ArrayLike,
    target_cls: npt.ArrayLike,
) -> Array:
    """(classes with targets, thresholds) AP of detections ``tp`` (D, thresholds) flags with
    confidences and classes, against the target boxes' classes."""
    order = np.argsort(-np.asarray(conf, dtype=np.float64), kind="stable")
    tp, pred = np.asarray(tp)[order], np.asarray(pred_cls)[order]
    target = np.asarray(target_cls)
    classes = np.unique(target)
    ap = np.zeros((len(classes), tp.shape[1]))
    for ci, c in enumerate(classes):
        sel = pred == c
        if not sel.any():
            continue
        tpc = tp[sel].cumsum(0)
        fpc = (1 - tp[sel]).cumsum(0)
        recall = tpc / (int((target == c).sum()) + 1e-16)
        precision = tpc / (tpc + fpc)
        mrec, mpre = _curves(tp.shape[1], len(recall))  # one row per IoU threshold
        mrec[:, 1:-2], mpre[:, 1:-2] = recall.T, precision.T
        mrec[:, -2] = mrec[:, -3]
        ap[ci] = _area(mrec, mpre)
    return ap


def tp_flags(det_tp: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """(D, thresholds) flags from the stored ``det_tp`` bit fields (bit j: threshold j)."""
    bits = np.asarray(det_tp, dtype=np.int64)[:, None] >> np.arange(len(IOU_THRESHOLDS))
    return np.asarray(bits & 1, dtype=bool)


def map_of(
    arrays: Mapping[str, npt.NDArray[Any]], images: npt.ArrayLike | None = None
) -> dict[str, float]:
    """Every metric of :data:`METRICS` of the images ``images`` (indices, repeats allowed; all
    when None): the matches of those images concatenated and scored as a test set."""
    gt_end, det_end = np.cumsum(arrays["gt_count"]), np.cumsum(arrays["det_count"])
    gt_start, det_start = gt_end - arrays["gt_count"], det_end - arrays["det_count"]
    picked = np.arange(len(gt_end)) if images is None else np.asarray(images, dtype=np.int64)
    gt = np.concatenate([np.arange(gt_start[i], gt_end[i]) for i in picked]).astype(np.int64)
    det = np.concatenate([np.arange(det_start[i], det_end[i]) for i in picked]).astype(np.int64)
    ap = ap_per_class(tp_flags(arrays["det_tp"][det]), arrays["det_conf"][det],
                      arrays["det_cls"][det], arrays["gt_cls"][gt])  # fmt: skip
    if not len(ap):  # no boxes in these images: mAP is undefined
        return dict.fromkeys(METRICS, math.nan)
    return map_metrics(ap)


def map_metrics(ap: Array) -> dict[str, float]:
    """Every metric of :data:`METRICS` from :func:`ap_per_class`'s (classes, thresholds)."""
    return {name: float(ap[:, list(ts)].mean(axis=1).mean()) for name, ts in METRICS.items()}


def map_replicates(
    arrays: Mapping[str, npt.NDArray[Any]], counts: npt.ArrayLike, *, metric: str = "map50"
) -> Array:
    """(B,) ``metric`` of each resample whose image multiplicities are the rows of ``counts``
    (B, images); a class counts in resample ``b`` when one of its boxes was drawn."""
    c = np.asarray(counts, dtype=np.float64)
    n = len(arrays["gt_count"])
    if c.ndim != 2 or c.shape[1] != n:
        raise ValueError(f"counts of shape {c.shape} for {n} images")
    thresholds = METRICS[metric]
    gt_img = np.repeat(np.arange(n), arrays["gt_count"])
    det_img = np.repeat(np.arange(n), arrays["det_count"])
    order = np.argsort(-np.asarray(arrays["det_conf"], dtype=np.float64), kind="stable")
    tp = tp_flags(arrays["det_tp"])[order][:, list(thresholds)]
    det_img, det_cls = det_img[order], np.asarray(arrays["det_cls"])[order]
    gt_cls = np.asarray(arrays["gt_cls"])
    classes = np.unique(gt_cls)
    total = np.zeros((c.shape[0], len(thresholds)))
    present = np.zeros((c.shape[0], 1))
    for cls in classes:
        boxes = c @ np.bincount(gt_img[gt_cls == cls], minlength=n).astype(np.float64)  # (B,)
        sel = det_cls == cls
        if sel.any():
            total += _class_ap(c, det_img[sel], tp[sel], boxes)
        present[:, 0] += boxes > 0
    with np.errstate(invalid="ignore"):
        return np.asarray((total / present).mean(axis=1))


def _class_ap(counts: Array, det_img: npt.NDArray[np.int64], tp: npt.NDArray[np.bool_],
              boxes: Array) -> Array:  # fmt: skip
    """(B, thresholds) AP of one class's detections (confidence order) in each resample; 0
    where the resample holds none of its boxes (the caller does not count it there)."""
    out = np.zeros((counts.shape[0], tp.shape[1]))
    step = max(1, _CELLS // (3 * len(det_img) + 3))
    for lo in range(0, counts.shape[0], step):
        w = counts[lo : lo + step][:, det_img]  # (b, D): each detection's multiplicity
        seen = np.cumsum(w, axis=1)  # detections up to and with each one, copies counted
        g = boxes[lo : lo + step]
        for j in range(tp.shape[1]):
            hits = np.flatnonzero(tp[:, j])
            if len(hits):
                recall, prec = _tp_points(w[:, hits], seen[:, hits], np.where(g > 0, g, 1.0))
                out[lo : lo + step, j] = np.where(g > 0, _area(recall, prec), 0.0)
    return out


def _tp_points(w: Array, seen: Array, boxes: Array) -> tuple[Array, Array]:
    """The curve points that decide the area, three per true positive ``k`` (columns of
    ``w`` and ``seen``): the point before it (A), its first copy (B), its last copy (C).

    Recall moves only at true positives, so the interpolation between two recall levels
    runs from the last point of the lower level (A: whatever detection precedes the first
    drawn true positive) to the first of the higher (B). The false positives in between fall
    in precision from the C before them to the A after them, so no envelope value changes
    without them. An undrawn true positive repeats A three times."""
    found = np.cumsum(w, axis=1)
    before, seen_before = found - w, seen - w
    drawn = (w > 0).astype(np.float64)
    recall, prec = _curves(len(w), 3 * w.shape[1])
    prec[:, 1:-2] = 1.0  # no detection drawn yet: (0, 1) repeats the start
    points = ((before, seen_before), (before + drawn, seen_before + drawn), (found, seen))
    for k, (tps, dets) in enumerate(points):
        cols = slice(1 + k, -2, 3)
        np.divide(tps, boxes[:, None], out=recall[:, cols])
        np.divide(tps, dets, out=prec[:, cols], where=dets > 0)
    recall[:, -2] = recall[:, -3]
    return recall, prec


def _curves(b: int, points: int) -> tuple[Array, Array]:
    """(b, points + 3) recall and precision rows with ultralytics' end points: recall 0 at
    precision 1 first; the last recall again and recall 1, both at precision 0."""
    recall, prec = np.empty((b, points + 3)), np.empty((b, points + 3))
    recall[:, 0], recall[:, -1] = 0.0, 1.0
    prec[:, 0], prec[:, -2:] = 1.0, 0.0
    return recall, prec


def _area(mrec: Array, mpre: Array) -> Array:
    """(B,) interpolated area under each row's curve (ultralytics' ``compute_ap``): the
    precision envelope (``mpre`` is overwritten with it) sampled at 101 recalls as
    ``np.interp`` samples it, all rows at once, then the trapezoidal area."""
    b, m = mrec.shape
    np.maximum.accumulate(mpre[:, ::-1], axis=1, out=mpre[:, ::-1])
    # np.interp's index: the last point whose recall is <= x. Each point's bucket (how many
    # grid recalls lie below it) is an exact float comparison; counting buckets <= k is then
    # a search in integers, all rows at once (row r offset by r * 102).
    bucket = np.searchsorted(RECALL_GRID, mrec, side="left") + 102 * np.arange(b)[:, None]
    query = np.arange(101)[None, :] + 102 * np.arange(b)[:, None]
    j = np.searchsorted(bucket.ravel(), query.ravel(), side="right").reshape(b, 101) - 1
    j -= m * np.arange(b)[:, None]
    nxt = np.minimum(j + 1, m - 1)
    x0, x1 = np.take_along_axis(mrec, j, 1), np.take_along_axis(mrec, nxt, 1)
    y0, y1 = np.take_along_axis(mpre, j, 1), np.take_along_axis(mpre, nxt, 1)
    with np.errstate(invalid="ignore", divide="ignore"):  # x1 == x0 only where x == x0
        slope = (y1 - y0) / (x1 - x0)
        y = np.where(x0 == RECALL_GRID, y0, slope * (RECALL_GRID - x0) + y0)
    return np.asarray(np.trapezoid(y, RECALL_GRID, axis=1))


@dataclass(frozen=True, eq=False)
class MapOutcomes:
    """One entry's detection outcomes on one task, for ``submissions.significance`` (its
    ``Resampled``): per seed, the decoded matches of each of its training seeds (one for a
    submission's seed; several for a reference row's selection seed, whose score is their
    mean). Replicates are kept by content (a small LRU): an entry's do not change between
    board changes, so each change computes only the entries that are new."""

    units: tuple[tuple[Mapping[str, npt.NDArray[Any]], ...], ...]
    metric: str = "map50"
    cache_dir: Path | None = None  # replicates also kept here: a restart reads, not recomputes

    @property
    def n(self) -> int:
        return len(self.units[0][0]["gt_count"])

    def points(self) -> Array:
        """(S,) each seed's full-test metric, kept by content like the replicates (a board
        change asks for every entry's)."""
        return _remembered((self._digest(), "points"), self._points)

    def replicates(self, counts: npt.NDArray[np.unsignedinteger]) -> Array:
        crc = zlib.crc32(np.ascontiguousarray(counts).data)
        key = (self._digest(), counts.shape, crc)
        return _remembered(key, lambda: self._replicates(counts, key))

    def _points(self) -> Array:
        return np.array([np.mean([map_of(m)[self.metric] for m in u]) for u in self.units])

    def _replicates(self, counts: npt.NDArray[np.unsignedinteger], key: _Key) -> Array:
        path = None if self.cache_dir is None else self.cache_dir / _file_name(key)
        reps = _load(path, (counts.shape[0], len(self.units)))
        if reps is None:
            c = np.asarray(counts, dtype=np.float64)
            reps = np.stack(
                [np.mean([map_replicates(m, c, metric=self.metric) for m in u], axis=0)
                 for u in self.units], axis=1,
            )  # fmt: skip
            _save(path, reps)
        return reps

    @functools.cache  # noqa: B019 (frozen, compared by identity: one digest per object)
    def _digest(self) -> str:
        h = hashlib.sha256(self.metric.encode())
        for unit in self.units:
            for m in unit:
                for name in sorted(m):
                    h.update(name.encode() + np.ascontiguousarray(m[name]).tobytes())
            h.update(b"|")
        return h.hexdigest()


_Key = tuple[str, tuple[int, ...], int]  # content digest, counts' shape, counts' crc32


def _remembered(key: tuple[object, ...], compute: Callable[[], Array]) -> Array:
    """``compute()``, kept read-only in the process's LRU under ``key``."""
    with _lock:
        if key in _replicates:
            _replicates.move_to_end(key)
            return _replicates[key]
    value = compute()
    value.flags.writeable = False
    with _lock:
        _replicates[key] = value
        while len(_replicates) > _KEEP:
            _replicates.popitem(last=False)
    return value


def _file_name(key: _Key) -> str:
    digest, shape, crc = key
    return f"{digest}-{crc:08x}-{'x'.join(map(str, shape))}.npy"


def _load(path: Path | None, shape: tuple[int, int]) -> Array | None:
    """Replicates kept on disk, or None (absent, or not what was expected: recomputed)."""
    if path is None:
        return None
    try:
        reps = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    return reps if reps.shape == shape and reps.dtype == np.float64 else None


def _save(path: Path | None, reps: Array) -> None:
    """Written to a temporary name and renamed in; a cache that cannot be written is only
    slower (logged), never an error on a board."""
    if path is None:
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("wb") as fh:
            np.save(fh, reps, allow_pickle=False)
        os.replace(tmp, path)
    except OSError as err:
        log.warning("detection replicates not kept in %s: %s", path.parent, err)
        with contextlib.suppress(OSError):
            tmp.unlink()


_KEEP = 4096  # a replicates (~24 KB: 1,000 x 3 seeds) and a points array per entry-task: ~50 MB
_replicates: OrderedDict[tuple[object, ...], Array] = OrderedDict()  # replicates and points
_lock = threading.Lock()
