"""Linear probe vs scikit-learn, side by side in one run; and the demo scored through the CLI.

    .venv/bin/python benchmarks/linear_probe.py                 # 100k x 512, 100 classes + demo
    .venv/bin/python benchmarks/linear_probe.py --n 20000 --skip-demo

Prints, for the synthetic problem (overlapping class clusters on the unit sphere with a shared
offset, like raw CLIP features): the machine's measured GEMM rate, each solver's wall time,
iterations, test accuracy, GFLOP per iteration and its achieved rate against that GEMM rate
(times: the best of ``--repeat`` fits of each solver); the speed ratio and the accuracy
difference. Then the wall time of
``tdc-harness evaluate`` on a 10% random demo subset with the linear probe on all four tasks
(a fresh process: imports, validation, training, scoring, JSON).

Targets (issue 4): ratio >= 4 at |accuracy difference| <= 0.3 pp; demo < 5 s end to end.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def gemm_rate(dtype: str, size: int = 2048, repeat: int = 3) -> float:
    """Best GFLOP/s of a square torch matmul in ``dtype`` on this machine (all threads)."""
    import torch

    t = getattr(torch, dtype)
    a, b = torch.randn(size, size, dtype=t), torch.randn(size, size, dtype=t)
    a @ b
    best = min(_timed(lambda: a @ b)[1] for _ in range(repeat))
    return 2 * size**3 / best / 1e9


def _timed(fn, repeat: int = 1):  # type: ignore[no-untyped-def]
    """(result, best wall time of ``repeat`` runs): the minimum is the least noisy estimate."""
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return out, best


def synthetic(n: int, d: int, k: int, *, seed: int, draw: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d)) / np.sqrt(d)
    offset = 2 * rng.normal(size=d) / np.sqrt(d)
    rng = np.random.default_rng([seed, draw])
    y = rng.integers(0, k, n)
    x = offset + centers[y] + 6 * rng.normal(size=(n, d)) / np.sqrt(d)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), y


def run_sklearn(xtr, ytr, xte, yte, c, repeat):  # type: ignore[no-untyped-def]
    from sklearn.linear_model import LogisticRegression

    clf, secs = _timed(lambda: LogisticRegression(C=c, max_iter=1000).fit(xtr, ytr), repeat)
    return secs, int(clf.n_iter_[0]), float((clf.predict(xte) == yte).mean())


def run_ours(xtr, ytr, xte, yte, c, k, repeat):  # type: ignore[no-untyped-def]
    import torch

    from harness.recipes.logreg import fit_logreg, predict_logreg

    fit, secs = _timed(
        lambda: fit_logreg(torch.from_numpy(xtr), torch.from_numpy(ytr), n_classes=k, C=c),
        repeat,
    )
    return secs, fit.n_iter, float((predict_logreg(fit, xte) == yte).mean()), fit


def synthetic_benchmark(args: argparse.Namespace) -> None:
    import torch

    print(f"torch threads: {torch.get_num_threads()}, CPUs: {os.cpu_count()}")
    peak32, peak64 = gemm_rate("float32"), gemm_rate("float64")
    print(f"machine GEMM rate (2048^2 torch matmul): float32 {peak32:.1f} GFLOP/s, "
          f"float64 {peak64:.1f} GFLOP/s")  # fmt: skip
    n, d, k = args.n, args.d, args.classes
    xtr, ytr = synthetic(n, d, k, seed=0, draw=0)
    xte, yte = synthetic(n // 5, d, k, seed=0, draw=1)
    print(f"\nsynthetic: train {n} x {d}, {k} classes, test {len(xte)}; C={args.C}")
    print(f"each solver timed {args.repeat} times, best kept")
    ours_s, ours_it, ours_acc, fit = run_ours(xtr, ytr, xte, yte, args.C, k, args.repeat)
    sk_s, sk_it, sk_acc = run_sklearn(xtr, ytr, xte, yte, args.C, args.repeat)
    kp = -(-k // 8) * 8  # classes padded to a multiple of 8 inside the solver
    # ours: exactly two GEMMs (n x d x kp) per iteration (plus the covariance of <= 16k rows
    # for the preconditioner, not counted); sklearn: at least two (n x d x k)
    # per iteration (one loss+gradient evaluation; line-search retries add more).
    ours_gf = 4 * n * d * kp / 1e9
    sk_gf = 4 * n * d * k / 1e9
    rows = [
        ("ours (subspace Newton)", ours_s, ours_it, ours_acc, ours_gf, peak32),
        ("sklearn lbfgs", sk_s, sk_it, sk_acc, sk_gf, peak32),  # X is float32: so is sklearn
    ]
    print(f"{'solver':22s} {'time s':>8s} {'iters':>6s} {'test acc':>9s} {'GFLOP/it':>9s} "
          f"{'s/it':>7s} {'GFLOP/s':>8s} {'% of GEMM peak':>15s}")  # fmt: skip
    for name, secs, it, acc, gf, peak in rows:
        rate = gf * it / secs
        print(f"{name:22s} {secs:8.2f} {it:6d} {acc:9.4f} {gf:9.2f} {secs / it:7.3f} "
              f"{rate:8.1f} {100 * rate / peak:14.1f}%")  # fmt: skip
    print(f"(ours: {fit.gemms} GEMMs in all, converged={fit.converged}, "
          f"max|grad|={fit.grad_max:.2e})")  # fmt: skip
    print(f"\nspeed ratio sklearn/ours: {sk_s / ours_s:.2f}x (target >= 4x)")
    print(f"accuracy difference: {100 * (ours_acc - sk_acc):+.2f} pp (target within +-0.30 pp)")


def demo_benchmark() -> None:
    """Wall time of one `tdc-harness evaluate` process on a demo subset, all four tasks."""
    from harness.datasets import Dataset
    from harness.settings import HarnessSettings
    from harness.specs import load_benchmark
    from submissions.subset_file import write_subset_file

    settings = HarnessSettings()
    spec = load_benchmark(settings.configs_dir).dataset("demo")
    data_root = settings.data_root
    tmp = Path(tempfile.mkdtemp(prefix="tdc-bench-"))
    try:
        ds = Dataset.open(spec, data_root=data_root)
        ds.embeddings("train")
    except Exception:  # not prepared here: prepare a private copy (not timed)
        from harness.datasets.preparers import prepare_dataset
        from harness.embed import embed_dataset

        data_root = tmp / "data"
        settings = HarnessSettings(data_root=data_root)
        ds = prepare_dataset(spec=spec, settings=settings)
        embed_dataset(ds=ds, settings=settings)
    rows = np.random.default_rng(0).choice(ds.pool_size, int(0.1 * ds.pool_size), replace=False)
    sub = write_subset_file(tmp / "sub.npy", ds.uids("train")[np.sort(rows)])
    cli = Path(sys.executable).parent / "tdc-harness"
    cmd = [str(cli), "evaluate", str(sub), "--dataset", "demo", "--fraction", "0.1",
           "--out", str(tmp / "result.json")]  # fmt: skip
    env = {**os.environ, "TDC_DATA_ROOT": str(data_root)}
    subprocess.run(cmd, env=env, check=True, capture_output=True)  # warm the page cache
    _, secs = _timed(lambda: subprocess.run(cmd, env=env, check=True, capture_output=True))
    print(f"\ndemo: `tdc-harness evaluate` (10% subset, linear probe, 4 tasks): {secs:.2f}s "
          f"end to end (target < 5 s)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--d", type=int, default=512)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--C", type=float, default=0.75)
    parser.add_argument("--repeat", type=int, default=3, help="timed fits per solver")
    parser.add_argument("--skip-demo", action="store_true")
    parser.add_argument("--skip-synthetic", action="store_true")
    args = parser.parse_args()
    if not args.skip_synthetic:
        synthetic_benchmark(args)
    if not args.skip_demo:
        demo_benchmark()


if __name__ == "__main__":
    main()
