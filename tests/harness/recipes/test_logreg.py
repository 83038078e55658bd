"""The torch L-BFGS logistic regression reaches scikit-learn's optimum and accuracy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from harness.datasets import Dataset
from harness.recipes.logreg import fit_logreg, predict_logreg


def objective(
    coef: np.ndarray, intercept: np.ndarray, x: np.ndarray, y: np.ndarray, C: float
) -> float:
    """C * sum of cross-entropies + 0.5 ||W||^2: the objective sklearn minimises."""
    z = x.astype(np.float64) @ coef + intercept
    z -= z.max(1, keepdims=True)
    ce = np.log(np.exp(z).sum(1)) - z[np.arange(len(y)), y]
    return float(C * ce.sum() + 0.5 * (coef**2).sum())


def clusters(n: int, d: int, k: int, seed: int, draw: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping class clusters on the unit sphere with a shared offset, like CLIP features.

    ``seed`` fixes the clusters, ``draw`` the sample drawn from them.
    """
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d)) / np.sqrt(d)
    offset = 2 * rng.normal(size=d) / np.sqrt(d)
    rng = np.random.default_rng([seed, draw])
    y = rng.integers(0, k, n)
    x = offset + centers[y] + 4 * rng.normal(size=(n, d)) / np.sqrt(d)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), y


def compare(xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, yte: np.ndarray, k: int) -> None:
    sk = LogisticRegression(C=0.75, max_iter=1000).fit(xtr, ytr)
    fit = fit_logreg(torch.from_numpy(xtr), torch.from_numpy(ytr), n_classes=k, C=0.75)
    assert fit.converged and fit.grad_max <= 1e-4
    ours_acc = (predict_logreg(fit, xte) == yte).mean()
    sk_acc = (sk.predict(xte) == yte).mean()
    assert abs(ours_acc - sk_acc) <= 0.003
    f_ours = objective(fit.coef, fit.intercept, xtr, ytr, 0.75)
    f_sk = objective(sk.coef_.T, sk.intercept_, xtr, ytr, 0.75)
    # Both stop at max |grad| <= 1e-4 of the objective / (C n): equal optima to that accuracy.
    assert abs(f_ours - f_sk) <= 1e-3 * f_sk


def test_matches_sklearn_on_the_tiny_dataset(tiny_dataset: Dataset) -> None:
    pool = np.array(tiny_dataset.split("train")["label"])
    test = np.array(tiny_dataset.split("test1")["label"])
    compare(np.array(tiny_dataset.embeddings("train")), pool,
            np.array(tiny_dataset.embeddings("test1")), test, 3)  # fmt: skip


@pytest.mark.parametrize("k", [10, 33])  # 33 classes: padded to 64 inside the solver
def test_matches_sklearn_on_overlapping_clusters(k: int) -> None:
    xtr, ytr = clusters(2000, 32, k, seed=k)
    xte, yte = clusters(2000, 32, k, seed=k, draw=1)
    compare(xtr, ytr, xte, yte, k)


def test_float64_and_float32_agree() -> None:
    x, y = clusters(1000, 16, 5, seed=1)
    a = fit_logreg(torch.from_numpy(x), torch.from_numpy(y), n_classes=5, C=0.75, tol=1e-5)
    b = fit_logreg(torch.from_numpy(x).double(), torch.from_numpy(y), n_classes=5, C=0.75,
                   tol=1e-5)  # fmt: skip
    assert a.converged and b.converged
    np.testing.assert_allclose(a.coef, b.coef, rtol=1e-3, atol=1e-3)
    # two GEMMs per iteration however many trial points; none at 0 (logits and gradient known)
    assert a.gemms == 2 * a.n_iter


def test_max_iter_is_honoured() -> None:
    x, y = clusters(500, 16, 5, seed=2)
    fit = fit_logreg(torch.from_numpy(x), torch.from_numpy(y), n_classes=5, C=0.75, max_iter=2)
    assert fit.n_iter == 2 and not fit.converged


def test_blas_thread_limit_is_scoped_to_the_fit() -> None:
    """The fit limits numpy's BLAS to one thread (no fight with torch) and restores it."""
    from threadpoolctl import threadpool_info

    before = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
    x, y = clusters(300, 8, 3, seed=3)
    fit = fit_logreg(torch.from_numpy(x), torch.from_numpy(y), n_classes=3, C=0.75)
    assert fit.converged
    assert [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"] == before


def test_reaches_sklearns_optimum_on_badly_scaled_features() -> None:
    """Features scaled over 400x: many iterations through the reused, aliased buffers.

    A wrong residual (log-softmax written over its input) would give a wrong gradient and
    no convergence to sklearn's optimum.
    """
    x, y = clusters(1500, 24, 7, seed=4)
    x = x * np.linspace(0.05, 20.0, 24, dtype=np.float32)
    sk = LogisticRegression(C=0.75, max_iter=5000).fit(x, y)
    fit = fit_logreg(torch.from_numpy(x), torch.from_numpy(y), n_classes=7, C=0.75, max_iter=5000)
    assert fit.converged
    f_ours = objective(fit.coef, fit.intercept, x, y, 0.75)
    f_sk = objective(sk.coef_.T, sk.intercept_, x, y, 0.75)
    assert f_ours <= f_sk * (1 + 1e-3)


def test_subspace_steps_keep_logits_products_and_residual_exact() -> None:
    """The solver's reused buffers stay equal to fresh computations step after step.

    Logits, the stored X-products of the last step and of the current point, and the residual
    left in the scratch buffer (read by the next step's Hessian before any trial overwrites
    it) are all updated in place; a missed or aliased update shows here directly.
    """
    from harness.recipes import logreg

    x_np, y_np = clusters(400, 12, 5, seed=5)
    x = torch.from_numpy(x_np).double()
    y = torch.from_numpy(y_np)
    prob = logreg._Problem(x, y, 5, mu=x.mean(0).numpy())
    xc = x - x.mean(0)
    lam, d = 1.0 / (0.75 * 400), 12
    sub = logreg._Subspace(prob, lam=lam)
    f, r = prob.data_loss(sub.z, sub.scratch)
    w, b = np.zeros((d, 5)), np.zeros(5)
    g, s = logreg._grad(prob, r, w, lam), np.zeros(d * 5 + 5)
    np.testing.assert_allclose(np.concatenate([*map(np.ravel, prob.gradient_at_zero())]), g)
    for it in range(4):
        dirs = [-g, s, np.concatenate([w.ravel(), b])][: min(it + 1, 3)]
        prob.scores(*logreg._split(-g, d), pad=0.0, out=sub.xd[0])
        step = sub.step(np.stack(dirs), g, r, f, w=w)
        assert step is not None
        s_new, f, r = step
        w, b = w + logreg._split(s_new, d)[0], b + logreg._split(s_new, d)[1]
        z = (xc @ torch.from_numpy(w) + torch.from_numpy(b)).numpy()
        np.testing.assert_allclose(sub.z[:, :5].numpy(), z, atol=1e-9)
        np.testing.assert_allclose(sub.xd[2, :, :5].numpy(), z, atol=1e-9)
        xs = (xc @ torch.from_numpy(logreg._split(s_new, d)[0])).numpy()
        np.testing.assert_allclose(sub.xd[1, :, :5].numpy(), xs + logreg._split(s_new, d)[1])
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        p[np.arange(len(y_np)), y_np] -= 1.0
        assert r.data_ptr() == sub.scratch.data_ptr()
        np.testing.assert_allclose(r[:, :5].numpy(), p, atol=1e-9)
        assert abs(f - objective(w, b, xc.numpy(), y_np, 0.75) * lam) <= 1e-9
        g, s = logreg._grad(prob, r, w, lam), s_new
