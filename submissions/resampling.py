"""The random draws behind every interval: which test examples and seeds each bootstrap
replicate takes, from one fixed seed (``submissions.significance`` explains the design).

    idx = resample_indices(1600, stream="test1")     # (1000, 1600) example indices, uint32
    counts = resample_counts(idx)                    # (1000, 1600) multiplicities
    task_counts(1600, resamples=1000, seed=SEED, stream="test1")    # the same, kept (uint8)
    seed_weights(3) @ seed_scores                    # each replicate's seed deviation
    percentile_interval(replicates)                  # (2, ...) 2.5 and 97.5 percentiles

A task's draws depend only on :data:`SEED`, the task name and the test size, so every entry
of a board, the submission pages and ``tdc-harness report stability`` resample the same test
sets: comparisons are paired, and the numbers are the same wherever they are computed.
"""

from __future__ import annotations

import functools
import math
import zlib

import numpy as np
import numpy.typing as npt

SEED = 18_2026
"""The fixed seed of every resample (changing it changes every published interval)."""
RESAMPLES = 1000
LEVEL = 0.95

Array = npt.NDArray[np.float64]


def resample_indices(
    n: int, *, resamples: int = RESAMPLES, seed: int = SEED, stream: str = ""
) -> npt.NDArray[np.uint32]:
    """(resamples, n) example indices drawn with replacement; ``stream`` names the task."""
    if n < 1:
        raise ValueError(f"cannot resample {n} examples")
    rng = np.random.default_rng([seed, zlib.crc32(stream.encode()), n])
    return rng.integers(0, n, size=(resamples, n), dtype=np.uint32)


def resample_counts(indices: npt.NDArray[np.integer]) -> Array:
    """(B, n) multiplicities of each example in each resample (one ``bincount``)."""
    b, n = indices.shape
    flat = indices.astype(np.int64) + np.arange(b, dtype=np.int64)[:, None] * n
    return np.bincount(flat.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)


@functools.lru_cache(maxsize=32)
def task_counts(
    n: int, *, resamples: int, seed: int, stream: str
) -> npt.NDArray[np.unsignedinteger]:
    """A task's count matrix, kept between board changes in the smallest unsigned dtype
    (uint8 for any realistic test set: 1.6 MB for 1,000 x 1,600), read-only."""
    counts = resample_counts(resample_indices(n, resamples=resamples, seed=seed, stream=stream))
    compact = counts.astype(np.min_scalar_type(int(counts.max())))
    compact.flags.writeable = False
    return compact


@functools.lru_cache(maxsize=16)
def seed_weights(n_seeds: int, *, resamples: int = RESAMPLES, seed: int = SEED) -> Array:
    """(B, S) weights turning S seed scores into each replicate's seed deviation (read-only)."""
    if n_seeds < 2:
        raise ValueError(f"seed variation needs 2 seeds or more, not {n_seeds}")
    rng = np.random.default_rng([seed, zlib.crc32(b"seeds"), n_seeds])
    draws = rng.integers(0, n_seeds, size=(resamples, n_seeds))
    weights = (resample_counts(draws) - 1.0) / n_seeds * math.sqrt(n_seeds / (n_seeds - 1))
    weights.flags.writeable = False
    return weights


def percentile_interval(replicates: Array, level: float = LEVEL) -> Array:
    """(2, ...) lower and upper percentile bounds over the first axis."""
    tail = 50.0 * (1.0 - level)
    return np.asarray(np.percentile(replicates, [tail, 100.0 - tail], axis=0), dtype=np.float64)
