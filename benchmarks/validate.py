"""Validation speed and memory, side by side with np.isin and pandas' Series.isin.

    .venv/bin/python benchmarks/validate.py                  # both parts, full size
    .venv/bin/python benchmarks/validate.py --part a --pool 2000000 --sub 200000   # smaller
    .venv/bin/python benchmarks/validate.py --part b --sizes 1,4,16 --repeats 3

(a) A 1M-UID submission against a 10M-UID pool with a prebuilt index: our full validation
    (read the file + every rule + canonical sha256) against bare membership tests with
    ``np.isin`` and ``pandas.Series.isin`` on the same UIDs, median of ``--repeats`` runs;
    peak extra memory of ours by tracemalloc (numpy's allocations are traced), compared with
    the submission file's size. Two UID forms: text UIDs, and DataComp's 128-bit records
    (the peers get those UIDs as the same 32-char hex text a DataComp user holds; pandas
    gets object arrays, converted outside its timing: its fastest path).
(b) DataComp "medium" scale: 128-bit records, submission = 30/128 of the pool, pool sizes
    from 1M to 128M. Each size runs in fresh subprocesses: one builds and saves the index and
    the submission file (build time reported apart), then each validation run is its own
    process (wall time and peak RSS of that process, index memory-mapped from disk).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.datasets.uid_index import UidIndex
from harness.specs import DatasetSpec, TaskSpec
from harness.validation import ValidationReport, check_subset
from submissions.subset_file import read_subset_file, write_subset_file
from submissions.uid128 import records, to_hex

FRACTIONS = (0.1, 0.25)


def synthetic_spec() -> DatasetSpec:
    return DatasetSpec(
        name="synthetic",
        task_type="classification",
        version="1",
        description="benchmark pool",
        path="synthetic",
        tasks=(TaskSpec(name="test1", query="val1", test="test1"),),
        fractions=FRACTIONS,
        default_recipe="linear_probe",
        primary_metric="accuracy",
    )


def text_uids(values: np.ndarray, prefix: str = "img", digits: int = 9) -> np.ndarray:
    """``img000123456``-style text UIDs, built as code points (no Python loop)."""
    width = len(prefix) + digits
    cps = np.empty((len(values), width), np.uint32)
    cps[:, : len(prefix)] = [ord(c) for c in prefix]
    v = values.astype(np.int64)
    for j in range(digits):
        cps[:, width - 1 - j] = ord("0") + v % 10
        v //= 10
    return cps.reshape(-1).view(f"<U{width}")


def random_records(rng: np.random.Generator, n: int) -> np.ndarray:
    hi = rng.integers(0, 2**64, n, dtype=np.uint64, endpoint=False)
    lo = rng.integers(0, 2**64, n, dtype=np.uint64, endpoint=False)
    return records(hi, lo)


@dataclass(frozen=True)
class Timing:
    wall: float  # median wall seconds
    cpu: float  # median CPU seconds, all threads
    result: Any


def measure(fn: Callable[[], Any], repeats: int) -> Timing:
    walls, cpus, out = [], [], None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return Timing(statistics.median(walls), statistics.median(cpus), out)


def traced_peak(fn: Callable[[], Any]) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def ours(index: UidIndex, path: Path, fraction: float) -> ValidationReport:
    sub = read_subset_file(path)
    return check_subset(sub, spec=synthetic_spec(), index=index, fraction=fraction, task=None)


# --- part (a) ------------------------------------------------------------------------------


def part_a(pool_n: int, sub_n: int, repeats: int, peer_repeats: int, work: Path) -> None:
    rng = np.random.default_rng(0)
    forms = {
        "text": text_uids(rng.permutation(pool_n)),
        "uid128": random_records(rng, pool_n),
    }
    print(f"\n(a) {sub_n:,}-UID submission vs a {pool_n:,}-UID pool, prebuilt index")
    print(f"    median of {repeats} runs (peers: {peer_repeats}); cpu s counts every thread")
    print(f"    machine load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n")
    header = (
        f"{'UIDs':7} {'method':37} {'median s':>9} {'cpu s':>6} {'x ours':>7} {'x cpu':>7} "
        f"{'peak MB':>8} {'x file':>7}"
    )
    print(header + "\n" + "-" * len(header))
    for form, pool in forms.items():
        _compare(form, pool, sub_n, rng, repeats, peer_repeats, work)


def _compare(
    form: str,
    pool: np.ndarray,
    sub_n: int,
    rng: np.random.Generator,
    repeats: int,
    peer_repeats: int,
    work: Path,
) -> None:
    import pandas as pd

    build = measure(lambda: UidIndex.build({"train": pool}), 1)
    index = build.result
    pick = rng.choice(len(pool), size=sub_n, replace=False)
    path = write_subset_file(work / f"{form}.npy", pool[pick])
    file_mb = path.stat().st_size / 1e6
    fraction = min(f for f in FRACTIONS if f * len(pool) >= sub_n)
    mine = measure(lambda: ours(index, path, fraction), repeats)
    assert mine.result.ok and mine.result.size == sub_n, mine.result.problems
    peak = traced_peak(lambda: ours(index, path, fraction)) / 1e6
    pool_text = pool if form == "text" else to_hex(pool["f0"], pool["f1"])
    sub_text = pool_text[pick]
    isin = measure(lambda: np.isin(sub_text, pool_text), peer_repeats)
    assert bool(isin.result.all())
    # pandas 3's default "str" dtype takes a pathological path here (~20x slower); the
    # classic object hashtable is pandas' fast path, so the peer gets objects, made untimed.
    sub_obj, pool_obj = pd.Series(sub_text, dtype=object), pool_text.astype(object)
    pdisin = measure(lambda: sub_obj.isin(pool_obj), peer_repeats)
    assert bool(pdisin.result.all())
    rows = [
        ("ours: read file + validate every rule", mine),
        ("np.isin (membership only)", isin),
        ("pandas isin (membership only)", pdisin),
    ]
    for name, t in rows:
        mem = f"{peak:8.1f} {peak / file_mb:7.2f}" if t is mine else ""
        print(
            f"{form:7} {name:37} {t.wall:9.3f} {t.cpu:6.2f} {t.wall / mine.wall:7.1f} "
            f"{t.cpu / mine.cpu:7.1f} {mem}"
        )
    print(f"{'':7} index build {build.wall:.1f} s; file {file_mb:.1f} MB; sha {mine.result.sha256}")


# --- part (b) ------------------------------------------------------------------------------


def prepare(pool_n: int, sub_n: int, work: Path) -> dict[str, float]:
    """Child process: synthetic pool -> index on disk + submission file."""
    rng = np.random.default_rng(pool_n)
    pool = random_records(rng, pool_n)
    t0 = time.perf_counter()
    index = UidIndex.build(
        {"train": pool, "val1": random_records(rng, 500), "test1": random_records(rng, 1600)}
    )
    build_s = time.perf_counter() - t0
    index.save(work / "index", manifest_hash="synthetic")
    del index
    pick = rng.choice(pool_n, size=sub_n, replace=False)
    write_subset_file(work / "sub.npy", pool[pick])
    return {"build_s": build_s, "build_peak_gb": _max_rss_gb()}


def validate_once(pool_n: int, sub_n: int, work: Path) -> dict[str, float]:
    """Child process: load the index (mmap), read + validate the file once."""
    t0, cpu0 = time.perf_counter(), time.process_time()
    index = UidIndex.load(work / "index")
    report = ours(index, work / "sub.npy", 0.25)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    if not report.ok or report.size != sub_n:
        raise SystemExit(f"unexpected report: {report.problems}")
    return {"wall_s": wall, "cpu_s": cpu, "peak_rss_gb": _max_rss_gb()}


def _max_rss_gb() -> float:
    """This process's peak RSS (VmHWM: unlike ru_maxrss it does not inherit the parent's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1e6  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def _child(*args: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, *args], check=True, capture_output=True, text=True
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def part_b(sizes_m: list[int], repeats: int, work: Path) -> None:
    print("\n(b) DataComp scale: 128-bit records, submission = 30/128 of the pool (fraction 0.25)")
    print(f"    fresh process per run; median of {repeats} validations (1 at >= 64M)\n")
    header = (
        f"{'pool':>6} {'submission':>11} {'build s':>8} {'build GB':>9} {'validate s':>11} "
        f"{'cpu s':>6} {'s / 1M sub':>10} {'peak RSS GB':>12} {'GB / 1M pool':>13} {'load':>5}"
    )
    print(header + "\n" + "-" * len(header))
    for m in sizes_m:
        pool_n, sub_n = m * 1_000_000, m * 30_000_000 // 128
        d = work / f"b{m}"
        d.mkdir()
        built = _child("_prepare", str(pool_n), str(sub_n), str(d))
        runs = [
            _child("_validate", str(pool_n), str(sub_n), str(d))
            for _ in range(repeats if m < 64 else 1)
        ]
        wall = statistics.median(r["wall_s"] for r in runs)
        cpu = statistics.median(r["cpu_s"] for r in runs)
        rss = max(r["peak_rss_gb"] for r in runs)
        print(
            f"{m:>5}M {sub_n:>11,} {built['build_s']:>8.1f} {built['build_peak_gb']:>9.2f} "
            f"{wall:>11.2f} {cpu:>6.1f} {wall / (sub_n / 1e6):>10.3f} {rss:>12.2f} "
            f"{rss / m:>13.3f} {os.getloadavg()[0]:>5.1f}",
            flush=True,
        )
        shutil.rmtree(d)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("_prepare", "_validate"):
        pool_n, sub_n, work = int(argv[1]), int(argv[2]), Path(argv[3])
        fn = prepare if argv[0] == "_prepare" else validate_once
        print(json.dumps(fn(pool_n, sub_n, work)))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--part", choices=["a", "b", "all"], default="all")
    ap.add_argument("--pool", type=int, default=10_000_000)
    ap.add_argument("--sub", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--peer-repeats", type=int, default=3)
    ap.add_argument("--sizes", default="1,4,16,64,128", help="pool sizes in millions, part b")
    ap.add_argument("--b-repeats", type=int, default=3, help="validations per size below 64M")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tdc-bench-") as tmp:
        if args.part in ("a", "all"):
            part_a(args.pool, args.sub, args.repeats, args.peer_repeats, Path(tmp))
        if args.part in ("b", "all"):
            sizes = [int(s) for s in args.sizes.split(",")]
            part_b(sizes, args.b_repeats, Path(tmp))


if __name__ == "__main__":
    main()
