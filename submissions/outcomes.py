"""Per-test-example outcomes as compact bytes: the one place they are encoded and decoded.

    arrays = {"correct": y_pred == y_true}                       # in the test split's UID order
    out = ExampleOutcomes.of("correct", arrays, uids=ds.uids("test1"))   # submissions.schemas
    out.decode()["correct"]                                      # bool array, length out.n
    encode_array("bits", correct); decode_array("bits", raw, count=len(correct))
    primary_matrix([seed.outcomes for seed in task.seeds], "accuracy")   # (seeds, examples)
    ExampleOutcomes.stack([s.outcomes for s in seeds]).decode_seeds()  # one dict per seed

What each kind holds (``KINDS``; arrays of length ``n`` are per test example, the others per
box or detection), and why:

- ``correct`` (classification): ``correct`` bits, one per example (``np.packbits``, big bit
  order, zero-padded to a byte). 1,600 examples take 200 bytes.
- ``error`` (regression): ``sq_err`` and ``abs_err``, float16 little-endian, one per example.
  float16 keeps ~3 significant digits and saturates at 65504 (errors beyond ~256 have an
  infinite squared error): resampled means are approximations of the reported ``mse``/``mae``.
- ``rank1_hit`` (re-identification): ``hit`` and ``counted`` bits over every row of the test
  split: ``counted`` marks the query rows whose identity occurs in the gallery (the queries
  that rank-1 is the mean over), ``hit`` the counted queries whose nearest gallery image has
  their identity; gallery rows are neither. rank1 = hit[counted].mean().
- ``detection_matches`` (detection): the per-image matches mAP is computed from, so mAP can be
  recomputed exactly on any resample of images (per-image "AP contributions" do not exist:
  AP ranks detections across images, so it is not a sum over images). Per image (length n):
  ``gt_count`` (boxes) and ``det_count`` (detections), uint16; per box, in image order:
  ``gt_cls`` uint16; per detection, in image order and descending confidence within an
  image: ``det_conf`` float32, ``det_cls`` uint16, ``det_tp`` uint16 whose bit j says the
  detection is a true positive at the j-th IoU threshold 0.50, 0.55, ..., 0.95. A resample
  concatenates its images' boxes and detections and runs the usual AP computation.

Stacking: one record may hold ``seeds`` training seeds' outcomes of the same test split
(``ExampleOutcomes.seeds``). Its per-example arrays are then seed-major (length ``seeds * n``:
the first training seed's ``n`` values, then the second's, ...), and its per-box and
per-detection arrays are each training seed's arrays concatenated in seed order (their lengths
follow from the stacked per-image ``gt_count`` / ``det_count``). Why: a reference row's seed
is a *selection* seed whose score is the mean over the recipe's training seeds; stacking keeps
every training seed's outcomes (not their mean), so a bootstrap over test examples is exact
and detection mAP can be recomputed per training seed. 3 training seeds of 1,600 examples of
bits take 600 bytes. ``split_seeds`` undoes it; ``example_matrix`` averages each unit (a
stored seed) over its training seeds.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from submissions.schemas import ExampleOutcomes

Encoding = Literal["bits", "f16", "f32", "u16"]
OutcomeKind = Literal["correct", "error", "rank1_hit", "detection_matches"]

# kind -> {array name: (encoding, per example?)}; per-example arrays have length ``n``.
KINDS: dict[str, dict[str, tuple[Encoding, bool]]] = {
    "correct": {"correct": ("bits", True)},
    "error": {"sq_err": ("f16", True), "abs_err": ("f16", True)},
    "rank1_hit": {"hit": ("bits", True), "counted": ("bits", True)},
    "detection_matches": {
        "gt_count": ("u16", True),
        "det_count": ("u16", True),
        "gt_cls": ("u16", False),
        "det_conf": ("f32", False),
        "det_cls": ("u16", False),
        "det_tp": ("u16", False),
    },
}
# What a board resamples, per kind: one value per example (seeds x examples matrices).
PRIMARY = {"correct": "correct", "error": "sq_err", "rank1_hit": "hit"}
# A board's primary metric -> the per-example array whose mean over the test examples it is
# (balanced accuracy: of ``correct``, per class, given each example's class); a metric absent
# here (mAP) is not such a mean, and its boards show no intervals.
PER_EXAMPLE = {
    "accuracy": "correct",
    "balanced_accuracy": "correct",
    "rank1": "hit",
    "mse": "sq_err",
    "mae": "abs_err",
}
PER_CLASS = frozenset({"balanced_accuracy"})
ORDER = "test_uid"  # the only order: the test split's row order, its canonical UID order
_DTYPES = {"f16": "<f2", "f32": "<f4", "u16": "<u2"}


def uids_digest(uids: Iterable[str]) -> str:
    """sha256 of the UIDs in order, one per line: what an outcome vector's order is checked by."""
    h = hashlib.sha256()
    for uid in uids:
        h.update(f"{uid}\n".encode())
    return h.hexdigest()


def encode_array(encoding: Encoding, values: npt.ArrayLike) -> bytes:
    import numpy as np

    arr = np.asarray(values).reshape(-1)
    if encoding == "bits":
        return np.packbits(arr.astype(bool)).tobytes()
    if encoding == "u16" and len(arr) and (arr.min() < 0 or arr.max() > 0xFFFF):
        raise ValueError("a uint16 outcome value is outside [0, 65535]")
    with np.errstate(over="ignore"):  # float16 saturates to inf (see the module docstring)
        return arr.astype(_DTYPES[encoding]).tobytes()


def decode_array(encoding: Encoding, raw: bytes, *, count: int) -> npt.NDArray[np.generic]:
    """``count`` values; ValueError when ``raw`` holds another number of them."""
    import numpy as np

    if encoding == "bits":
        if len(raw) != (count + 7) // 8:
            raise ValueError(f"{len(raw)} bytes of bits for {count} values")
        if count % 8 and raw[-1] & (0xFF >> (count % 8)):
            raise ValueError(f"bits beyond the {count} values are set (padding must be 0)")
        return np.unpackbits(np.frombuffer(raw, np.uint8), count=count).astype(bool)
    dtype = np.dtype(_DTYPES[encoding])
    if len(raw) != count * dtype.itemsize:
        raise ValueError(f"{len(raw)} bytes for {count} {encoding} values")
    return np.frombuffer(raw, dtype).copy()


def to_text(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def from_text(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def counts(kind: str, n: int, raw: Mapping[str, bytes], *, seeds: int = 1) -> dict[str, int]:
    """How many values each array of ``kind`` holds when it stacks ``seeds`` training seeds
    (per-example arrays ``seeds * n``, per-box arrays from the stacked per-image counts)."""
    if set(raw) != set(KINDS[kind]):
        raise ValueError(f"{kind} outcomes hold arrays {sorted(KINDS[kind])}, got {sorted(raw)}")
    if seeds < 1:
        raise ValueError(f"outcomes of {seeds} seeds (at least 1)")
    rows = seeds * n
    out = {name: rows for name, (_, per_example) in KINDS[kind].items() if per_example}
    if kind == "detection_matches":
        gt = int(decode_array("u16", raw["gt_count"], count=rows).astype("int64").sum())
        det = int(decode_array("u16", raw["det_count"], count=rows).astype("int64").sum())
        out |= {"gt_cls": gt, "det_conf": det, "det_cls": det, "det_tp": det}
    return out


def decode_all(
    kind: str, n: int, raw: Mapping[str, bytes], *, seeds: int = 1
) -> dict[str, npt.NDArray[np.generic]]:
    """Every array of one outcome record (``seeds`` stacked training seeds); ValueError when
    one has the wrong length."""
    sizes = counts(kind, n, raw, seeds=seeds)
    return {name: decode_array(KINDS[kind][name][0], raw[name], count=sizes[name]) for name in raw}


def split_seeds(
    kind: str, n: int, arrays: Mapping[str, npt.NDArray[Any]], seeds: int
) -> list[dict[str, npt.NDArray[Any]]]:
    """Decoded stacked arrays as one dict per training seed, in seed order (per-box arrays
    split by each seed's per-image counts); ValueError when the lengths do not fit."""
    import numpy as np

    spec = KINDS[kind]
    if set(arrays) != set(spec):
        raise ValueError(f"{kind} outcomes hold arrays {sorted(spec)}, got {sorted(arrays)}")
    for name, (_, per_example) in spec.items():
        if per_example and len(arrays[name]) != seeds * n:
            raise ValueError(f"{name}: {len(arrays[name])} values, not {seeds} seeds x {n}")
    cuts: dict[str, list[int]] = {}
    if kind == "detection_matches":
        for per_image, names in (("gt_count", ("gt_cls",)),
                                 ("det_count", ("det_conf", "det_cls", "det_tp"))):  # fmt: skip
            per_seed = np.asarray(arrays[per_image], np.int64).reshape(seeds, n).sum(axis=1)
            ends = np.cumsum(per_seed).tolist()
            for name in names:
                if len(arrays[name]) != ends[-1]:
                    raise ValueError(f"{name}: {len(arrays[name])} values, counts say {ends[-1]}")
                cuts[name] = [0, *ends]
    for name, (_, per_example) in spec.items():
        if per_example:
            cuts[name] = [i * n for i in range(seeds + 1)]
    return [{name: arrays[name][cuts[name][i] : cuts[name][i + 1]] for name in spec}
            for i in range(seeds)]  # fmt: skip


def encode_all(kind: str, arrays: Mapping[str, npt.ArrayLike]) -> dict[str, bytes]:
    if set(arrays) != set(KINDS[kind]):
        raise ValueError(f"{kind} outcomes hold arrays {sorted(KINDS[kind])}, got {sorted(arrays)}")
    return {name: encode_array(KINDS[kind][name][0], arrays[name]) for name in KINDS[kind]}


def example_matrix(
    kind: str, per_seed: Sequence[Sequence[Mapping[str, Any]]], *, name: str | None = None
) -> npt.NDArray[np.generic]:
    """(units, examples) matrix of one per-example array (``name``; default ``PRIMARY[kind]``):
    per unit (a stored seed, given as its training seeds' decoded arrays) the mean over its
    training seeds (float64; a unit of one seed keeps the array's dtype). For ``rank1_hit``
    the columns are the counted queries (what rank1 averages; ``counted`` must be the same for
    every seed); detection matches are not per example (ValueError)."""
    import numpy as np

    pick = name or PRIMARY.get(kind)
    if pick is None:
        raise ValueError(f"{kind} outcomes have no per-example array")
    if not per_seed or not all(per_seed):
        raise ValueError("no seeds (every unit needs at least one training seed)")
    # One training seed keeps its dtype (bits stay bool: a board of 10,000 submissions holds
    # ~190M outcomes, 8x more as float64); stacked seeds average to float64.
    rows = [np.asarray(unit[0][pick]) if len(unit) == 1
            else np.mean([np.asarray(a[pick], np.float64) for a in unit], axis=0)
            for unit in per_seed]  # fmt: skip
    matrix = np.stack(rows)
    if kind == "rank1_hit":
        counted = [np.asarray(a["counted"], dtype=bool) for unit in per_seed for a in unit]
        if any(not np.array_equal(c, counted[0]) for c in counted[1:]):
            raise ValueError("rank1_hit seeds disagree on the counted queries")
        matrix = matrix[:, counted[0]]
    return matrix


def primary_matrix(per_seed: Sequence[ExampleOutcomes], metric: str) -> npt.NDArray[np.float64]:
    """(units, examples) float matrix whose mean over examples is each unit's ``metric`` (per
    class and then averaged for ``PER_CLASS`` metrics, given each example's class): a unit is
    one ``ExampleOutcomes``, its row the mean over its stacked training seeds. ValueError for a
    metric that is no such mean (mAP) or units of different kinds, sizes or orders."""
    import numpy as np

    if metric not in PER_EXAMPLE:
        raise ValueError(f"{metric} is not a mean over test examples (per-example: "
                         f"{', '.join(sorted(PER_EXAMPLE))})")  # fmt: skip
    if not per_seed:
        raise ValueError("no seeds")
    kinds = {(o.kind, o.n, o.uids_sha256) for o in per_seed}
    if len(kinds) != 1:
        raise ValueError(f"seeds disagree on the kind, size or order of outcomes: {sorted(kinds)}")
    kind = per_seed[0].kind
    matrix = example_matrix(kind, [o.decode_seeds() for o in per_seed], name=PER_EXAMPLE[metric])
    return np.asarray(matrix, dtype=np.float64)
