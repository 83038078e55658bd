"""Kernel density of unit vectors over their nearest neighbours, computed on demand (TSDS).

    kde = KernelDensity(z, k=1000, sigma=0.75, kernel="epanechnikov", exact_limit=50_000,
                        nprobe=2)
    kde.compute(rows)          # densities of those rows of z, each computed once
    kde.values[rows]           # sum over each row's k nearest rows of z (itself included)
    kde.method                 # "exact" or "ivf(nlist=..., nprobe=...)"

A row's density is ``sum (1 - d^2 / sigma^2)_+`` (Epanechnikov) or ``sum exp(-d^2 / (2
sigma^2))`` (Gaussian) over its ``k`` nearest rows, d the L2 distance (``2 - 2 cos`` squared
for unit rows). Up to ``exact_limit`` rows the search is exact (blocks of one matrix product
against every row). Beyond, an inverted file: k-means cells (about sqrt(n), at most 1024),
each row searched in its ``nprobe`` nearest cells as a faiss IVF search does, done as one
small matrix product per cell (a per-query IVF scan is ~10x slower here); Epanechnikov only,
where nothing beyond radius sigma counts. Rows are computed only when asked for, so a caller
that needs the densities of a few rows of a large set pays for those.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

from harness.selection import faiss_ops
from submissions.errors import ConfigError

Kernel = Literal["epanechnikov", "gaussian"]
EXACT_BLOCK = 4096  # rows per block of the exact search (a block x n similarity matrix)


class KernelDensity:
    def __init__(
        self,
        z: npt.NDArray[np.float32],
        *,
        k: int,
        sigma: float,
        kernel: Kernel,
        exact_limit: int,
        nprobe: int,
    ) -> None:
        self.z, self.k, self.sigma, self.kernel = z, max(1, min(k, len(z))), sigma, kernel
        self.values = np.full(len(z), np.nan)
        self.exact = len(z) <= exact_limit
        if not self.exact:
            if kernel != "epanechnikov":
                raise ConfigError(
                    f"tsds: kernel {kernel!r} needs the exact density search: {len(z)} rows "
                    "is more than exact_limit; raise exact_limit"
                )
            self._cells(nprobe)
        self.method = "exact" if self.exact else f"ivf(nlist={self.nlist}, nprobe={self.nprobe})"

    def compute(self, rows: npt.NDArray[np.int64]) -> None:
        """Fill ``values`` for ``rows`` (those not computed yet)."""
        todo = np.unique(rows[np.isnan(self.values[rows])])
        if len(todo) == 0:
            return
        if self.exact:
            self._exact(todo)
        else:
            self._inverted(todo)

    def _exact(self, todo: npt.NDArray[np.int64]) -> None:
        """A row with more than ``k`` positive kernel values keeps its ``k`` largest."""
        z, k = self.z, self.k
        for lo in range(0, len(todo), EXACT_BLOCK):
            rows = todo[lo : lo + EXACT_BLOCK]
            g = z[rows] @ z.T  # similarities; d^2 = 2 - 2g on unit rows
            scale = 1.0
            if self.kernel == "epanechnikov":  # (2 / sigma^2) (g - (1 - sigma^2 / 2))_+
                g -= np.float32(1.0 - self.sigma**2 / 2.0)
                np.maximum(g, np.float32(0.0), out=g)
                scale = 2.0 / self.sigma**2
            else:
                g = np.exp((np.minimum(g, np.float32(1.0)) - np.float32(1.0)) / self.sigma**2)
            sums = g.sum(axis=1, dtype=np.float64)
            over = np.flatnonzero(np.count_nonzero(g, axis=1) > k)
            if len(over):
                nearest = -np.partition(-g[over], k - 1, axis=1)[:, :k]
                sums[over] = nearest.sum(axis=1, dtype=np.float64)
            self.values[rows] = sums * scale

    def _cells(self, nprobe: int) -> None:
        import faiss

        n = len(self.z)
        nlist = max(1, min(1024, int(np.sqrt(n))))
        sample = np.ascontiguousarray(self.z[np.linspace(0, n - 1, min(n, 40 * nlist)).astype(int)])
        centroids = split_crowded(sample, kmeans(sample, nlist, seed=1234))
        self.nlist, self.nprobe = len(centroids), min(nprobe, len(centroids))
        _, self.probe = faiss.knn(self.z, centroids, self.nprobe)
        self.members = group(self.probe[:, 0], self.nlist)  # a row lives in its nearest cell

    def _inverted(self, todo: npt.NDArray[np.int64]) -> None:
        z, thr = self.z, np.float32(1.0 - self.sigma**2 / 2.0)
        probes = self.probe[todo]
        askers = group(probes.ravel(), self.nlist, rows=np.repeat(todo, probes.shape[1]))
        sums = np.zeros(len(z))
        counts = np.zeros(len(z), dtype=np.int64)
        for c in range(self.nlist):
            q, m = askers[c], self.members[c]
            if len(q) == 0 or len(m) == 0:
                continue
            g = z[q] @ z[m].T
            g -= thr
            np.maximum(g, np.float32(0.0), out=g)
            # a row probes distinct cells, so q has no repeats; a matrix-vector product and an
            # int8 view are 2-10x faster than sum(dtype=float64) and count_nonzero here
            sums[q] += g @ np.ones(len(m), dtype=np.float32)
            counts[q] += (g > 0).view(np.int8).sum(axis=1, dtype=np.int64)
        for i in todo[counts[todo] > self.k]:  # keep the k nearest, as a k-NN search would
            cand = np.concatenate([self.members[c] for c in self.probe[i]])
            g = np.maximum(z[cand] @ z[i] - thr, 0.0)
            sums[i] = np.sort(g)[-self.k :].sum(dtype=np.float64)
        self.values[todo] = sums[todo] * (2.0 / self.sigma**2)


def group(
    cells: npt.NDArray[np.int64], nlist: int, rows: npt.NDArray[np.int64] | None = None
) -> list[npt.NDArray[np.int64]]:
    """For each cell, the rows (``rows[i]`` for entry i) assigned to it."""
    rows = np.arange(len(cells)) if rows is None else rows
    order = np.argsort(cells, kind="stable")
    bounds = np.searchsorted(cells[order], np.arange(nlist + 1))
    return [rows[order[bounds[c] : bounds[c + 1]]] for c in range(nlist)]


def kmeans(x: npt.NDArray[np.float32], k: int, *, seed: int) -> npt.NDArray[np.float32]:
    """L2 k-means cells (10 iterations: cells only steer the search, they need not be tight)."""
    return faiss_ops.kmeans_cosine(x, k=k, seed=seed, niter=10, spherical=False)


def split_crowded(
    sample: npt.NDArray[np.float32], centroids: npt.NDArray[np.float32], crowded: float = 3.0
) -> npt.NDArray[np.float32]:
    """The centroids, each cell holding more than ``crowded`` x the mean share of ``sample``
    replaced by a k-means of its own rows into cells of about the mean size.

    k-means on weakly clustered data leaves a few cells holding many clusters, and the rows
    asked about sit in the dense ones: the cost of a cell is (rows asked) x (rows in it), so a
    cell 15x the mean cost ~15x its share. The finer set is still an inverted file (rows
    live in their nearest centroid, a row probes its nearest ``nprobe``).
    """
    import faiss

    _, cell = faiss.knn(sample, centroids, 1)
    sizes = np.bincount(cell[:, 0], minlength=len(centroids))
    mean = len(sample) / len(centroids)
    keep, parts = [centroids[sizes <= crowded * mean]], []
    for c in np.flatnonzero(sizes > crowded * mean):
        rows = np.ascontiguousarray(sample[cell[:, 0] == c])
        # at least 40 rows a centroid, as faiss asks
        parts.append(kmeans(rows, len(rows) // max(40, int(mean)), seed=int(c)))
    return np.concatenate(keep + parts).astype(np.float32)
