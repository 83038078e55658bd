"""The runner: exactly the subset's rows, every test example, reproducible, with a manifest."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from harness.datasets import Dataset
from harness.runner import EvalJob, canonical_rows, evaluate_subset, run_eval_job
from harness.settings import default_configs_dir
from harness.specs import RecipeSpec, load_benchmark
from harness.validation import subset_sha256
from submissions.errors import ConfigError, ValidationFailed
from submissions.schemas import EvalResult
from submissions.subset_file import write_subset_file


@pytest.fixture(scope="module")
def probe() -> RecipeSpec:
    return load_benchmark(default_configs_dir()).recipe("linear_probe")


def evaluate(ds: Dataset, recipe: RecipeSpec, rows: np.ndarray, **kw: object) -> EvalResult:
    rows = np.asarray(rows, np.int64)
    return evaluate_subset(
        ds=ds,
        recipe=recipe,
        pool_rows=rows,
        subset_sha256=subset_sha256(np.sort(rows)),
        fraction=0.25,
        task=kw.pop("task", None),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


def without_wall_time(result: EvalResult) -> dict[str, object]:
    data = json.loads(result.model_dump_json())
    data["manifest"].pop("wall_time_s")
    return data


def test_same_subset_in_another_order_gives_identical_results(
    tiny_dataset: Dataset, probe: RecipeSpec
) -> None:
    rows = np.random.default_rng(0).choice(300, size=75, replace=False)
    a = evaluate(tiny_dataset, probe, rows)
    b = evaluate(tiny_dataset, probe, rows[::-1].copy())
    assert without_wall_time(a) == without_wall_time(b)


def test_different_subsets_of_equal_size_give_different_models(
    tiny_dataset: Dataset, probe: RecipeSpec
) -> None:
    # Source b (pool rows 270..299) is what task test1 needs; the first 30 rows are all source a.
    # A probe that trained "on the first N rows" would score both subsets identically.
    with_b = evaluate(tiny_dataset, probe, np.r_[0:45, 270:300], task="test1")
    without_b = evaluate(tiny_dataset, probe, np.arange(75), task="test1")
    acc_b = with_b.tasks[0].mean["accuracy"]
    acc_a = without_b.tasks[0].mean["accuracy"]
    assert with_b.manifest.subset_sha256 != without_b.manifest.subset_sha256
    assert acc_b != acc_a
    assert acc_b > acc_a  # the rows that match the task's source help it


def test_subset_missing_a_class_is_scored_on_the_full_test_split(
    tiny_dataset: Dataset, probe: RecipeSpec
) -> None:
    labels = tiny_dataset.split("train")["label"].to_numpy()
    rows = np.flatnonzero(labels != 2)[:60]
    result = evaluate(tiny_dataset, probe, rows)
    assert result.classes_seen == 2 and result.subset_size == 60
    for task in result.tasks:
        test_split = tiny_dataset.spec.task(task.task).test
        assert task.test_size == tiny_dataset.split_size(test_split) == 60
        seed = task.seeds[0]
        y = tiny_dataset.split(test_split)["label"].to_numpy()
        if (y == 2).any():  # class 2 is scored: present and always wrong
            assert seed.per_class["2"] == 0.0
            assert seed.metrics["accuracy"] <= 1 - (y == 2).mean() + 1e-12
    test1 = next(t for t in result.tasks if t.task == "test1")
    assert set(test1.seeds[0].per_class) == {"0", "1", "2"}


def test_result_carries_a_complete_manifest(tiny_dataset: Dataset, probe: RecipeSpec) -> None:
    rows = np.arange(0, 300, 4)
    result = evaluate(tiny_dataset, probe, rows, seeds=[3])
    m = result.manifest
    assert m.recipe == "linear_probe" and m.recipe_hash == probe.config_hash()
    assert m.dataset_manifest_hash == tiny_dataset.manifest_hash()
    assert m.dataset_version == "0.1" and m.seeds == [3]
    assert m.subset_sha256 == subset_sha256(rows)
    assert {"python", "numpy", "torch"} <= set(m.libraries)
    assert m.device.startswith(("cpu", "cuda")) and m.wall_time_s > 0
    assert m.executor == "inline" and m.job_id is None and m.code_version
    assert [t.task for t in result.tasks] == ["test1", "test2"]
    assert result.tasks[0].mean.keys() == {"accuracy", "balanced_accuracy", "macro_f1"}


def test_one_task_only(tiny_dataset: Dataset, probe: RecipeSpec) -> None:
    result = evaluate(tiny_dataset, probe, np.arange(0, 300, 3), task="test2")
    assert result.task == "test2" and [t.task for t in result.tasks] == ["test2"]


def test_bad_rows_and_mislabelled_hashes_are_refused(
    tiny_dataset: Dataset, probe: RecipeSpec
) -> None:
    with pytest.raises(ValidationFailed, match="empty"):
        canonical_rows(np.array([], np.int64), pool_size=300)
    with pytest.raises(ValidationFailed, match="twice"):
        canonical_rows(np.array([1, 1]), pool_size=300)
    with pytest.raises(ValidationFailed, match="outside"):
        canonical_rows(np.array([1, 300]), pool_size=300)
    with pytest.raises(ValueError, match="subset_sha256"):
        evaluate_subset(
            ds=tiny_dataset, recipe=probe, pool_rows=np.arange(10), subset_sha256="0" * 64,
            fraction=0.1, task=None,
        )  # fmt: skip


def test_recipe_for_another_task_type_is_refused(tiny_dataset: Dataset, probe: RecipeSpec) -> None:
    regression_only = probe.model_copy(update={"task_types": ("regression",)})
    with pytest.raises(ConfigError):
        evaluate(tiny_dataset, regression_only, np.arange(30))


@pytest.fixture
def configs(tiny_dataset: Dataset, tmp_path: Path) -> Path:
    configs = tmp_path / "configs"
    configs.mkdir()
    shutil.copy(default_configs_dir() / "recipes.yaml", configs / "recipes.yaml")
    spec = tiny_dataset.spec.model_dump(mode="json", exclude={"name"})
    (configs / "datasets.yaml").write_text(yaml.safe_dump({"datasets": {"tiny": spec}}))
    return configs


def test_run_eval_job_validates_then_evaluates_the_file(
    tiny_dataset: Dataset, configs: Path, tmp_path: Path
) -> None:
    uids = tiny_dataset.uids("train")[::4]
    path = write_subset_file(tmp_path / "sub.npy", uids[::-1])  # file order must not matter
    job = EvalJob(
        dataset="tiny", fraction=0.25, task=None, recipe=None, subset_path=path,
        data_root=tiny_dataset.dir.root.parent, configs_dir=configs, seeds=(0, 1),
    )  # fmt: skip
    import pickle

    assert pickle.loads(pickle.dumps(job)) == job  # what submitit does with it
    result = run_eval_job(job)
    direct = evaluate(tiny_dataset, load_benchmark(configs).recipe("linear_probe"),
                      np.arange(0, 300, 4), seeds=[0, 1])  # fmt: skip
    assert without_wall_time(result) == without_wall_time(direct)
    assert result.tasks[0].std["accuracy"] == 0.0  # the probe is deterministic across seeds


def test_run_eval_job_rejects_an_invalid_file(
    tiny_dataset: Dataset, configs: Path, tmp_path: Path
) -> None:
    uids = np.append(tiny_dataset.uids("train")[:10], tiny_dataset.uids("test1")[:1])
    path = write_subset_file(tmp_path / "bad.npy", uids)
    job = EvalJob(
        dataset="tiny", fraction=0.25, subset_path=path,
        data_root=tiny_dataset.dir.root.parent, configs_dir=configs,
    )  # fmt: skip
    with pytest.raises(ValidationFailed):
        run_eval_job(job)
