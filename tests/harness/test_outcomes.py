"""Per-example outcomes: every seed's result carries them, in the test split's UID order, and
they reproduce the reported metrics (classification exactly)."""

from __future__ import annotations

import numpy as np
import pytest

from harness.datasets import Dataset
from harness.metrics import classification_scores, regression_scores
from harness.recipes.detection import detection_scores
from harness.recipes.reid import reid_scores
from harness.runner import evaluate_subset
from harness.settings import default_configs_dir
from harness.specs import RecipeSpec, load_benchmark
from harness.validation import subset_sha256
from submissions.detection_map import map_of
from submissions.outcomes import uids_digest
from submissions.schemas import EvalResult, ExampleOutcomes


@pytest.fixture(scope="module")
def result(tiny_dataset: Dataset) -> EvalResult:
    probe = load_benchmark(default_configs_dir()).recipe("linear_probe")
    rows = np.sort(np.random.default_rng(0).choice(300, size=75, replace=False)).astype(np.int64)
    return evaluate_subset(ds=tiny_dataset, recipe=probe, pool_rows=rows,
                           subset_sha256=subset_sha256(rows), fraction=0.25, task=None,
                           seeds=(0, 1))  # fmt: skip


def test_outcomes_reproduce_accuracy_per_seed_in_uid_order(
    tiny_dataset: Dataset, result: EvalResult
) -> None:
    for task in result.tasks:
        test = tiny_dataset.spec.task(task.task).test
        uids = tiny_dataset.uids(test)
        assert len(task.seeds) == 2
        for seed in task.seeds:
            out = seed.outcomes
            assert out is not None and out.kind == "correct" and out.order == "test_uid"
            assert out.n == task.test_size == len(uids)
            assert out.uids_sha256 == uids_digest(uids)
            correct = out.decode()["correct"]
            assert float(correct.mean()) == seed.metrics["accuracy"]  # exactly


def test_outcomes_survive_the_json_a_worker_posts(result: EvalResult) -> None:
    again = EvalResult.model_validate_json(result.model_dump_json())
    assert again == result


def test_results_store_keeps_outcomes(
    tiny_dataset: Dataset, tmp_path: pytest.TempPathFactory, result: EvalResult
) -> None:
    from harness.store import ResultsStore

    probe: RecipeSpec = load_benchmark(default_configs_dir()).recipe("linear_probe")
    rows = np.sort(np.random.default_rng(0).choice(300, size=75, replace=False)).astype(np.int64)
    store = ResultsStore(tmp_path)  # type: ignore[arg-type]
    kw = dict(ds=tiny_dataset, recipe=probe, pool_rows=rows, subset_sha256=subset_sha256(rows),
              fraction=0.25, task="test1", seeds=(0,), store=store)  # fmt: skip
    first = evaluate_subset(**kw)  # type: ignore[arg-type]
    reused = evaluate_subset(**kw)  # type: ignore[arg-type]
    assert reused.manifest.reused_seeds == [0]
    assert reused.tasks[0].seeds[0].outcomes == first.tasks[0].seeds[0].outcomes is not None


def test_regression_outcomes_are_squared_and_absolute_errors() -> None:
    t, p = np.array([1.0, 2.0, 4.0]), np.array([1.5, 2.0, 1.0])
    s = regression_scores(y_true=t, y_pred=p)
    out = ExampleOutcomes.of("error", s.outcomes, uids=["a", "b", "c"]).decode()
    assert out["sq_err"].tolist() == [0.25, 0.0, 9.0]
    assert out["abs_err"].tolist() == [0.5, 0.0, 3.0]
    assert float(out["sq_err"].astype(np.float64).mean()) == pytest.approx(s.metrics["mse"])


def test_classification_outcomes_give_balanced_accuracy_with_the_split_labels() -> None:
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    s = classification_scores(y_true=y, y_pred=p, n_classes=5)
    correct = s.outcomes["correct"]
    balanced = np.mean([correct[y == c].mean() for c in np.unique(y)])
    assert balanced == pytest.approx(s.metrics["balanced_accuracy"], abs=1e-12)


def test_reid_outcomes_count_only_answerable_queries() -> None:
    g = np.eye(3)
    s = reid_scores(query=g[:3], query_ids=np.array([0, 9, 1]), gallery=g,
                    gallery_ids=np.array([0, 1, 2]))  # fmt: skip
    hit, counted = s.outcomes["hit"], s.outcomes["counted"]
    assert counted.tolist() == [True, False, True] and hit.tolist() == [True, False, False]
    assert float(hit[counted].mean()) == s.metrics["rank1"]


def test_detection_matches_recompute_map_on_any_resample() -> None:
    rng = np.random.default_rng(1)
    truth, preds = [], []
    for _ in range(30):
        k = int(rng.integers(0, 4))
        t = np.column_stack([rng.integers(0, 3, k), rng.uniform(0.3, 0.7, (k, 2)),
                             rng.uniform(0.05, 0.3, (k, 2))])  # fmt: skip
        xyxy = np.column_stack([t[:, 1] - t[:, 3] / 2, t[:, 2] - t[:, 4] / 2,
                                t[:, 1] + t[:, 3] / 2, t[:, 2] + t[:, 4] / 2])  # fmt: skip
        p = np.column_stack([xyxy + rng.normal(0, 0.02, xyxy.shape),
                             rng.uniform(0.05, 1, k).astype(np.float32), t[:, 0]])  # fmt: skip
        p[rng.uniform(size=k) < 0.2, 5] = 2
        truth.append(t), preds.append(p)
    s = detection_scores(truth=truth, preds=preds)
    stored = ExampleOutcomes.of("detection_matches", s.outcomes, uids=[str(i) for i in range(30)])
    arrays = stored.decode()
    assert map_of(arrays) == pytest.approx(s.metrics, abs=1e-12)
    picked = rng.integers(0, 30, 30)  # a bootstrap resample: the same as scoring those images
    again = detection_scores(truth=[truth[i] for i in picked], preds=[preds[i] for i in picked])
    assert map_of(arrays, picked) == pytest.approx(again.metrics, abs=1e-12)
