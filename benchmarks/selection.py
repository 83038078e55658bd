"""Selection baselines at scale, side by side with the research code's approach.

    .venv/bin/python benchmarks/selection.py                         # 100k, 300k, 1M x 512
    .venv/bin/python benchmarks/selection.py --sizes 100000 --queries 500

Synthetic data made here: a float32 pool of unit vectors around 1,000 centres (d = 512) and
500 query points around 50 of them; budget = 10% of the pool. For each pool size it times,
in one process, on the same arrays:

- ``image_alignment`` (ours: one matrix-vector product per chunk + a linear-time top-k)
  against the research approach: dense cosine similarity of pool batches of 1,024 rows to all
  query points in a Python loop (torch), mean per row, then top-k;
- ``tsds`` (ours, as published: exact FAISS k-NN, kernel density over the neighbourhoods'
  union by an inverted file done as GEMMs, the water-filling level, sampling) against, at the
  smallest size, a research-style TSDS written after ``baselines/filters/tsds_filter.py``
  (faiss IVFFlat with nlist = sqrt(n)/2 and nprobe 10 for the k-NN and for the density,
  searched with k = 1000, the heap, the probabilities; the distance between its
  probabilities and ours is printed), and at every size the research approach's
  neighbourhood retrieval alone (the batched dense loop with torch.topk);
- ``image_based`` (ours, end to end: FAISS spherical k-means with 100 clusters on a sample,
  assignment of every row, cut to the budget); scikit-learn ``KMeans`` (all rows, 1 init,
  20 iterations) as the peer at the smallest size only with ``--sklearn-kmeans`` (slow).

Targets (issue 8): image_alignment and tsds < 60 s each at 1M x 512 with 500 queries on 2
cores; k-means for image_based < 2 min at 1M.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from harness.selection import SelectionContext, run_selector

try:
    from benchmarks.research_style import research_tsds
except ModuleNotFoundError:  # run as a file (python benchmarks/selection.py): no package
    from research_style import research_tsds  # type: ignore[no-redef]

Arr = npt.NDArray[np.float32]


def make_data(n: int, d: int, m: int, seed: int = 0) -> tuple[Arr, Arr]:
    """A clustered, L2-normalised pool (n, d) and query set (m, d), generated in chunks."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((1000, d), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    pool = np.empty((n, d), dtype=np.float32)
    for lo in range(0, n, 100_000):
        hi = min(lo + 100_000, n)
        block = centres[rng.integers(0, 1000, hi - lo)]
        block += 0.08 * rng.standard_normal((hi - lo, d), dtype=np.float32)
        pool[lo:hi] = block / np.linalg.norm(block, axis=1, keepdims=True)
    query = centres[rng.integers(0, 50, m)] + 0.08 * rng.standard_normal((m, d), dtype=np.float32)
    return pool, query / np.linalg.norm(query, axis=1, keepdims=True)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def research_alignment(pool: Arr, query: Arr, budget: int, batch: int = 1024) -> np.ndarray:
    """The research approach: dense cosine similarity per small batch, in a Python loop."""
    import torch
    import torch.nn.functional as F

    q = F.normalize(torch.from_numpy(query), dim=1)
    scores = []
    for lo in range(0, len(pool), batch):
        x = F.normalize(torch.from_numpy(pool[lo : lo + batch]), dim=1)
        scores.append((x @ q.T).mean(dim=1))
    return torch.topk(torch.cat(scores), budget).indices.numpy()


def research_neighbourhoods(pool: Arr, query: Arr, k: int, batch: int = 1024) -> np.ndarray:
    """The same batched dense loop keeping each query's top-k pool rows (TSDS's retrieval)."""
    import torch
    import torch.nn.functional as F

    q = F.normalize(torch.from_numpy(query), dim=1)
    best_s = torch.full((len(query), 0), -2.0)
    best_i = torch.zeros((len(query), 0), dtype=torch.long)
    for lo in range(0, len(pool), batch):
        x = F.normalize(torch.from_numpy(pool[lo : lo + batch]), dim=1)
        s = torch.cat([best_s, q @ x.T], dim=1)
        i = torch.cat([best_i, torch.arange(lo, lo + len(x)).expand(len(query), -1)], dim=1)
        best_s, top = torch.topk(s, min(k, s.shape[1]), dim=1)
        best_i = torch.gather(i, 1, top)
    return best_i.numpy()


def our_tsds_p(
    pool: Arr, query: Arr, ctx: SelectionContext, *, exact_limit: int
) -> tuple[np.ndarray, dict[str, Any]]:
    """Our TSDS probabilities at the shipped (the research's) parameters; exact densities at
    any size with a large ``exact_limit`` (the reference both are measured against)."""
    from harness.selection import load_baselines
    from harness.selection.tsds import probabilities_for
    from harness.settings import default_configs_dir

    params = load_baselines(default_configs_dir()).method("tsds").resolved_params()
    p, _, info = probabilities_for(pool, query, params | {"exact_limit": exact_limit}, ctx=ctx)
    return p, info


def sklearn_kmeans(pool: Arr, k: int = 100) -> float:
    from sklearn.cluster import KMeans

    seconds, _ = timed(lambda: KMeans(k, n_init=1, max_iter=20, random_state=0).fit(pool))
    return seconds


def run_size(
    n: int, d: int, m: int, *, peers: bool, kmeans_peer: bool, tsds_peer: bool
) -> dict[str, float]:
    gen, (pool, query) = timed(lambda: make_data(n, d, m))
    budget = n // 10
    ctx = SelectionContext.from_arrays(pool={"image": pool}, query={"image": query})
    row: dict[str, float] = {"n": n, "generate": gen}
    row["align"], out = timed(
        lambda: run_selector(ctx, "image_alignment", budget, seed=0, params={})
    )
    row["tsds"], ts = timed(lambda: run_selector(ctx, "tsds", budget, seed=0, params={}))
    row["image_based"], _ = timed(
        lambda: run_selector(ctx, "image_based", budget, seed=0, params={})
    )
    if peers:
        row["align_peer"], peer_rows = timed(lambda: research_alignment(pool, query, budget))
        row["align_agree"] = len(np.intersect1d(out.rows, peer_rows)) / budget
        k = int(ts.metadata["neighbours"])
        row["knn_peer"], _ = timed(lambda: research_neighbourhoods(pool, query, k))
    if tsds_peer:
        row["tsds_peer"], p_peer = timed(lambda: research_tsds(pool, query))
        p_ours, info = our_tsds_p(pool, query, ctx, exact_limit=50_000)
        p_exact, _ = our_tsds_p(pool, query, ctx, exact_limit=10**9)
        row["tsds_union"] = info["union"]
        row["tsds_l1"] = float(np.abs(p_ours - p_peer).sum())
        row["tsds_l1_ours_exact"] = float(np.abs(p_ours - p_exact).sum())
        row["tsds_l1_peer_exact"] = float(np.abs(p_peer - p_exact).sum())
    if kmeans_peer:
        row["kmeans_peer"] = sklearn_kmeans(pool)
    return row


def _ratio(r: dict[str, float], ours: str, peer: str) -> str:
    return f"{r[peer] / r[ours]:6.1f}x" if peer in r else "     -"


def _val(r: dict[str, float], key: str, width: int) -> str:
    return f"{r[key]:{width}.2f}" if key in r else " " * (width - 1) + "-"


def report(rows: list[dict[str, float]]) -> None:
    print(
        f"\n{'pool':>9} {'align':>8} {'peer':>8} {'ratio':>7} {'agree':>6} | "
        f"{'tsds':>8} {'peer-kNN':>9} {'ratio':>7} {'peer-TSDS':>9} {'ratio':>7} | "
        f"{'img_based':>9} {'sk-KMeans':>9}"
    )
    for r in rows:
        print(
            f"{int(r['n']):>9,} {_val(r, 'align', 8)} {_val(r, 'align_peer', 8)} "
            f"{_ratio(r, 'align', 'align_peer')} {_val(r, 'align_agree', 6)} | "
            f"{_val(r, 'tsds', 8)} {_val(r, 'knn_peer', 9)} {_ratio(r, 'tsds', 'knn_peer')} "
            f"{_val(r, 'tsds_peer', 9)} {_ratio(r, 'tsds', 'tsds_peer')} | "
            f"{_val(r, 'image_based', 9)} {_val(r, 'kmeans_peer', 9)}"
        )
    first, last = rows[0], rows[-1]
    grow = last["n"] / first["n"]
    print(
        f"\nscaling {int(first['n']):,} -> {int(last['n']):,} rows ({grow:.0f}x): "
        f"image_alignment {last['align'] / first['align']:.1f}x, "
        f"tsds {last['tsds'] / first['tsds']:.1f}x, "
        f"image_based {last['image_based'] / first['image_based']:.1f}x"
    )
    if "tsds_l1" in first:
        print(
            f"tsds probabilities at {int(first['n']):,} (union of neighbourhoods "
            f"{int(first['tsds_union']):,} rows): L1 distance ours vs research-style "
            f"{first['tsds_l1']:.3f}; against exact densities: ours "
            f"{first['tsds_l1_ours_exact']:.3f}, research-style {first['tsds_l1_peer_exact']:.3f}"
        )
    print(
        "targets at 1M x 512, 500 queries: image_alignment < 60 s, tsds < 60 s, "
        "image_based k-means < 120 s (seconds above; ratio = peer / ours)"
    )


def main() -> None:
    import faiss
    import torch

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--queries", type=int, default=500)
    p.add_argument("--no-peers", action="store_true", help="time our methods only")
    p.add_argument(
        "--sklearn-kmeans",
        action="store_true",
        help="also time sklearn KMeans at the smallest size",
    )
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(
        f"threads: faiss {faiss.omp_get_max_threads()}, torch {torch.get_num_threads()}; "
        f"faiss GPUs: {faiss.get_num_gpus()}; budget = 10% of the pool"
    )
    rows = []
    for i, n in enumerate(sorted(args.sizes)):
        row = run_size(
            n,
            args.dim,
            args.queries,
            peers=not args.no_peers,
            kmeans_peer=i == 0 and args.sklearn_kmeans,
            tsds_peer=i == 0 and not args.no_peers,
        )
        rows.append(row)
        print({k: round(v, 3) for k, v in row.items()}, flush=True)
    report(rows)


if __name__ == "__main__":
    main()
