"""Sweeps from YAML to table on the demo: each job once, the same numbers as evaluate."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import harness.selection
from harness.cli.main import main
from harness.dispatch.executors import ExecutorSpec
from harness.settings import HarnessSettings, default_configs_dir
from harness.store import ResultsStore
from harness.sweep.records import Records
from tests.harness.sweep.conftest import SweepEnv

DEMO: dict[str, Any] = {
    "name": "demo",
    "datasets": ["demo"],
    "methods": {"random_filter": {}, "image_alignment": {}, "match_label": {}},
    "recipes": ["linear_probe"],
    "fractions": [0.05, 0.1],
}


def selection_sha(runs: Path, method: str, fraction: float, task: str | None) -> str:
    for path in (runs / "sweep/selections").glob("*/*.json"):
        rec = json.loads(path.read_text())
        if (rec["method"], rec["fraction"], rec["task"]) == (method, fraction, task):
            return str(rec["sha256"])
    raise AssertionError(f"no selection {method} {fraction} {task}")


def test_demo_sweep_on_the_local_executor(
    sweep_env: SweepEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    path = sweep_env.write([DEMO])
    assert main(["sweep", str(path), "--executor", "local"]) == 0
    out = capsys.readouterr().out
    assert "launched 18 selection(s) and 18 training(s) on local" in out  # 2 + 8 + 8 subsets
    start = time.perf_counter()
    assert main(["sweep", str(path), "--executor", "local"]) == 0
    assert time.perf_counter() - start < 3
    assert "launched 0 selection(s) and 0 training(s)" in capsys.readouterr().out
    report = sweep_env.tmp / "report"
    assert main(["report", "results", "--sweep", "demo", "--out", str(report)]) == 0
    table = pd.read_csv(report / "results.csv")
    assert len(table) == 3 * 2 * 4 and {"results.md", "results.html"} <= {
        p.name for p in report.iterdir()
    }  # fmt: skip
    # The table's numbers are what `evaluate` gives for the same subsets.
    store = ResultsStore(sweep_env.runs)
    for method, task in (("image_alignment", "test1"), ("random_filter", None)):
        subset = store.subset_path(selection_sha(sweep_env.runs, method, 0.1, task))
        out = sweep_env.tmp / f"{method}.json"
        args = ["evaluate", str(subset), "-d", "demo", "-f", "0.1", "--no-store", "-o", str(out)]
        assert main([*args, *(["-t", task] if task else [])]) == 0
        for t in json.loads(out.read_text())["tasks"]:
            row = table[(table["method"] == method) & (table["fraction"] == 0.1)
                        & (table["task"] == t["task"])]  # fmt: skip
            assert row["test_mean"].item() == pytest.approx(t["mean"]["accuracy"], abs=1e-12)
    # ... and the sweep's subset is the one `baseline` writes.
    mine = sweep_env.tmp / "ia.npy"
    assert main(["baseline", "image_alignment", "-d", "demo", "-f", "0.1", "-t", "test1",
                 "-o", str(mine)]) == 0  # fmt: skip
    stored = np.load(
        store.subset_path(selection_sha(sweep_env.runs, "image_alignment", 0.1, "test1"))
    )
    assert set(np.load(mine)) == set(stored)


def test_the_research_format_runs_as_it_is(capsys: pytest.CaptureFixture[str]) -> None:
    path = default_configs_dir() / "experiments-research.yaml"
    assert main(["sweep", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "lora_finetune_vit@batch_size=128,epochs=100" in out  # a named variant
    assert "36 subsets" in out and "not prepared here" in out


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"datasets": ["demoo"]}, "Did you mean 'demo'"),
        ({"methods": {"random_filtr": {}}}, "Did you mean 'random_filter'"),
        ({"methods": {"image_alignment": {"agregate": "max"}}}, "valid parameters: aggregate"),
        ({"fractions": [0.3]}, "fraction 0.3 is not allowed for demo; allowed: 0.05, 0.1, 0.25"),
        ({"recipes": ["regression_resnet50"]}, "trains ['regression']; dataset 'demo'"),
        ({"tasks": ["test9"]}, "unknown task of dataset 'demo' 'test9'"),
        ({"lrs": [0.1]}, "experiments[0].lrs: Extra inputs are not permitted (valid keys:"),
    ],
)
def test_bad_experiments_fail_before_anything_runs(
    sweep_env: SweepEnv, change: dict[str, Any], message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    path = sweep_env.write([{**DEMO, **change}])
    assert main(["sweep", str(path), "--executor", "debug"]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "experiments[0]" in err and message in err
    assert not (sweep_env.runs / "sweep/selections").exists()


def test_failed_jobs_keep_their_error_and_only_they_are_retried(
    sweep_env: SweepEnv, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = harness.selection.select

    def flaky(**kwargs: Any) -> Any:
        if kwargs["method"] == "match_label":
            raise RuntimeError("disk full")
        return real(**kwargs)

    monkeypatch.setattr(harness.selection, "select", flaky)
    path = sweep_env.write([{**DEMO, "fractions": [0.1]}])
    assert main(["sweep", str(path), "--executor", "debug"]) == 1  # failures: exit 1
    out = capsys.readouterr().out
    assert "RuntimeError: disk full" in out and "5 subsets (1 done)" not in out
    failed = [json.loads(p.read_text()) for p in (sweep_env.runs / "sweep/selections").glob("*/*")]
    assert sum(r["status"] == "failed" for r in failed) == 4
    assert all("disk full" in r["traceback"] for r in failed if r["status"] == "failed")
    assert main(["sweep", "status", str(path)]) == 0
    assert "0/0/4" in capsys.readouterr().out  # match_label: subsets done/todo/failed
    monkeypatch.setattr(harness.selection, "select", real)
    assert main(["sweep", str(path), "--executor", "debug"]) == 0
    # Only the 4 failed subsets are made again; 2 of them (test1, test4: every class in the
    # query set) are random_filter's very subset, already scored: only 2 trainings run.
    assert "launched 4 selection(s) and 2 training(s)" in capsys.readouterr().out


def test_slurm_training_array_waits_for_the_selection_array(
    sweep_env: SweepEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a scheduler at hand: the training array is launched with afterok on the first."""
    from harness.selection import load_baselines
    from harness.specs import load_benchmark
    from harness.sweep import load_experiments, plan_sweep
    from harness.sweep import run as sweep_run

    launched: list[tuple[str, ExecutorSpec]] = []

    class Job:
        def __init__(self, n: int) -> None:
            self.job_id, self.state = f"{100 + n}_0", "COMPLETED"

        def done(self) -> bool:
            return True

    def fake_launch(items: list[Any], spec: ExecutorSpec, *, fn: Any, name: str) -> list[Job]:
        launched.append((name, spec))
        return [Job(len(launched))]

    monkeypatch.setattr(sweep_run, "launch", fake_launch)
    settings = HarnessSettings()
    specs, baselines = load_benchmark(settings.configs_dir), load_baselines(settings.configs_dir)
    exps = load_experiments(sweep_env.write([DEMO]), specs=specs, baselines=baselines)
    plan = plan_sweep(exps, settings=settings, specs=specs, baselines=baselines)
    spec = ExecutorSpec(cluster="slurm", log_dir=sweep_env.tmp / "logs")
    sweep_run.run_sweep(plan, executor=spec, progress=False, poll_s=0.01)
    assert [n for n, _ in launched] == ["tdc-select", "tdc-train"]
    assert launched[1][1].extra_sbatch == {
        "dependency": "afterok:101",
        "kill-on-invalid-dep": "yes",
    }


@pytest.mark.slurm
def test_demo_sweep_on_slurm(slurm: object, sweep_env: SweepEnv) -> None:
    from harness.selection import load_baselines
    from harness.specs import load_benchmark
    from harness.sweep import load_experiments, plan_sweep
    from harness.sweep.run import run_sweep

    settings = HarnessSettings()
    specs, baselines = load_benchmark(settings.configs_dir), load_baselines(settings.configs_dir)
    exp = {**DEMO, "methods": {"random_filter": {}, "image_alignment": {}}, "fractions": [0.1]}
    exps = load_experiments(sweep_env.write([exp]), specs=specs, baselines=baselines)
    plan = plan_sweep(exps, settings=settings, specs=specs, baselines=baselines)
    spec = ExecutorSpec(cluster="slurm", partition="debug", mem_gb=1, timeout_min=10,
                        items_per_task=3, log_dir=sweep_env.tmp / "logs")  # fmt: skip
    summary = run_sweep(plan, executor=spec, progress=False, poll_s=0.5)
    assert (summary.selections, summary.trainings, summary.failed) == (5, 5, 0)
    assert len(summary.array_jobs) == 2  # one selection array, one training array
    assert all(plan.status(t) == "done" for t in plan.trainings.values())
    records = Records(sweep_env.runs)
    assert all(records.training(k).log for k in plan.trainings)  # type: ignore[union-attr]
    again = run_sweep(plan_sweep(exps, settings=settings, specs=specs, baselines=baselines),
                      executor=spec, progress=False)  # fmt: skip
    assert again.launched == 0
