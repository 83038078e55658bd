"""Ranking stability (harness.stability, ``tdc-harness report stability``): Kendall tau under
test resampling and between training seeds, from evaluated reference methods' outcomes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import harness.stability as stability_mod
from harness.cli.main import main
from harness.datasets import Dataset
from harness.references import Reference
from harness.selection.config import BaselinesConfig, load_baselines
from harness.settings import default_configs_dir
from harness.specs import RecipeSpec, load_benchmark
from harness.stability import (
    Gathered,
    gather_outcomes,
    render_markdown,
    stability,
    task_classes,
)
from harness.store import ResultsStore
from submissions.detection_map import MapOutcomes
from tests.infra.matches import random_matches

METHODS = (("random_filter", {}), ("clip_score", {}), ("match_label", {}))


@pytest.fixture(scope="module")
def baselines() -> BaselinesConfig:
    return load_baselines(default_configs_dir())


@pytest.fixture(scope="module")
def recipe() -> RecipeSpec:
    probe = load_benchmark(default_configs_dir()).recipe("linear_probe")
    return probe.model_copy(update={"seeds": (0, 1)})  # two training seeds: seed tau defined


def _gather(ds: Dataset, recipe: RecipeSpec, baselines: BaselinesConfig, store: Path) -> Gathered:
    refs = [Reference.of(m, p, baselines=baselines) for m, p in METHODS]
    return gather_outcomes(ds=ds, recipe=recipe, refs=refs, fraction=0.1,
                           tasks=["test1", "test2"], baselines=baselines,
                           store=ResultsStore(store))  # fmt: skip


def test_the_reference_methods_of_the_tiny_dataset(
    tiny_dataset: Dataset, recipe: RecipeSpec, baselines: BaselinesConfig, tmp_path: Path
) -> None:
    got = _gather(tiny_dataset, recipe, baselines, tmp_path)
    assert got.skipped == {}
    assert sorted(got.outcomes) == sorted(m for m, _ in METHODS)
    for per_task in got.outcomes.values():
        assert {t: a.shape for t, a in per_task.items()} == {"test1": (2, 60), "test2": (2, 60)}
    tasks = ["test1", "test2"]
    report = stability(got.outcomes, tasks=tasks, classes=task_classes(tiny_dataset, tasks))
    assert [r.name for r in report.rows] == ["test1", "test2", "dataset"]
    for row in report.rows:
        assert sorted(row.ranking) == sorted(report.methods)
        assert -1.0 <= row.boot_lo <= row.boot_median <= row.boot_hi <= 1.0
        assert 0.0 <= row.identical <= 1.0
        assert row.seed_mean == row.seed_min == 1.0  # the probe ignores its seed: identical
    # The dataset score is the mean over tasks of the methods' accuracies.
    scores = {t: {m: np.mean(a[t]) for m, a in got.outcomes.items()} for t in tasks}
    for m in report.methods:
        mean = np.mean([scores[t][m] for t in tasks])
        assert report.rows[-1].scores[m] == pytest.approx(mean)
    again = _gather(tiny_dataset, recipe, baselines, tmp_path)  # read from the store
    text = render_markdown(report, title="t")
    assert text == render_markdown(stability(again.outcomes, tasks=tasks), title="t")
    assert text.count("\n| test") == 2 and "\n| dataset |" in text and "How to read" in text


def test_scores_without_outcomes_are_skipped_and_named(
    tiny_dataset: Dataset,
    recipe: RecipeSpec,
    baselines: BaselinesConfig,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = stability_mod.score_reference

    def old_store(**kw: object) -> object:  # clip_score stored before outcomes existed
        scored = real(**kw)  # type: ignore[arg-type]
        if scored.label != "clip_score":
            return scored
        tasks = [t.model_copy(update={"seeds": [s.model_copy(update={"outcomes": None})
                                                for s in t.seeds]})
                 for t in scored.result.tasks]  # fmt: skip
        result = scored.result.model_copy(update={"tasks": tasks})
        return type(scored)(scored.label, scored.fraction, scored.task, scored.subsets, result)

    monkeypatch.setattr(stability_mod, "score_reference", old_store)
    got = _gather(tiny_dataset, recipe, baselines, tmp_path)
    assert sorted(got.outcomes) == ["match_label", "random_filter"]
    assert (
        list(got.skipped) == ["clip_score"]
        and "no per-example outcomes" in got.skipped["clip_score"]
    )


def test_balanced_accuracy_and_identical_methods() -> None:
    rng = np.random.default_rng(1)
    classes = np.repeat([0, 1, 2], [10, 30, 20])
    a = rng.random((3, 60)) < 0.7
    outcomes = {"a": {"t": a}, "b": {"t": rng.random((3, 60)) < 0.5}, "a2": {"t": a.copy()}}
    report = stability(outcomes, tasks=["t"], classes={"t": classes}, resamples=200)
    per_class = [a[:, classes == c].mean() for c in range(3)]
    assert report.rows[0].scores["a"] == pytest.approx(np.mean(per_class))
    assert report.rows[0].scores["a"] == report.rows[0].scores["a2"]  # tied on every resample
    same = {"x": {"t": a}, "y": {"t": a}}
    assert np.isnan(stability(same, tasks=["t"], resamples=50).rows[0].boot_median)  # all tied
    twice = stability(outcomes, tasks=["t"], classes={"t": classes}, resamples=200)
    assert twice == report


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["nosuch"], "nosuch"),
        (["demo", "-f", "0.3"], "fraction"),
        (["demo", "-m", "tsds:a"], "KEY"),
    ],
)
def test_usage_errors_exit_2(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("TDC_RUNS_DIR", str(tmp_path))
    assert main(["report", "stability", *argv]) == 2
    assert needle in capsys.readouterr().err


def test_detection_methods_are_ranked_by_map_recomputed_on_each_resample() -> None:
    rng = np.random.default_rng(2)
    skills = {"strong": 0.9, "middle": 0.55, "weak": 0.1}
    outcomes = {m: {"t": MapOutcomes(tuple((random_matches(rng, 120, skill=k),)
                                           for _ in range(2)), "map50")}
                for m, k in skills.items()}  # fmt: skip
    report = stability(outcomes, tasks=["t"])
    task, dataset = report.rows
    assert task.ranking == ("strong", "middle", "weak") == dataset.ranking
    for m, o in outcomes.items():
        assert task.scores[m] == pytest.approx(float(o["t"].points().mean()))
    assert task.boot_median == 1.0 and report.seeds == 2
