"""Sweep figures, side by side with the research loop (make_config_experiments.py, metrics_df.py).

    .venv/bin/python -m benchmarks.sweep                  # parts a-e (d starts a SLURM cluster)
    .venv/bin/python -m benchmarks.sweep --part a,b --jobs 2000
    .venv/bin/python -m benchmarks.sweep --part e --pool 100000

(a) Planning a 10,000-job sweep against a store holding all 10,000 results (every training's
    skip-existing lookup): ours (plan + status of every job) vs the research planner
    (product of the lists + ``os.path.exists`` of the subset and metrics files). < 2 s.
(b) ``report results`` over those 10,000 results (table, Markdown, HTML, figures) vs the
    research ``metrics_df`` (listdir + json.load per file + pivot). < 5 s.
(c) The demo sweep (3 methods x 2 fractions x 4 tasks, linear probe) end to end on the local
    executor, then the same sweep again: the re-run trains nothing, < 3 s.
(d) Dispatch overhead per job on the real single-node SLURM (tests/infra): the demo sweep
    with 5 selection seeds (180 jobs) as two arrays vs one sbatch per selection and per
    training step, as the research loop submits them.
    overhead/job = (wall x CPU slots - in-process compute time) / jobs. < 0.5 s.
(e) ZCore and PRISM on a 1M x 512 pool with 500 query rows: < 60 s each; beside them the
    reference ZCore loop (one sample at a time, full argsort) on the same pool for 10 samples,
    extrapolated to 1,000.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from harness.settings import HarnessSettings, default_configs_dir


def demo_settings(root: Path) -> HarnessSettings:
    """A data root with the demo prepared and embedded (made once under ``root``)."""
    from harness.datasets.preparers import prepare_dataset
    from harness.embed import embed_dataset
    from harness.specs import load_benchmark

    settings = HarnessSettings(data_root=root / "data", runs_dir=root / "runs")
    spec = load_benchmark(settings.configs_dir).dataset("demo")
    embed_dataset(ds=prepare_dataset(spec=spec, settings=settings), settings=settings)
    return settings


def plan_of(settings: HarnessSettings, experiments: list[dict[str, Any]], tmp: Path) -> Any:
    from harness.selection import load_baselines
    from harness.specs import load_benchmark
    from harness.sweep import load_experiments, plan_sweep

    path = tmp / "experiments.yaml"
    path.write_text(yaml.safe_dump({"experiments": experiments}))
    specs, bl = load_benchmark(settings.configs_dir), load_baselines(settings.configs_dir)
    return plan_sweep(
        load_experiments(path, specs=specs, baselines=bl),
        settings=settings,
        specs=specs,
        baselines=bl,
    )


def big_experiment(n_jobs: int) -> dict[str, Any]:
    temps = [round(0.01 + 0.001 * i, 4) for i in range(50)]
    seeds = list(range(max(1, -(-n_jobs // (50 * 4 * 3)))))  # 50 x 4 tasks x 3 fractions each
    return {
        "name": "big",
        "datasets": ["demo"],
        "methods": {"tsds": {"temperature": temps}},
        "recipes": ["linear_probe"],
        "seeds": seeds,
    }


def fill_store(sweep: Any) -> None:
    """Every selection made and every training scored, as if the sweep had run."""
    from harness.store import StoredScore
    from harness.sweep.records import SelectionRecord, TrainingRecord
    from submissions.schemas import Manifest

    manifest = Manifest(
        code_version="x",
        recipe="linear_probe",
        recipe_version="1",
        recipe_hash="h",
        dataset="demo",
        dataset_version="1",
        dataset_manifest_hash="m",
        subset_sha256="s",
        seeds=[0],
        libraries={},
        device="cpu",
        wall_time_s=0.0,
    )
    rng = np.random.default_rng(0)
    for sel in sweep.selections.values():
        sha = f"{hash(sel.key) & (2**64 - 1):064x}"
        sweep.records.put(
            SelectionRecord(
                key=sel.key,
                status="ok",
                dataset="demo",
                method=sel.method,
                params=sel.params,
                fraction=sel.fraction,
                task=sel.task,
                seed=sel.seed,
                sha256=sha,
                size=1,
            )
        )
    for job in sweep.trainings.values():
        sha = sweep.sha_of(job.selection)
        scores: dict[str, dict[str, str]] = {}
        for key in sweep.score_keys(job, sha):
            acc = float(rng.uniform(0.3, 0.9))
            sweep.store.put(
                StoredScore(
                    key=key,
                    dataset="demo",
                    recipe=job.recipe.name,
                    test_size=100,
                    metrics={"accuracy": acc},
                    query_metrics={"accuracy": acc + 0.01},
                    manifest=manifest,
                )
            )
            scores.setdefault(key.task, {})[str(key.seed)] = key.digest
        sweep.records.put(
            TrainingRecord(
                key=job.key,
                status="ok",
                selection=job.selection,
                recipe=job.recipe.name,
                base_recipe="linear_probe",
                recipe_hash=job.recipe.config_hash(),
                scores=scores,
            )
        )


def research_plan(root: Path, n: int) -> float:
    """The research planner's loop: build paths per experiment and stat two files each."""
    exp_dir = root / "experiments_again"
    for i in range(n):  # their metrics files exist for every finished experiment
        d = exp_dir / "demo" / f"tsds_{i % 300}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"test{i % 4}_linear_probe_lr=0_metrics.json").write_text("{}")
    start = time.perf_counter()
    todo = 0
    for i, (frac, task) in enumerate(product(range(n // 4), ["test1", "test2", "test3", "test4"])):
        folder = exp_dir / "demo" / f"tsds_{i % 300}"
        save, metrics = (
            folder / f"{task}_subset.npy",
            folder / f"{task}_linear_probe_lr=0_metrics.json",
        )
        todo += not (os.path.exists(save) and os.path.exists(metrics))
        del frac
    return time.perf_counter() - start


def research_report(root: Path) -> float:
    """metrics_df: listdir + json.load of every metrics file, best per test set, pivot."""
    import pandas as pd

    start = time.perf_counter()
    rows = []
    for baseline in os.listdir(root / "experiments_again" / "demo"):
        folder = root / "experiments_again" / "demo" / baseline
        for name in os.listdir(folder):
            data = json.loads((folder / name).read_text())
            rows.append(
                {
                    "Baseline": baseline,
                    "Test Set": name.split("_")[0],
                    "Performance": data.get("acc"),
                }
            )
    pd.DataFrame(rows).pivot_table(
        index="Baseline", columns="Test Set", values="Performance", aggfunc="first"
    )
    return time.perf_counter() - start


def part_ab(root: Path, n_jobs: int) -> None:
    from harness.specs import load_benchmark
    from harness.sweep.report import results_frame, summarize, write_report

    settings = demo_settings(root)
    sweep = plan_of(settings, [big_experiment(n_jobs)], root)
    t = time.perf_counter()
    fill_store(sweep)
    made = time.perf_counter() - t
    t = time.perf_counter()
    sweep = plan_of(settings, [big_experiment(n_jobs)], root)
    counts = sweep.counts()["big"]
    ours = time.perf_counter() - t
    peer = research_plan(root, len(sweep.trainings))
    print(
        f"(a) planning {len(sweep.trainings):,} jobs against {len(sweep.trainings):,} stored "
        f"results (made in {made:.1f} s): {counts}"
    )
    print(
        f"    ours : {ours:6.2f} s   peer (research planner, 2 stats per job): {peer:6.2f} s"
        f"   ours / peer {ours / peer:.1f}x; target < 2 s: {'met' if ours < 2 else 'MISSED'}"
    )
    sweep.records.save_experiment("big", list(sweep.trainings))
    t = time.perf_counter()
    frame = results_frame(settings.runs_dir, sweep="big")
    table = summarize(frame, specs=load_benchmark(settings.configs_dir), select_on="query")
    write_report(table, frame, out=root / "report", select_on="query")
    ours = time.perf_counter() - t
    peer = research_report(root)
    print(
        f"(b) report results over {len(frame):,} scores: ours {ours:.2f} s (table, md, html, "
        f"figures)   peer (metrics_df): {peer:.2f} s   ours / peer {ours / peer:.1f}x; "
        f"target < 5 s: {'met' if ours < 5 else 'MISSED'}"
    )


DEMO = {
    "name": "demo",
    "datasets": ["demo"],
    "recipes": ["linear_probe"],
    "fractions": [0.05, 0.1],
    "methods": {"random_filter": {}, "image_alignment": {}, "match_label": {}},
}


def part_c(root: Path) -> None:
    from harness.dispatch.executors import ExecutorSpec
    from harness.sweep.run import run_sweep

    settings = demo_settings(root)
    spec = ExecutorSpec(cluster="local", array_parallelism=2, log_dir=root / "logs")
    t = time.perf_counter()
    first = run_sweep(plan_of(settings, [DEMO], root), executor=spec, progress=False)
    cold = time.perf_counter() - t
    t = time.perf_counter()
    again = run_sweep(plan_of(settings, [DEMO], root), executor=spec, progress=False)
    warm = time.perf_counter() - t
    print(
        f"(c) demo sweep, local executor: {first.launched} jobs in {cold:.1f} s; re-run "
        f"{again.launched} jobs in {warm:.2f} s (target < 3 s: {'met' if warm < 3 else 'MISSED'})"
    )


D_SWEEP = {**DEMO, "name": "demo5", "seeds": [0, 1, 2, 3, 4]}


def part_d(root: Path) -> None:
    from harness.dispatch.executors import ExecutorSpec, launch
    from harness.sweep.jobs import run_selections, run_trainings
    from harness.sweep.run import run_sweep
    from tests.infra.slurm_cluster import SlurmCluster

    settings = demo_settings(root)
    compute = HarnessSettings(data_root=settings.data_root, runs_dir=root / "runs-compute")
    t = time.perf_counter()
    run_sweep(
        plan_of(compute, [D_SWEEP], root),
        executor=ExecutorSpec(cluster="debug", log_dir=root / "dlogs"),
        progress=False,
    )
    in_process = time.perf_counter() - t
    cluster = SlurmCluster.start(root / "slurm")
    try:
        with cluster.activated():
            spec = ExecutorSpec(
                cluster="slurm",
                partition="debug",
                mem_gb=1,
                timeout_min=30,
                items_per_task=30,
                log_dir=root / "slogs",
            )
            arrays = HarnessSettings(data_root=settings.data_root, runs_dir=root / "runs-arr")
            sweep = plan_of(arrays, [D_SWEEP], root)
            t = time.perf_counter()
            run_sweep(sweep, executor=spec, progress=False, poll_s=0.2)
            wall_arrays = time.perf_counter() - t
            single = plan_of(
                HarnessSettings(data_root=settings.data_root, runs_dir=root / "runs-one"),
                [D_SWEEP],
                root,
            )
            t = time.perf_counter()
            jobs = launch(
                [[s] for s in single.selections.values()], spec, fn=run_selections, array=False
            )
            for j in jobs:
                j.result()
            jobs = launch(
                [[tr] for tr in single.trainings.values()], spec, fn=run_trainings, array=False
            )
            for j in jobs:
                j.result()
            wall_single = time.perf_counter() - t
            slots = cluster_slots()
    finally:
        cluster.stop()
    n = len(sweep.selections) + len(sweep.trainings)
    for name, wall in (("arrays", wall_arrays), ("one sbatch per step", wall_single)):
        over = (wall * slots - in_process) / n
        print(
            f"(d) SLURM, {name}: {n} jobs in {wall:.1f} s, overhead {over:.2f} s per job"
            + (
                f" (target < 0.5 s: {'met' if over < 0.5 else 'MISSED'})"
                if name == "arrays"
                else ""
            )
        )
    print(
        f"    ratio wall: one-per-step / arrays = {wall_single / wall_arrays:.1f}x "
        f"(in-process compute {in_process:.1f} s, {slots} CPU slots)"
    )


def cluster_slots() -> int:
    return max(1, len(os.sched_getaffinity(0)))


def part_e(pool: int) -> None:
    from harness.selection.api import run_selector
    from harness.selection.context import SelectionContext

    rng = np.random.default_rng(0)
    x = np.empty((pool, 512), np.float32)
    for lo in range(0, pool, 100_000):
        block = rng.standard_normal((min(100_000, pool - lo), 512), dtype=np.float32)
        x[lo : lo + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    q = x[:500] + 0.1 * rng.standard_normal((500, 512), dtype=np.float32)
    ctx = SelectionContext.from_arrays(pool={"image": x}, query={"image": q})
    for method in ("zcore", "prism"):
        t = time.perf_counter()
        out = run_selector(ctx, method, pool // 10, seed=0, params={})
        took = time.perf_counter() - t
        print(
            f"(e) {method} on {pool:,} x 512, 500 queries, budget {out.size:,}: {took:.1f} s "
            f"(target < 60 s: {'met' if took < 60 else 'MISSED'})"
        )
    t = time.perf_counter()
    for _ in range(10):  # the reference loop: argmin and a full argsort per sample
        d = rng.choice(512, 2, replace=False)
        idx = int(np.argmin(np.abs(x[:, d] - 0.01).sum(axis=1)))
        np.argsort(np.abs(x[:, d] - x[idx, d]).sum(axis=1))
    per = (time.perf_counter() - t) / 10
    print(
        f"    reference ZCore loop: {per:.2f} s per sample -> {per * 1000:.0f} s for the "
        "1,000 samples ours ran (not run)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", default="a,b,c,d,e")
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--pool", type=int, default=1_000_000)
    args = ap.parse_args()
    parts = set(args.part.split(","))
    os.environ.setdefault("TDC_CONFIGS_DIR", str(default_configs_dir()))
    with tempfile.TemporaryDirectory(prefix="tdc-sweep-") as tmp:
        root = Path(tmp)
        if parts & {"a", "b"}:
            part_ab(root / "ab", args.jobs)
        if "c" in parts:
            part_c(root / "c")
        if "d" in parts:
            part_d(root / "d")
        if "e" in parts:
            part_e(args.pool)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
