"""Multinomial logistic regression with scikit-learn's objective, solved by L-BFGS in torch.

Minimises the objective of ``sklearn.linear_model.LogisticRegression(C=C)`` (lbfgs solver)::

    C * sum_i CE(softmax(x_i W + b), y_i) + 0.5 * ||W||^2        (intercept not penalised)

in the scaling sklearn uses (divided by C * n), with sklearn's stopping rule: the largest
absolute gradient entry, in raw feature coordinates, at most ``tol``::

    fit = fit_logreg(x, y, n_classes=10, C=0.75, tol=1e-4, max_iter=1000)
    pred = predict_logreg(fit, x_test)        # int64 class indices

Why it is faster than sklearn at the same optimum (see benchmarks/linear_probe.py):

- float32 GEMMs (twice the float64 rate) with the class dimension padded to a multiple of 32,
  which keeps MKL's skinny-GEMM kernels efficient; padded classes are masked out exactly.
- Features are centred (an exact reparametrisation: the intercept absorbs the mean), which
  improves the conditioning L-BFGS sees; the coefficients returned are in raw coordinates.
- A line search that costs no GEMM: logits along the direction are ``Z + t * XD`` with ``XD``
  computed once per iteration, and the directional derivative is a reduction over
  ``softmax - onehot`` and ``XD``. One iteration costs exactly two GEMMs (``X @ D`` and
  ``X.T @ R``), however many step lengths the line search tries.
- The L-BFGS vectors (d x classes) live in float64 numpy: exact enough near the optimum and
  free of thread start-up costs for small vector operations.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

log = logging.getLogger(__name__)

_PAD = 32
_C1, _C2 = 1e-4, 0.9  # Wolfe constants of scipy's L-BFGS-B line search
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class LogRegFit:
    """Coefficients in raw feature coordinates: logits = x @ coef + intercept."""

    coef: F64  # (d, n_classes)
    intercept: F64  # (n_classes,)
    n_iter: int
    converged: bool
    grad_max: float
    gemms: int  # GEMMs of size n x d x padded classes performed (for FLOP accounting)


class _Problem:
    """Data term and its derivatives on centred features, in torch on the data's device."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, n_classes: int) -> None:
        self.x, self.y = x, y[:, None]
        self.n, self.k = x.shape[0], n_classes
        self.kp = -(-n_classes // _PAD) * _PAD
        self.gemms = 0

    def to_torch(self, m: F64, *, pad: float = 0.0) -> torch.Tensor:
        """A (rows, k) float64 array as a (rows, kp) tensor, ``pad`` in the padded columns."""
        out = torch.full((m.shape[0], self.kp), pad, dtype=self.x.dtype)
        out[:, : self.k] = torch.from_numpy(m)
        return out.to(self.x.device)

    def scores(
        self, w: F64, b: F64, *, pad: float, out: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``x @ w + b`` with ``pad`` in the padded columns (-inf for logits: probability 0).

        The intercept is added after the GEMM: a broadcast bias in addmm halves MKL's speed.
        ``out`` reuses memory: fresh large tensors cost a page fault per 4 KiB here.
        """
        self.gemms += 1
        z = (
            torch.mm(self.x, self.to_torch(w), out=out)
            if out is not None
            else self.x @ self.to_torch(w)
        )
        return z.add_(self.to_torch(b[None], pad=pad))

    def data_loss(self, z: torch.Tensor, out: torch.Tensor) -> tuple[float, torch.Tensor]:
        """Mean cross-entropy at logits ``z`` and the residual ``softmax - onehot`` (not / n).

        The residual is written into ``out`` (may be ``z``): one fused log-softmax kernel and
        one exp, fewer passes over n x classes than max/sub/exp/sum/div.
        """
        logp = torch.ops.aten._log_softmax.out(z, 1, False, out=out)
        picked = logp.gather(1, self.y)
        data = -float(picked.sum(dtype=torch.float64)) / self.n
        r = logp.exp_()
        r.scatter_add_(1, self.y, torch.full_like(picked, -1.0))
        return data, r

    def gradient(self, r: torch.Tensor) -> tuple[F64, F64]:
        """Data-term gradient w.r.t. (W, b) from a residual, as float64 arrays."""
        self.gemms += 1
        gw = (self.x.T @ r)[:, : self.k]
        gb = r.sum(0)[: self.k]
        return gw.double().cpu().numpy() / self.n, gb.double().cpu().numpy() / self.n


def fit_logreg(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    n_classes: int,
    C: float,
    tol: float = 1e-4,
    max_iter: int = 1000,
    history: int = 10,
) -> LogRegFit:
    """Fit on ``x`` (n, d) float and ``y`` (n,) int64 class indices in ``[0, n_classes)``."""
    from threadpoolctl import threadpool_limits

    n, d = x.shape
    mu_t = x.mean(0)
    prob = _Problem(x - mu_t, y, n_classes)
    mu = mu_t.double().cpu().numpy()
    w, b = np.zeros((d, n_classes)), np.zeros(n_classes)
    # numpy's BLAS threads would fight torch's for the cores on the small L-BFGS products.
    with threadpool_limits(limits=1, user_api="blas"):
        w, b, it, gmax = _solve(
            prob, w, b, _Lbfgs(history), lam=1.0 / (C * n), mu=mu, tol=tol, max_iter=max_iter
        )
    intercept = b - mu @ w  # undo the centring
    return LogRegFit(w, intercept, it, gmax <= tol, gmax, prob.gemms)


def _solve(
    prob: _Problem,
    w: F64,
    b: F64,
    solver: _Lbfgs,
    *,
    lam: float,
    mu: F64,
    tol: float,
    max_iter: int,
) -> tuple[F64, F64, int, float]:
    """L-BFGS from (w, b) with ``solver``'s memory until max |grad| <= tol: (w, b, iters, max)."""
    d = w.shape[0]
    z = prob.scores(w, b, pad=-math.inf)
    f, r = prob.data_loss(z, torch.empty_like(z))
    f += 0.5 * lam * float((w * w).sum())
    g = _grad(prob, r, w, lam)
    del r
    bufs = (torch.empty_like(z), torch.empty_like(z))
    xd = torch.empty_like(z)
    it, gmax = 0, _grad_max(g, mu, d)
    while gmax > tol and it < max_iter:
        direction = solver.direction(g, first=it == 0)
        dw, db = _split(direction, d)
        prob.scores(dw, db, pad=0.0, out=xd)
        ls = _LineSearch(prob, z, xd, bufs, lam=lam, w=w, dw=dw)
        step, f_new, r = ls.run(f, float(g @ direction))
        if step == 0.0:
            log.warning("logreg line search made no progress at iteration %d; stopping", it)
            break
        z.add_(xd, alpha=step)
        w, b = w + step * dw, b + step * db
        g_new = _grad(prob, r, w, lam)
        solver.update(step * direction, g_new - g)
        f, g, it = f_new + 0.5 * lam * float((w * w).sum()), g_new, it + 1
        gmax = _grad_max(g, mu, d)
    return w, b, it, gmax


def predict_logreg(fit: LogRegFit, x: npt.NDArray[np.floating]) -> npt.NDArray[np.int64]:
    """Class index with the highest logit for each row of ``x``."""
    logits = np.asarray(x, np.float64) @ fit.coef + fit.intercept
    return logits.argmax(1).astype(np.int64)


def _grad(prob: _Problem, r: torch.Tensor, w: F64, lam: float) -> F64:
    gw, gb = prob.gradient(r)
    return np.concatenate([(gw + lam * w).ravel(), gb])


def _split(v: F64, d: int) -> tuple[F64, F64]:
    k = (len(v)) // (d + 1)
    return v[: d * k].reshape(d, k), v[d * k :]


def _grad_max(g: F64, mu: F64, d: int) -> float:
    """Max |gradient| in raw coordinates: d/dW_raw = d/dW_centred + mu (x) d/db."""
    gw, gb = _split(g, d)
    return float(max(np.abs(gw + np.outer(mu, gb)).max(), np.abs(gb).max()))


class _Lbfgs:
    """Two-loop recursion over the last ``history`` curvature pairs."""

    def __init__(self, history: int) -> None:
        self.history = history
        self.pairs: list[tuple[F64, F64, float]] = []

    def direction(self, g: F64, *, first: bool) -> F64:
        if not self.pairs:
            # First step as scipy does: steepest descent scaled to unit length.
            return -g / max(float(np.linalg.norm(g)), 1e-12) if first else -g
        q = -g
        alphas = []
        for s, yv, rho in reversed(self.pairs):
            a = rho * float(s @ q)
            q = q - a * yv
            alphas.append(a)
        s, yv, _ = self.pairs[-1]
        q = q * (float(s @ yv) / float(yv @ yv))
        for (s, yv, rho), a in zip(self.pairs, reversed(alphas), strict=True):
            q = q + (a - rho * float(yv @ q)) * s
        return q

    def update(self, s: F64, yv: F64) -> None:
        sy = float(s @ yv)
        if sy <= 1e-10 * float(yv @ yv):  # a pair that would break positive definiteness
            return
        self.pairs.append((s, yv, 1.0 / sy))
        if len(self.pairs) > self.history:
            self.pairs.pop(0)


class _LineSearch:
    """Strong-Wolfe search along a direction; every trial step is elementwise work only."""

    def __init__(
        self,
        prob: _Problem,
        z: torch.Tensor,
        xd: torch.Tensor,
        bufs: tuple[torch.Tensor, torch.Tensor],
        *,
        lam: float,
        w: F64,
        dw: F64,
    ) -> None:
        self.prob, self.z, self.xd = prob, z, xd
        # Two scratch residuals: a trial writes into the one not holding the best so far.
        self.bufs, self.free = bufs, 0
        # The penalty along the line is a quadratic in t: three numbers, no tensors.
        self.lam, self.ww, self.wd, self.dd = (
            lam,
            float((w * w).sum()),
            float((w * dw).sum()),
            float((dw * dw).sum()),
        )

    def phi(self, t: float) -> tuple[float, float, torch.Tensor]:
        """Objective, its slope in t, and the residual at step ``t``."""
        buf = self.bufs[self.free]
        f, r = self.prob.data_loss(torch.add(self.z, self.xd, alpha=t, out=buf), buf)
        # d/dt of the data term: <residual, x @ dw + db> / n, one fused pass (padded: 0 * 0).
        data = float(torch.dot(r.view(-1), self.xd.view(-1))) / self.prob.n
        pen = 0.5 * self.lam * (self.ww + 2 * t * self.wd + t * t * self.dd)
        return f + pen, data + self.lam * (self.wd + t * self.dd), r

    def run(
        self, f0: float, slope0: float, max_evals: int = 25
    ) -> tuple[float, float, torch.Tensor]:
        """(step, data loss, residual); step 0 when no acceptable step was found."""
        empty = torch.empty(0)
        if slope0 >= 0:
            return 0.0, f0, empty
        lo, f_lo, hi, t = 0.0, f0, math.inf, 1.0
        best: tuple[float, float, torch.Tensor] = (0.0, f0, empty)
        for _ in range(max_evals):
            f, slope, r = self.phi(t)
            if f > f0 + _C1 * t * slope0 or f >= f_lo:
                hi = t
            elif abs(slope) <= -_C2 * slope0:
                return t, self._data(f, t), r
            else:
                best = (t, self._data(f, t), r)
                self.free = 1 - self.free
                if slope * (hi - lo) >= 0:
                    hi = lo  # the minimiser lies between t and the old low end
                lo, f_lo = t, f
            if math.isinf(hi):
                t *= 2
            elif abs(hi - lo) <= 1e-10 * max(lo, hi):
                break
            else:
                t = 0.5 * (lo + hi)
        return best

    def _data(self, f: float, t: float) -> float:
        return f - 0.5 * self.lam * (self.ww + 2 * t * self.wd + t * t * self.dd)
