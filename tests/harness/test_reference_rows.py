"""Reference rows averaged over selection seeds (harness.references) on the demo benchmark."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.datasets import Dataset
from harness.references import (
    Reference,
    ScoredReference,
    _combine_task,
    merge_identical,
    score_reference,
)
from harness.runner import evaluate_subset
from harness.selection.api import select
from harness.selection.config import BaselinesConfig, load_baselines
from harness.settings import default_configs_dir
from harness.specs import RecipeSpec, load_benchmark
from harness.store import ResultsStore
from harness.validation import subset_sha256
from submissions.outcomes import primary_matrix
from submissions.schemas import ExampleOutcomes, SeedResult, TaskResult


@pytest.fixture(scope="module")
def baselines() -> BaselinesConfig:
    return load_baselines(default_configs_dir())


@pytest.fixture(scope="module")
def recipe() -> RecipeSpec:
    return load_benchmark(default_configs_dir()).recipe("linear_probe")


def test_labels_show_every_non_default_parameter(baselines: BaselinesConfig) -> None:
    def label(method: str, **params: object) -> str:
        return Reference.of(method, params, baselines=baselines).label

    assert label("clip_score") == "clip_score"
    assert label("clip_score", captions="nolabel") == "clip_score"  # the default, said or not
    assert label("clip_score", captions="label") == "clip_score · captions=label"
    assert label("tsds", C=2.0, alpha=0.3) == "tsds · C=2.0, alpha=0.3"
    ref = Reference.of("tsds", {"alpha": 0.3}, baselines=baselines)
    assert ref.resolved["sigma"] == 0.75 and ref.params == {"alpha": 0.3}


def test_a_stochastic_method_is_the_mean_over_its_selection_seeds(
    demo_dataset: Dataset, baselines: BaselinesConfig, recipe: RecipeSpec, tmp_path: Path
) -> None:
    ref = Reference.of("random_filter", {}, baselines=baselines)
    store = ResultsStore(tmp_path)
    scored = score_reference(ds=demo_dataset, recipe=recipe, ref=ref, fraction=0.1, task=None,
                             baselines=baselines, store=store)  # fmt: skip
    by_seed = []
    for seed in (0, 1, 2):  # each seed scored on its own, as any subset is
        rows = select(ds=demo_dataset, method="random_filter", fraction=0.1, task=None,
                      seed=seed, baselines=baselines).rows  # fmt: skip
        by_seed.append(evaluate_subset(ds=demo_dataset, recipe=recipe, pool_rows=rows,
                                       subset_sha256=subset_sha256(rows), fraction=0.1,
                                       task=None))  # fmt: skip
        assert scored.subsets[seed] == subset_sha256(rows)
    assert len(set(scored.subsets)) == 3
    for i, task in enumerate(scored.result.tasks):
        accs = [r.tasks[i].mean["accuracy"] for r in by_seed]
        assert [s.seed for s in task.seeds] == [0, 1, 2]
        assert [s.metrics["accuracy"] for s in task.seeds] == pytest.approx(accs)
        assert task.mean["accuracy"] == pytest.approx(np.mean(accs))
        assert task.std["accuracy"] == pytest.approx(np.std(accs, ddof=1))
        _assert_stacked_outcomes_reproduce_the_row(task, training_seeds=len(recipe.seeds))
    selection = scored.result.manifest.selection
    assert selection is not None
    assert (selection.method, selection.seeds, selection.subsets) == (
        "random_filter", [0, 1, 2], list(scored.subsets))  # fmt: skip
    again = score_reference(ds=demo_dataset, recipe=recipe, ref=ref, fraction=0.1, task=None,
                            baselines=baselines, store=store)  # fmt: skip
    assert again.result.manifest.subset_sha256 == scored.result.manifest.subset_sha256
    assert again.result.tasks == scored.result.tasks  # read from the store: same numbers


def test_a_deterministic_method_is_scored_once(
    demo_dataset: Dataset, baselines: BaselinesConfig, recipe: RecipeSpec,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    import harness.references as references

    calls: list[str] = []

    def counting(**kw: object) -> object:
        calls.append(str(kw["subset_sha256"]))
        return evaluate_subset(**kw)  # type: ignore[arg-type]

    monkeypatch.setattr(references, "evaluate_subset", counting)
    ref = Reference.of("clip_score", {"captions": "label"}, baselines=baselines)
    scored = score_reference(ds=demo_dataset, recipe=recipe, ref=ref, fraction=0.05,
                             task=None, baselines=baselines)  # fmt: skip
    assert len(calls) == 1 and len(set(scored.subsets)) == 1
    # one subset is one row: that subset's own evaluation, under its own identity
    assert scored.result.manifest.subset_sha256 == calls[0] == scored.subsets[0]
    assert [s.seed for s in scored.result.tasks[0].seeds] == list(recipe.seeds)
    assert all(s.outcomes is not None and s.outcomes.seeds == 1
               for s in scored.result.tasks[0].seeds)  # fmt: skip
    selection = scored.result.manifest.selection
    assert selection is not None and selection.params["captions"] == "label"
    assert scored.label == "clip_score · captions=label"


def _assert_stacked_outcomes_reproduce_the_row(task: TaskResult, *, training_seeds: int) -> None:
    """Each selection seed's outcomes stack its training seeds, and reproduce its score."""
    outs = [s.outcomes for s in task.seeds]
    assert all(o is not None and o.seeds == training_seeds for o in outs)
    matrix = primary_matrix([o for o in outs if o is not None], "accuracy")
    assert matrix.shape == (len(task.seeds), task.test_size)
    for seed, row in zip(task.seeds, matrix, strict=True):
        assert float(row.mean()) == pytest.approx(seed.metrics["accuracy"], abs=1e-9)
    assert float(matrix.mean()) == pytest.approx(task.mean["accuracy"], abs=1e-9)


def test_a_combined_seed_without_every_training_seeds_outcomes_has_none() -> None:
    uids = [f"u{i}" for i in range(8)]
    bits = [np.arange(8) < k for k in (2, 6)]
    full = [SeedResult(seed=i, metrics={"accuracy": float(b.mean())},
                       outcomes=ExampleOutcomes.of("correct", {"correct": b}, uids=uids))
            for i, b in enumerate(bits)]  # fmt: skip
    partial = [full[0], full[1].model_copy(update={"outcomes": None})]
    results = [TaskResult(task="t", test_size=8, seeds=seeds, mean={"accuracy": 0.5}, std={})
               for seeds in (full, partial)]  # fmt: skip
    combined = _combine_task(results, [0, 1])
    stacked, missing = (s.outcomes for s in combined.seeds)
    assert missing is None and stacked is not None and stacked.seeds == 2
    assert [d["correct"].tolist() for d in stacked.decode_seeds()] == [b.tolist() for b in bits]


def _cell(label: str, task: str | None, subsets: tuple[str, ...], fraction: float = 0.1) -> (
    ScoredReference
):  # fmt: skip
    return ScoredReference(label, fraction, task, subsets, result=None)  # type: ignore[arg-type]


def test_identical_subsets_are_named_together_not_shown_twice() -> None:
    a = [_cell("random_filter", None, ("x", "y", "z"))]
    same = [_cell("match_label", t, ("x", "y", "z")) for t in ("test1", "test4")]
    merged = merge_identical(a + same)
    assert [(r.label, r.task) for r in merged] == [("random_filter = match_label", None)]

    partly = [*same, _cell("match_label", "test2", ("p", "q", "r"))]
    merged = merge_identical(a + partly)
    assert [r.label for r in merged] == [
        "random_filter",
        *["match_label (= random_filter on test1, test4)"] * 3,
    ]
    other_fraction = [_cell("match_label", "test1", ("x", "y", "z"), fraction=0.05)]
    assert [r.label for r in merge_identical(a + other_fraction)] == [
        "random_filter", "match_label"]  # fmt: skip
