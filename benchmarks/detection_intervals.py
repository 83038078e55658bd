"""Intervals and tied groups of a detection board (mAP@0.5 recomputed on every resample).

    .venv/bin/python -m benchmarks.detection_intervals
    .venv/bin/python -m benchmarks.detection_intervals --entries 40 --images 2000 --repeats 3

A board of ``--entries`` entries, one task of ``--images`` test images (~2.5 boxes and ~3
detections each, 10 classes), 3 seeds, 1,000 resamples. Side by side in one run:

- ours, cold: every entry's replicates computed (``submissions.detection_map``: each
  detection weighted by its image's multiplicity, one cumulative sum over all resamples);
- ours, per change: one new entry on a board whose other entries' replicates are kept
  (what a board change costs: a new result arrives);
- the peer: each resample built and scored as a test set (the drawn images' detections
  concatenated, sorted and run through the same AP code, as research scripts resample
  ultralytics' ``ap_per_class``), timed on ``--peer`` resamples of one entry-seed and
  extrapolated linearly to the board.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from submissions.detection_map import MapOutcomes, map_of
from submissions.resampling import RESAMPLES, resample_indices
from submissions.significance import significance
from tests.infra.matches import random_matches

SEEDS = 3


def board(entries: int, images: int, seed: int) -> dict[str, dict[str, MapOutcomes]]:
    rng = np.random.default_rng(seed)
    skill = rng.uniform(0.3, 0.8, entries)
    return {
        f"team{i:03d}-{seed}": {
            "t": MapOutcomes(
                tuple(
                    (random_matches(rng, images, skill=skill[i], classes=10, boxes=2.5),)
                    for _ in range(SEEDS)
                )
            )
        }
        for i in range(entries)
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--entries", type=int, default=40)
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--peer", type=int, default=50, help="resamples the peer is timed on")
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    base = board(args.entries, args.images, 0)
    dets = int(base[next(iter(base))]["t"].units[0][0]["det_count"].sum())
    print(f"  board: {args.entries} entries x 1 task x {args.images} images (~{dets} "
          f"detections each) x {SEEDS} seeds, {RESAMPLES} resamples")  # fmt: skip

    def rank(b: dict[str, dict[str, MapOutcomes]]) -> float:
        order = sorted(b, key=lambda k: -float(b[k]["t"].points().mean()))
        t = time.perf_counter()
        significance(b, tasks=("t",), order=order)
        return time.perf_counter() - t

    cold = statistics.median(rank(board(args.entries, args.images, 100 + r))
                             for r in range(args.repeats))  # fmt: skip
    rank(base)
    change = statistics.median(
        rank(base | board(1, args.images, 200 + r)) for r in range(args.repeats)
    )
    one = base[next(iter(base))]["t"].units[0][0]
    idx = resample_indices(args.images, resamples=args.peer, stream="t")
    t = time.perf_counter()
    for row in idx:
        map_of(one, row)
    per_resample = (time.perf_counter() - t) / args.peer
    peer = per_resample * RESAMPLES * SEEDS * args.entries
    print(f"  ours, cold (every entry):        {cold:8.2f} s")
    print(f"  ours, per change (1 new entry):  {change:8.2f} s")
    print(f"  peer, resample and rescore:      {peer:8.2f} s (extrapolated from {args.peer} "
          f"resamples of one entry-seed: {per_resample * 1e3:.1f} ms each)")  # fmt: skip
    print(f"  ratio peer / ours: cold {peer / cold:.1f}x, per change {peer / change:.1f}x")


if __name__ == "__main__":
    main()
