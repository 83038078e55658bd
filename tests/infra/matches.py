"""Random per-image detection matches (``submissions.outcomes``' ``detection_matches``
arrays), for tests of mAP and its intervals without training a detector.

    arrays = random_matches(np.random.default_rng(0), 50, skill=0.8)
    map_of(arrays)["map50"]
"""

from __future__ import annotations

from typing import Any

import numpy as np


def random_matches(
    rng: np.random.Generator, n: int, *, skill: float = 0.6, classes: int = 3
) -> dict[str, Any]:
    """``n`` images with 0-4 boxes and 0-6 detections each; ``skill`` is the share of
    detections that are true positives, each at the first k of the 10 IoU thresholds."""
    gt, det = rng.integers(0, 5, n), rng.integers(0, 7, n)
    d = int(det.sum())
    true = rng.uniform(size=d) < skill
    strict = rng.integers(1, 11, d)
    return {
        "gt_count": gt,
        "det_count": det,
        "gt_cls": rng.integers(0, classes, int(gt.sum())),
        "det_conf": rng.uniform(0, 1, d).astype(np.float32),
        "det_cls": rng.integers(0, classes, d),
        "det_tp": np.where(true, (1 << strict) - 1, 0),
    }
