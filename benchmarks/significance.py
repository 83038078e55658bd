"""Intervals and tied groups of a whole board (target: < 1 s, computed once per change).

    .venv/bin/python -m benchmarks.significance
    .venv/bin/python -m benchmarks.significance --entries 500 --examples 1600 --repeats 5

The board of 10,000 submissions as the issue sizes it: ``--entries`` entries (500), 4 tasks of
``--examples`` test examples (1,600), 3 seeds, 1,000 resamples, 0/1 outcomes. Side by side in
one run:

- ours: :func:`submissions.significance.significance` (one shared count matrix per task, one
  matmul for all entries, percentile intervals, the groups walk);
- the peer, a per-entry bootstrap loop as research code writes it (``np.random.choice`` per
  resample, per task, per entry; intervals only, unpaired, no groups), timed on ``--peer``
  entries and extrapolated linearly to the board;
- ``scipy.stats.bootstrap`` (vectorized, percentile method) per entry and task on the
  seed-mean outcomes, likewise timed on a subset and extrapolated; also intervals only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from submissions.resampling import RESAMPLES
from submissions.significance import group_label, significance

TASKS = ("test1", "test2", "test3", "test4")
SEEDS = 3
TARGET_S = 1.0

Board = dict[str, dict[str, npt.NDArray[np.float32]]]


def make_board(*, entries: int, examples: int, rng: np.random.Generator) -> Board:
    """0/1 outcomes: per-entry skill, per-example difficulty, a little per-seed noise."""
    skill = rng.uniform(0.55, 0.9, entries)
    difficulty = {t: rng.random(examples) for t in TASKS}
    board: Board = {}
    for i in range(entries):
        noise = rng.normal(0.0, 0.01, SEEDS)
        board[f"team{i:04d}"] = {
            t: (difficulty[t][None, :] < skill[i] + noise[:, None]).astype(np.float32)
            for t in TASKS
        }
    return board


def strict_order(board: Board) -> list[str]:
    return sorted(board, key=lambda k: (-float(np.mean([board[k][t] for t in TASKS])), k))


def naive_loop(board: Mapping[str, Mapping[str, npt.NDArray[np.float32]]]) -> None:
    """The peer: a fresh resample per replicate, per task, per entry."""
    rng = np.random.default_rng(0)
    for per_task in board.values():
        reps = np.empty((RESAMPLES, len(TASKS)))
        for j, t in enumerate(TASKS):
            values = per_task[t]
            n = values.shape[1]
            for b in range(RESAMPLES):
                idx = rng.choice(n, size=n, replace=True)
                reps[b, j] = values[:, idx].mean()
        np.percentile(reps.mean(axis=1), [2.5, 97.5])
        np.percentile(reps, [2.5, 97.5], axis=0)


def scipy_bootstrap(board: Mapping[str, Mapping[str, npt.NDArray[np.float32]]]) -> None:
    from scipy.stats import bootstrap

    rng = np.random.default_rng(0)
    for per_task in board.values():
        for t in TASKS:
            data = (per_task[t].mean(axis=0),)
            bootstrap(data, np.mean, n_resamples=RESAMPLES, method="percentile", random_state=rng)


def timed(fn: Callable[[], Any], repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--entries", type=int, default=500)
    ap.add_argument("--examples", type=int, default=1600)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--peer", type=int, default=5, help="entries the peers are timed on")
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; target < {TARGET_S} s")
    board = make_board(entries=args.entries, examples=args.examples, rng=np.random.default_rng(0))
    order = strict_order(board)
    print(
        f"  board: {args.entries} entries x {len(TASKS)} tasks x {args.examples} examples"
        f" x {SEEDS} seeds, {RESAMPLES} resamples"
    )

    def ours() -> None:
        significance(board, tasks=TASKS, order=order)

    seeds = iter(range(1, 1000))

    def cold() -> None:  # a seed never seen: the count matrices are drawn again
        significance(board, tasks=TASKS, order=order, seed=next(seeds))

    cold_s = statistics.median(timed(cold, args.repeats))
    ours()
    ours_s = statistics.median(timed(ours, args.repeats))
    sig = significance(board, tasks=TASKS, order=order)
    groups = len(set(sig.group.values()))
    top = ", ".join(group_label(rank=i + 1, group=sig.group[k]) for i, k in enumerate(order[:8]))
    print(f"  groups: {groups} for {len(order)} ranked entries; top 8: {top}")
    width = statistics.median(hi - lo for lo, hi in sig.score_ci.values())
    print(f"  median width of the dataset-score interval: {width:.4f}")
    verdict = "ok" if max(ours_s, cold_s) < TARGET_S else "OVER"
    print(f"  {'ours, count matrices drawn (first board)':<44} median {cold_s:7.3f} s")
    print(f"  {'ours, count matrices cached (a change)':<44} median {ours_s:7.3f} s")
    print(f"  {'':<44} ours/target {max(ours_s, cold_s) / TARGET_S:5.2f} {verdict}")
    subset = {k: board[k] for k in order[: args.peer]}
    scale = args.entries / len(subset)
    peers: tuple[tuple[str, Callable[[Board], None]], ...] = (
        ("per-entry np.random.choice loop (the peer)", naive_loop),
        ("scipy.stats.bootstrap per entry and task", scipy_bootstrap),
    )
    for name, peer in peers:

        def run_peer(fn: Callable[[Board], None] = peer) -> None:
            fn(subset)

        peer_s = min(timed(run_peer, 1 if args.peer > 20 else 2)) * scale
        print(
            f"  {name:<44} {peer_s:9.2f} s (extrapolated from {len(subset)} entries)"
            f"   peer/ours {peer_s / ours_s:7.0f}x"
        )
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
