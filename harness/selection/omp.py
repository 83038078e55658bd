"""GradMatch's orthogonal matching pursuit on last-layer gradients, never materialised.

    err = scaled_errors(logits, y, batch=4)          # (n, C): (softmax - onehot) / batch size
    atoms = LastLayerAtoms(err=err, feat=feat)       # gradient of row i: [err_i, err_i (x) feat_i]
    target = LastLayerAtoms(err=err_q, feat=feat_q).mean()
    fit = omp(atoms, target, steps=40, lam=1.0)
    fit.indices, fit.coef, fit.residual_norms        # picks in order, final weights, |resid|

``omp`` is DeepCore's ``orthogonal_matching_pursuit`` (the copy the research runs): each step
picks the not-yet-chosen atom with the largest *signed* correlation ``A^T resid`` (first index
on ties), solves ``(A_S A_S^T + lam I) x = A_S b`` and sets ``resid = b - A_S^T x``; the first
step alone uses the plain projection ``x = <a, b> / |a|^2``, as DeepCore does. Same picks,
less work:

- A last-layer gradient is ``g_i = [r_i, r_i (x) e_i]`` (r: scaled softmax error, e: the
  penultimate feature), so ``g_i . g_j = (r_i . r_j)(1 + e_i . e_j)`` and ``A v`` is
  ``sum_c r_ic (v_bias_c + (V_weight e_i)_c)``: no (n, C(d+1)) gradient matrix is ever built.
- The ridge system grows by one row a step: a Cholesky factor extended in O(k^2) replaces
  DeepCore's fresh O(k^3) least-squares solve (the matrix is positive definite for lam > 0).

Everything is float64 on the tensors' device. ``DenseAtoms`` wraps an explicit matrix (the
tests' reference, and the layout the research stores).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor


class Atoms(Protocol):
    """The n columns of GradMatch's design matrix, seen only through products."""

    @property
    def count(self) -> int: ...

    def correlate(self, v: Tensor) -> Tensor:
        """``A^T v``: every atom's inner product with ``v``, shape (n,)."""
        ...

    def combine(self, rows: Tensor, x: Tensor) -> Tensor:
        """``sum_k x_k a_{rows_k}``: a vector in the atoms' space."""
        ...

    def inner(self, rows: Tensor, j: int) -> Tensor:
        """``a_{rows_k} . a_j`` for every k, shape (len(rows),)."""
        ...


@dataclass(frozen=True)
class DenseAtoms:
    """Atoms given as the rows of an explicit (n, D) matrix."""

    a: Tensor

    @property
    def count(self) -> int:
        return int(self.a.shape[0])

    def correlate(self, v: Tensor) -> Tensor:
        return self.a @ v

    def combine(self, rows: Tensor, x: Tensor) -> Tensor:
        return self.a[rows].T @ x

    def inner(self, rows: Tensor, j: int) -> Tensor:
        return self.a[rows] @ self.a[j]


@dataclass(frozen=True)
class LastLayerAtoms:
    """Last-layer gradients ``[err_i, (err_i (x) feat_i).flatten()]`` in factored form.

    The layout is the research's: bias gradient (C) first, then the weight gradient of a
    ``Linear(d, C)`` flattened row-major (class-major), D = C * (d + 1).
    """

    err: Tensor  # (n, C) scaled softmax errors
    feat: Tensor  # (n, d) penultimate features

    @property
    def count(self) -> int:
        return int(self.err.shape[0])

    def correlate(self, v: Tensor) -> Tensor:
        c = self.err.shape[1]
        bias, weight = v[:c], v[c:].view(c, -1)
        return (self.err * (bias + self.feat @ weight.T)).sum(dim=1)

    def combine(self, rows: Tensor, x: Tensor) -> Tensor:
        w = self.err[rows] * x[:, None]
        return torch.cat([w.sum(dim=0), (w.T @ self.feat[rows]).flatten()])

    def inner(self, rows: Tensor, j: int) -> Tensor:
        return (self.err[rows] @ self.err[j]) * (1.0 + self.feat[rows] @ self.feat[j])

    def mean(self) -> Tensor:
        """The mean gradient over all rows (GradMatch's target for the query rows)."""
        n = self.count
        return self.combine(torch.arange(n, device=self.err.device), self.err.new_full((n,), 1 / n))

    def dense(self) -> Tensor:
        """The explicit (n, D) gradient matrix (small inputs and tests only)."""
        outer = self.err[:, :, None] * self.feat[:, None, :]
        return torch.cat([self.err, outer.flatten(1)], dim=1)


def batch_scale(n: int, batch: int, *, device: torch.device | str = "cpu") -> Tensor:
    """1 / the size of each row's batch when ``n`` rows are cut in order into ``batch``-sized
    batches: the factor a mean-reduced loss puts on every row (the last batch may be smaller).
    """
    start = torch.arange(n, device=device) // batch * batch
    return 1.0 / torch.clamp(n - start, max=batch).to(torch.float64)


def scaled_errors(logits: Tensor, y: Tensor, *, batch: int) -> Tensor:
    """``(softmax(logits) - onehot(y)) / batch size``: d(mean cross-entropy)/d(logits), per row.

    This is what ``torch.autograd.grad(CrossEntropyLoss()(out, y), out)`` gives the research
    for each batch of ``batch`` rows taken in order.
    """
    p = torch.softmax(logits.to(torch.float64), dim=1)
    p[torch.arange(len(y), device=p.device), y] -= 1.0
    return p * batch_scale(len(y), batch, device=p.device)[:, None]


@dataclass(frozen=True)
class OmpFit:
    indices: list[int]  # atoms in the order chosen
    coef: Tensor  # weights of the chosen atoms after the last step
    residual_norms: list[float]  # |b - A_S^T x| after each step


def omp(
    atoms: Atoms,
    target: Tensor,
    *,
    steps: int,
    lam: float,
    progress: Callable[[int, int], None] | None = None,
) -> OmpFit:
    """``steps`` atoms chosen by DeepCore's OMP (see the module docstring) for ``target``."""
    if lam <= 0:
        raise ValueError(f"lam must be > 0, got {lam}")
    steps = max(0, min(steps, atoms.count))
    rhs = atoms.correlate(target)  # A^T b, the right-hand sides of every ridge system
    resid = target.clone()
    taken = torch.zeros(atoms.count, dtype=torch.bool, device=target.device)
    chol = target.new_zeros((steps, steps))
    picks = torch.zeros(steps, dtype=torch.long, device=target.device)
    coef, norms = target.new_zeros(0), []
    for k in range(steps):
        proj = atoms.correlate(resid).masked_fill(taken, -torch.inf)
        j = int(torch.argmax(proj))
        taken[j], picks[k] = True, j
        chosen = picks[: k + 1]
        g = atoms.inner(chosen, j)  # a_S . a_j; its last entry is |a_j|^2
        _extend_cholesky(chol, k, g, lam)
        if k == 0:  # DeepCore's first step: an unregularised projection onto the one atom
            coef = (proj[j] / g[0] if g[0] > 0 else torch.zeros_like(g[0])).reshape(1)
        else:
            coef = torch.cholesky_solve(rhs[chosen][:, None], chol[: k + 1, : k + 1])[:, 0]
        resid = target - atoms.combine(chosen, coef)
        norms.append(float(torch.linalg.vector_norm(resid)))
        if progress is not None:
            progress(k + 1, steps)
    return OmpFit(indices=picks.tolist(), coef=coef, residual_norms=norms)


def _extend_cholesky(chol: Tensor, k: int, g: Tensor, lam: float) -> None:
    """Grow the lower factor of ``A_S A_S^T + lam I`` by atom k, given ``g = A_S a_k``."""
    if k == 0:
        chol[0, 0] = torch.sqrt(g[0] + lam)
        return
    low = torch.linalg.solve_triangular(chol[:k, :k], g[:k, None], upper=False)[:, 0]
    chol[k, :k] = low
    # The Schur complement is >= lam > 0 in exact arithmetic; the clamp guards rounding only.
    chol[k, k] = torch.sqrt(torch.clamp(g[k] + lam - low @ low, min=lam * 1e-12))
