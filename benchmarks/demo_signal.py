"""Does the demo benchmark have a signal? Task-aware selection vs random vs the whole pool.

    .venv/bin/python benchmarks/demo_signal.py [--fractions 0.05 0.1 0.25] [--seeds 5]

Prepares and embeds the demo under TDC_DATA_ROOT if needed, then, for every task and
fraction, trains scikit-learn ``LogisticRegression(C=0.75, max_iter=1000)`` (the linear-probe
recipe of the research) on the pool ``pixel_pca`` image embeddings of a subset and prints
test accuracy for:

- ``random``: a uniform random subset (mean and std over ``--seeds`` seeds);
- ``pool``: the whole pool (no selection at all);
- ``align``: the pool samples with the highest mean cosine similarity to the query images;
- ``knn``: round-robin over query images, each adding its nearest pool samples not yet taken;
- ``labels``: a random subset of the pool samples whose label occurs in the query set.

These are reference selections written here in a few lines, so that the design check does
not depend on the selection package; the benchmark's own baselines live in harness.selection.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import numpy.typing as npt

from harness.datasets.preparers import prepare_dataset
from harness.embed import embed_dataset
from harness.settings import HarnessSettings
from harness.specs import load_benchmark

Rows = npt.NDArray[np.int64]


def align(pool: npt.NDArray[np.float32], query: npt.NDArray[np.float32], budget: int) -> Rows:
    score = (pool @ query.mean(axis=0)).astype(np.float64)
    return np.sort(np.argsort(-score, kind="stable")[:budget])


def knn(pool: npt.NDArray[np.float32], query: npt.NDArray[np.float32], budget: int) -> Rows:
    order = np.argsort(-(pool @ query.T), axis=0, kind="stable")  # (n_pool, n_query)
    flat = order.reshape(-1)  # rank 0 of every query, then rank 1, ...
    _, first = np.unique(flat, return_index=True)
    return np.sort(flat[np.sort(first)[:budget]])


def accuracy(x: npt.NDArray[np.float32], y: Rows, rows: Rows, xt: npt.NDArray[np.float32],
             yt: Rows) -> float:  # fmt: skip
    from sklearn.linear_model import LogisticRegression

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = LogisticRegression(C=0.75, max_iter=1000).fit(x[rows], y[rows])
    return float((model.predict(xt) == yt).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.05, 0.1, 0.25])
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    settings = HarnessSettings()
    spec = load_benchmark(settings.configs_dir).dataset("demo")
    ds = prepare_dataset(spec=spec, settings=settings)
    embed_dataset(ds=ds, settings=settings)
    x, y = ds.embeddings(spec.pool), ds.split(spec.pool)["label"].to_numpy()
    start = time.perf_counter()
    print(f"{'fraction':>8} {'task':>5} {'random':>13} {'pool':>6} {'align':>6} {'knn':>6} "
          f"{'labels':>6}")  # fmt: skip
    for fraction in args.fractions:
        budget = spec.budget(fraction, pool_size=len(y))
        for task in spec.tasks:
            q, qy = ds.embeddings(task.query), ds.split(task.query)["label"].to_numpy()
            xt, yt = ds.embeddings(task.test), ds.split(task.test)["label"].to_numpy()
            rand = [
                accuracy(x, y, np.random.default_rng(s).choice(len(y), budget, replace=False),
                         xt, yt)
                for s in range(args.seeds)
            ]  # fmt: skip
            matching = np.flatnonzero(np.isin(y, qy))
            labels = np.random.default_rng(0).choice(
                matching, min(budget, len(matching)), replace=False
            )
            subsets = (np.arange(len(y)), align(x, q, budget), knn(x, q, budget), labels)
            cols = [accuracy(x, y, r, xt, yt) for r in subsets]
            print(f"{fraction:>8g} {task.name:>5} {np.mean(rand):.3f}±{np.std(rand):.3f} "
                  + " ".join(f"{c:6.3f}" for c in cols))  # fmt: skip
    print(f"({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
