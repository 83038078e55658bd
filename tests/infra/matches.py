"""Random per-image detection matches (``submissions.outcomes``' ``detection_matches``
arrays) as a detector's evaluation produces them, for tests and benchmarks of mAP and its
intervals without training a detector.

    arrays = random_matches(np.random.default_rng(0), 50, skill=0.8)
    map_of(arrays)["map50"]
"""

from __future__ import annotations

from typing import Any

import numpy as np


def random_matches(
    rng: np.random.Generator,
    n: int,
    *,
    skill: float = 0.6,
    classes: int = 3,
    boxes: float = 2.0,
    detections: float = 3.0,
) -> dict[str, Any]:
    """``n`` images with Poisson(``boxes``) boxes and Poisson(``detections``) detections
    each. A detection (in descending confidence within its image) matches an unclaimed box
    of its class with probability ``skill``, at the first k of the 10 IoU thresholds; a box
    is claimed once, so no class has more true positives than boxes (recall <= 1)."""
    gt, det = rng.poisson(boxes, n), rng.poisson(detections, n)
    gt_cls = rng.integers(0, classes, int(gt.sum()))
    det_cls = rng.integers(0, classes, int(det.sum()))
    conf = rng.uniform(0, 1, int(det.sum())).astype(np.float32)
    tp = np.zeros(int(det.sum()), dtype=np.int64)
    g0 = d0 = 0
    for i in range(n):
        free = list(gt_cls[g0 : g0 + gt[i]])
        for k in d0 + np.argsort(-conf[d0 : d0 + det[i]], kind="stable"):
            if det_cls[k] in free and rng.uniform() < skill:
                free.remove(det_cls[k])
                tp[k] = (1 << int(rng.integers(1, 11))) - 1
        g0, d0 = g0 + gt[i], d0 + det[i]
    return {"gt_count": gt, "det_count": det, "gt_cls": gt_cls, "det_conf": conf,
            "det_cls": det_cls, "det_tp": tp}  # fmt: skip
