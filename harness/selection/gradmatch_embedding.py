"""``gradmatch_embedding``: our embedding-space proxy of GradMatch, not the research's method.

GradMatch (Killamsetty et al., 2021) matches last-layer gradients of a network trained on
the pool; the research runs it with a ResNet-18 trained on the images (that is
``gradmatch``, :mod:`harness.selection.gradmatch`). This proxy needs no images and no GPU:
it replaces the ResNet by a linear softmax model on the stored image embeddings, so its
gradients, and so its subsets, are not the research's. Steps:

1. A warm linear softmax model on the (L2-normalised, optionally PCA-reduced) image
   embeddings: ``train_steps`` full-batch gradient steps on a seeded sample of at most
   ``max_train`` pool rows.
2. Per-sample last-layer gradients of the cross-entropy: g_i = [(p_i - y_i) (x) x_i, p_i - y_i]
   (weights and bias), in dimension C * (r + 1) with ``r = min(d, feature_dim)``.
3. The target is the mean gradient over the task's labelled query set.
4. Orthogonal matching pursuit: repeatedly add the atom with the largest positive correlation
   with the residual (GradMatch's non-negative variant) and project the residual off the span
   of the chosen atoms (incremental Gram-Schmidt: O(D * s) per step). The OMP weights are
   not needed: the benchmark trains on the chosen rows unweighted.

Cap on work (large pools): atoms are per-batch mean gradients ("GradMatchPB") over a seeded
partition of the pool into batches of ``ceil(n / max_atoms)`` rows, so OMP never scores more
than ``max_atoms`` atoms whatever the pool size; a chosen batch contributes all its rows (the
last one cut to fit the budget). OMP stops when the residual is below ``tol`` of the target or
after D steps (the residual is then zero); as the original GradMatch code (CORDS) does, the
rest of the budget is filled with a uniform sample of the unchosen rows and ``natural_size``
records how many rows OMP chose itself.

Beyond the model, the proxy also differs from the research's OMP (DeepCore's): one OMP over
the whole pool rather than one per class, positive correlations only, an unregularised
projection instead of ``lam`` ridge least squares, and batch atoms on large pools.

    out = selector("gradmatch_embedding")(ctx, 430, rng=rng, max_atoms=20_000)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from harness.selection import faiss_ops
from harness.selection.context import SelectionContext
from harness.selection.labels import ClassIndex
from harness.selection.registry import SELECTORS, SelectionOutput, output

Embed = Callable[[npt.NDArray[np.int64]], npt.NDArray[np.float32]]


def reduce_features(
    x: npt.NDArray[np.float32], *, dim: int, sample: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float64]]:
    """A projection to ``dim`` principal directions (fitted on ``sample``) and its mean."""
    z = faiss_ops.normalize(x[sample])
    mean = z.mean(axis=0)
    if dim >= z.shape[1]:
        return np.eye(z.shape[1], dtype=np.float32), mean
    _, _, vt = np.linalg.svd(z - mean, full_matrices=False)
    return np.ascontiguousarray(vt[:dim].T, dtype=np.float32), mean


def fit_softmax(
    z: npt.NDArray[np.float32], y: npt.NDArray[np.int64], n_classes: int, *, steps: int, lr: float
) -> npt.NDArray[np.float64]:
    """Weights (r + 1, C) of a linear softmax model after ``steps`` full-batch GD steps."""
    zb = np.hstack([z, np.ones((len(z), 1), np.float32)]).astype(np.float64)
    w = np.zeros((zb.shape[1], n_classes))
    onehot = np.eye(n_classes)[y]
    for _ in range(steps):
        w -= lr * zb.T @ (_softmax(zb @ w) - onehot) / len(zb)
    return w


def _softmax(logits: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    out: npt.NDArray[np.float64] = e / e.sum(axis=1, keepdims=True)
    return out


def logit_errors(
    z: npt.NDArray[np.float32], y: npt.NDArray[np.int64], w: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Inputs with a bias column and softmax errors p - y: the factors of g = zb (x) err."""
    zb = np.hstack([z, np.ones((len(z), 1), np.float32)]).astype(np.float64)
    return zb, _softmax(zb @ w) - np.eye(w.shape[1])[y]


def mean_gradient(
    z: npt.NDArray[np.float32], y: npt.NDArray[np.int64], w: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Mean last-layer gradient over the rows, flattened to (r + 1) * C."""
    zb, err = logit_errors(z, y, w)
    out: npt.NDArray[np.float64] = (zb.T @ err).ravel() / len(z)
    return out


def batch_gradients(
    ctx: SelectionContext,
    embed: Embed,
    y: npt.NDArray[np.int64],
    w: npt.NDArray[np.float64],
    order: npt.NDArray[np.int64],
    size: int,
) -> npt.NDArray[np.float32]:
    """Mean gradient of each batch ``order[i*size:(i+1)*size]``: (n_batches, (r + 1) * C).

    Rows are processed a few thousand at a time; a batch's gradient is a sum of outer
    products, so it is one ``einsum`` over (batch, row) blocks, never a per-row matrix.
    """
    n, n_batches = len(order), -(-len(order) // size)
    atoms = np.zeros((n_batches, w.size), dtype=np.float32)
    step = size * max(1, 8192 // size)
    for lo in range(0, n, step):
        rows = order[lo : lo + step]
        zb, err = logit_errors(embed(rows), y[rows], w)
        pad = -len(rows) % size  # zero rows add nothing to a batch's gradient sum
        zb, err = np.pad(zb, ((0, pad), (0, 0))), np.pad(err, ((0, pad), (0, 0)))
        sums = np.einsum(
            "bir,bic->brc", zb.reshape(-1, size, zb.shape[1]), err.reshape(-1, size, err.shape[1])
        )
        first = lo // size
        counts = np.minimum(size, len(order) - size * np.arange(first, first + len(sums)))
        atoms[first : first + len(sums)] = sums.reshape(len(sums), -1) / counts[:, None]
        ctx.progress("batch gradients", min(lo + step, n), n)
    return atoms


def omp_positive(
    atoms: npt.NDArray[np.floating], target: npt.NDArray[np.float64], *, steps: int, tol: float
) -> list[int]:
    """Atoms chosen by OMP with a non-negative selection rule, in the order chosen.

    Correlations are float32 (the scan over all atoms is the cost of a step); the residual and
    the orthonormal basis of the chosen atoms' span stay float64.
    """
    norms = np.linalg.norm(atoms, axis=1)
    unit = (atoms / np.where(norms > 0, norms, 1.0)[:, None]).astype(np.float32)
    steps = min(steps, len(atoms), len(target))
    basis = np.zeros((steps, len(target)))
    residual, stop = target.astype(np.float64), tol * np.linalg.norm(target)
    chosen: list[int] = []
    available = norms > 0
    for s in range(steps):
        corr = unit @ residual.astype(np.float32)
        corr[~available] = -np.inf
        best = int(np.argmax(corr))
        if corr[best] <= 0 or np.linalg.norm(residual) <= stop:
            break
        chosen.append(best)
        available[best] = False
        v = atoms[best].astype(np.float64) / norms[best]
        v -= basis[:s].T @ (basis[:s] @ v)  # Gram-Schmidt: O(D * s)
        if np.linalg.norm(v) > 1e-6:
            basis[s] = v / np.linalg.norm(v)
            residual -= (basis[s] @ residual) * basis[s]
    return chosen


@SELECTORS.register("gradmatch_embedding")
def gradmatch_embedding(
    ctx: SelectionContext,
    budget: int,
    *,
    rng: np.random.Generator,
    feature_dim: int = 64,
    max_train: int = 20_000,
    train_steps: int = 100,
    lr: float = 1.0,
    max_atoms: int = 4096,
    tol: float = 1e-3,
) -> SelectionOutput:
    """The GradMatch proxy (see the module docstring) on image embeddings and query labels."""
    ctx.require_classification("gradmatch_embedding")
    x, q = ctx.features("image")
    labels = ClassIndex.of(ctx)
    classes, y, known = labels.classes, labels.pool, labels.known
    n = ctx.pool_size
    train = np.sort(rng.choice(n, size=min(n, max_train), replace=False))
    proj, mean = reduce_features(x, dim=feature_dim, sample=train)

    def embed_rows(src: npt.NDArray[np.float32]) -> Embed:
        def embed(rows: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
            z = faiss_ops.normalize(src[np.sort(rows)])[np.argsort(np.argsort(rows))]
            out: npt.NDArray[np.float32] = (z - mean).astype(np.float32) @ proj
            return out

        return embed

    pool_embed = embed_rows(x)
    w = fit_softmax(pool_embed(train), y[train], len(classes), steps=train_steps, lr=lr)
    target = mean_gradient(embed_rows(q)(np.flatnonzero(known)), labels.query, w)
    size = -(-n // max(1, max_atoms))
    order = rng.permutation(n).astype(np.int64)
    atoms = batch_gradients(ctx, pool_embed, y, w, order, size)
    chosen = omp_positive(atoms, target, steps=-(-budget // size), tol=tol)
    parts = [order[i * size : (i + 1) * size] for i in chosen]
    picked = np.concatenate(parts)[:budget] if parts else np.empty(0, np.int64)
    rows = _fill(picked, n, budget, rng)
    return output(
        rows,
        natural_size=len(picked),
        filled=len(rows) - len(picked),
        note=f"OMP chose {len(picked)} rows; {len(rows) - len(picked)} filled uniformly",
        batch_size=size,
        atoms=len(atoms),
        query_rows_used=int(known.sum()),
    )


def _fill(
    picked: npt.NDArray[np.int64], n: int, budget: int, rng: np.random.Generator
) -> npt.NDArray[np.int64]:
    """``picked`` topped up to ``min(budget, n)`` with a uniform sample of the other rows."""
    short = min(budget, n) - len(picked)
    if short <= 0:
        return picked
    rest = np.setdiff1d(np.arange(n, dtype=np.int64), picked, assume_unique=True)
    return np.concatenate([picked, rng.choice(rest, size=short, replace=False)])
