"""``tdc-harness tune``: a baseline's parameters chosen by query-split score, never the test.

    result = tune(method="tsds", dataset="demo", task="test1", fraction=0.1,
                  grid={"alpha": [0.25, 0.5, 0.75]}, settings=settings)
    result.chosen          # the full parameter set with the best mean query score
    write_tuned(result, Path("runs/tuned/demo-tsds-test1-f0.1.yaml"))

Each grid point is one experiment cell run like a sweep (selection, then the recipe, through
the results store: nothing done before is redone); the candidates are ranked by the mean of
the dataset's primary metric on the task's **query** split over the selection seeds. The
YAML it writes is read by ``tdc-harness baseline --params-file`` and by a sweep method's
``params_file``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.dispatch.executors import ExecutorSpec
from harness.selection import BaselinesConfig
from harness.settings import HarnessSettings
from harness.specs import BenchmarkSpecs
from harness.sweep.config import Experiment, check_experiment, params_id
from harness.sweep.plan import plan_sweep
from harness.sweep.report import results_frame
from harness.sweep.run import run_sweep
from submissions.errors import DataNotFound


@dataclass(frozen=True)
class TuneResult:
    method: str
    dataset: str
    task: str
    fraction: float
    recipe: str
    metric: str
    higher_is_better: bool
    candidates: list[dict[str, Any]]  # params, query_mean, query_std, n (best first)

    @property
    def chosen(self) -> dict[str, Any]:
        return dict(self.candidates[0]["params"])


def tune(
    *,
    method: str,
    dataset: str,
    task: str,
    fraction: float,
    grid: dict[str, list[Any]],
    settings: HarnessSettings,
    specs: BenchmarkSpecs,
    baselines: BaselinesConfig,
    executor: ExecutorSpec,
    recipe: str | None = None,
    seeds: tuple[int, ...] = (0,),
) -> TuneResult:
    """Run every grid point (what is missing) and rank them by query score."""
    spec = specs.dataset(dataset)
    name = f"tune-{dataset}-{method}-{task}-f{fraction:g}"
    exp = Experiment(
        name=name,
        datasets=(dataset,),
        methods={method: dict(grid)},
        recipes=(recipe or spec.default_recipe,),
        fractions=(fraction,),
        tasks=(task,),
        seeds=seeds,
    )
    check_experiment(exp, specs=specs, baselines=baselines)
    sweep = plan_sweep([exp], settings=settings, specs=specs, baselines=baselines)
    sweep.records.save_experiment(name, sweep.experiments[name])
    run_sweep(sweep, executor=executor, progress=False)
    frame = results_frame(settings.runs_dir, sweep=name)
    metric, up = spec.primary_metric, spec.higher_is_better
    column = f"query.{metric}"
    if frame.empty or column not in frame:
        raise DataNotFound(f"no query-split score for {name}: see `tdc-harness sweep status`")
    rows = frame[frame["task"] == task].groupby("params")[column].agg(["mean", "std", "size"])
    rows = rows.sort_values("mean", ascending=not up)
    candidates = [
        {
            "params": json.loads(p),
            "query_mean": float(r["mean"]),
            "query_std": float(r["std"]) if r["size"] > 1 else None,
            "n": int(r["size"]),
        }
        for p, r in rows.iterrows()
    ]
    return TuneResult(method, dataset, task, fraction, exp.recipes[0], metric, up, candidates)


def write_tuned(result: TuneResult, path: Path) -> Path:
    """The chosen parameters and how they were chosen, as YAML (``params:`` is what is read)."""
    doc = {
        "method": result.method,
        "dataset": result.dataset,
        "task": result.task,
        "fraction": result.fraction,
        "recipe": result.recipe,
        "selected_by": f"mean {result.metric} on the query split of {result.task}",
        "params": result.chosen,
        "candidates": [{**c, "params": params_id(c["params"])} for c in result.candidates],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path
