"""The baselines on the real demo benchmark, scored with the fixed linear-probe recipe.

Demo tasks (configs/datasets.yaml): test1 = UCI digits, a source the MNIST-heavy pool
under-represents (covariate shift); test2 = MNIST digits 0-4 (label shift); test3 = UCI 5-9.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.datasets import Dataset
from harness.selection import BaselinesConfig, load_baselines, method_names, select
from harness.selection.api import write_selection
from harness.settings import default_configs_dir
from harness.validation import load_and_validate

pytestmark = pytest.mark.slow

TASKS = (None, "test1", "test2", "test3", "test4")
# A method that trains a network on the images (a 50-epoch ResNet-18 by default): one task and
# fraction at tiny parameters here; tests/harness/selection/test_gradmatch.py covers the rest.
NETWORK = {
    "gradmatch": {
        "epochs": 1,
        "image_size": 16,
        "selection_batch": 256,
        "eval_batch_size": 256,
        "num_workers": 0,
    }
}


@pytest.fixture(scope="module")
def baselines() -> BaselinesConfig:
    return load_baselines(default_configs_dir())


@pytest.mark.parametrize("method", method_names())
def test_every_method_fraction_task_validates_on_the_demo(
    demo_dataset: Dataset, baselines: BaselinesConfig, tmp_path: Path, method: str
) -> None:
    spec = baselines.method(method)
    tasks, fractions = TASKS, demo_dataset.spec.fractions
    if method in NETWORK:
        tasks, fractions = ("test1",), fractions[:1]
    for task in tasks:
        if task is None and spec.needs_query:
            continue
        for fraction in fractions:
            out = select(
                ds=demo_dataset,
                method=method,
                fraction=fraction,
                task=task,
                seed=0,
                baselines=baselines,
                params=NETWORK.get(method),
            )
            path = write_selection(out, tmp_path / f"{task}-{fraction}.npy")
            report = load_and_validate(path, ds=demo_dataset, fraction=fraction, task=task)
            assert report.pool_rows.tolist() == out.rows.tolist()
            budget = demo_dataset.spec.budget(fraction, pool_size=demo_dataset.pool_size)
            natural = out.metadata["natural_size"] + out.metadata.get("filled", 0)
            assert out.size == min(budget, natural), (task, fraction, out.metadata)


def uci_share(ds: Dataset, rows: np.ndarray) -> float:
    return float(np.mean(ds.split(ds.spec.pool)["source"].to_numpy()[rows] == "uci"))


@pytest.mark.parametrize("method", ["image_alignment", "text_alignment", "tsds"])
def test_alignment_and_tsds_find_the_under_represented_source(
    demo_dataset: Dataset, baselines: BaselinesConfig, method: str
) -> None:
    kw = {"ds": demo_dataset, "fraction": 0.1, "task": "test1", "baselines": baselines}
    random_share = max(
        uci_share(demo_dataset, select(method="random_filter", seed=s, **kw).rows)  # type: ignore[arg-type]
        for s in range(3)
    )
    share = uci_share(demo_dataset, select(method=method, seed=0, **kw).rows)  # type: ignore[arg-type]
    assert random_share < 0.15  # the pool is 7% UCI
    assert share > 3 * random_share


def probe_accuracy(ds: Dataset, out_rows: np.ndarray, task: str, fraction: float) -> float:
    from harness.runner import evaluate_subset
    from harness.specs import load_benchmark
    from harness.validation import subset_sha256

    recipe = load_benchmark(default_configs_dir()).recipe("linear_probe")
    result = evaluate_subset(
        ds=ds,
        recipe=recipe,
        pool_rows=out_rows,
        subset_sha256=subset_sha256(out_rows),
        fraction=fraction,
        task=task,
        seeds=(0,),
    )
    return float(result.tasks[0].mean["accuracy"])


@pytest.mark.parametrize(
    ("task", "methods"),
    [
        ("test1", ["image_alignment", "text_alignment", "tsds", "image_based"]),
        ("test2", ["match_label", "match_dist", "tsds_entropic"]),  # tsds: 0.76 < random 0.86
        ("test3", ["image_alignment", "tsds", "image_based"]),
    ],
)
def test_task_aware_methods_beat_random_with_the_linear_probe(
    demo_dataset: Dataset, baselines: BaselinesConfig, task: str, methods: list[str]
) -> None:
    fraction = 0.1
    kw = {"ds": demo_dataset, "fraction": fraction, "task": task, "baselines": baselines}
    random_acc = max(
        probe_accuracy(
            demo_dataset, select(method="random_filter", seed=s, **kw).rows, task, fraction
        )  # type: ignore[arg-type]
        for s in range(2)
    )
    for method in methods:
        acc = probe_accuracy(demo_dataset, select(method=method, seed=0, **kw).rows, task, fraction)  # type: ignore[arg-type]
        assert acc > random_acc + 0.03, (task, method, acc, random_acc)
