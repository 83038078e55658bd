"""``prism``: targeted selection by submodular mutual information with the query set (PRISM).

PRISM (Kothawade et al., AAAI 2022) picks the pool subset ``A`` that maximises a submodular
mutual information ``I_f(A; Q)`` with the task's query set ``Q``; the research code called
the TRUST library's partition strategy for it (``baselines/filters/prism_filter.py``). Here,
with similarities ``s_ij = (1 + cos(x_j, q_i)) / 2`` in [0, 1] of the dataset's embeddings:

- ``mi: flmi`` (default), facility-location MI:
  ``I(A; Q) = sum_{i in Q} max_{j in A} s_ij + eta * sum_{j in A} max_{i in Q} s_ij``.
  The first term keeps, for each query, its ``knn`` most similar pool rows (exact k-NN with
  FAISS: a sparse facility-location graph; the rest of a query's row contributes nothing);
  the second is computed for every pool row (its nearest query). Maximised greedily with
  lazy evaluations, which for a submodular objective gives exactly the greedy order.
- ``mi: gcmi``, graph-cut MI: ``2 * sum_{j in A} sum_{i in Q} s_ij``, modular: the rows with
  the highest mean similarity to the queries (so it equals ``image_alignment``'s ranking).

Exactly ``budget`` rows, deterministic (ties to the lower row id); the seed is not used.
"""

from __future__ import annotations

import heapq
from typing import Literal

import numpy as np
import numpy.typing as npt

from harness.selection import faiss_ops
from harness.selection.context import SelectionContext
from harness.selection.registry import SELECTORS, SelectionOutput, output

MI = Literal["flmi", "gcmi"]


def flmi_greedy(
    sims: npt.NDArray[np.float32],
    ids: npt.NDArray[np.int64],
    nearest: npt.NDArray[np.float32],
    *,
    budget: int,
    eta: float,
) -> tuple[npt.NDArray[np.int64], float]:
    """Greedy FLMI over a sparse graph: ``sims``/``ids`` (queries x knn, cosine), ``nearest``
    (cosine of every pool row to its nearest query). Returns (rows in pick order, objective)."""
    s = (1.0 + sims.astype(np.float64)) / 2.0
    modular = eta * (1.0 + nearest.astype(np.float64)) / 2.0
    edges: dict[int, list[tuple[int, float]]] = {}
    for i, (row_ids, row_s) in enumerate(zip(ids, s, strict=True)):
        for j, v in zip(row_ids.tolist(), row_s.tolist(), strict=True):
            if j >= 0:
                edges.setdefault(j, []).append((i, v))
    cover = np.zeros(len(ids))

    def gain(j: int) -> float:
        return modular[j] + sum(max(0.0, v - cover[i]) for i, v in edges.get(j, ()))

    heap = [(-gain(j), j) for j in edges]  # rows with edges: lazily re-evaluated
    heapq.heapify(heap)
    rest = [j for j in faiss_ops.rank_desc(modular).tolist() if j not in edges]
    picked: list[int] = []
    total, r = 0.0, 0
    while len(picked) < budget and (heap or r < len(rest)):
        best_rest = (-modular[rest[r]], rest[r]) if r < len(rest) else (np.inf, -1)
        if heap and heap[0] <= best_rest:
            _, j = heapq.heappop(heap)
            g = gain(j)
            if (heap and (-g, j) > heap[0]) or (-g, j) > best_rest:
                heapq.heappush(heap, (-g, j))  # stale bound: look again
                continue
            for i, v in edges[j]:
                cover[i] = max(cover[i], v)
        else:
            g, j = modular[rest[r]], rest[r]
            r += 1
        picked.append(j)
        total += g
    return np.asarray(picked, dtype=np.int64), total


@SELECTORS.register("prism")
def prism(
    ctx: SelectionContext,
    budget: int,
    *,
    rng: np.random.Generator,
    mi: MI = "flmi",
    eta: float = 1.0,
    knn: int = 200,
    features: str = "image",
) -> SelectionOutput:
    """The ``budget`` pool rows maximising submodular mutual information with the query set."""
    del rng
    x, q = ctx.features(features)
    if mi == "gcmi":
        scores = faiss_ops.mean_cosine(x, q, progress=ctx.progress)
        rows = faiss_ops.top_k(scores, budget)
        return output(rows, natural_size=budget, mi=mi)
    sims, ids = faiss_ops.knn_cosine(q, x, k=knn, progress=ctx.progress)
    nearest = faiss_ops.max_cosine(x, q, progress=ctx.progress)
    picked, objective = flmi_greedy(sims, ids, nearest, budget=budget, eta=eta)
    return output(picked, natural_size=budget, mi=mi, eta=eta, knn=knn,
                  objective=round(float(objective), 6))  # fmt: skip
