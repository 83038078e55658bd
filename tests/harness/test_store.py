"""The results store: a score is computed once per what determines it, then read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.datasets import Dataset
from harness.recipes import registry
from harness.runner import evaluate_subset
from harness.settings import default_configs_dir
from harness.specs import load_benchmark
from harness.store import ResultsStore, ScoreKeys
from harness.validation import subset_sha256

ROWS = np.arange(0, 300, 4)


@pytest.fixture
def trained(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Seeds the linear probe actually trained (each call of its train function)."""
    calls: list[int] = []
    kind = registry.get_kind("linear_probe")
    real = kind.train

    def counting(*, ctx: Any, seed: int) -> Any:
        calls.append(seed)
        return real(ctx=ctx, seed=seed)

    monkeypatch.setitem(registry.KINDS._items, "linear_probe",
                        registry.RecipeKind(**{**kind.__dict__, "train": counting}))  # fmt: skip
    return calls


def run(ds: Dataset, store: ResultsStore | None, **recipe_update: Any) -> Any:
    recipe = load_benchmark(default_configs_dir()).recipe("linear_probe")
    recipe = recipe.model_copy(update={"seeds": (0, 1), **recipe_update})
    return evaluate_subset(ds=ds, recipe=recipe, pool_rows=ROWS, subset_sha256=subset_sha256(ROWS),
                           fraction=0.25, task=None, store=store)  # fmt: skip


def test_second_evaluation_trains_nothing(
    tiny_dataset: Dataset, tmp_path: Path, trained: list[int]
) -> None:
    store = ResultsStore(tmp_path / "runs")
    first = run(tiny_dataset, store)
    assert trained == [0, 1] and first.manifest.reused_seeds == []
    again = run(tiny_dataset, store)
    assert trained == [0, 1] and again.manifest.reused_seeds == [0, 1]
    assert [t.mean for t in again.tasks] == [t.mean for t in first.tasks]
    assert again.manifest.embedding_fingerprint == first.manifest.embedding_fingerprint
    other = run(tiny_dataset, store, params={"C": 0.5, "max_iter": 1000, "tol": 1e-4})
    assert trained == [0, 1, 0, 1] and other.manifest.reused_seeds == []  # another recipe hash
    assert run(tiny_dataset, None).manifest.reused_seeds == [] and trained[-2:] == [0, 1]


def test_query_scores_and_keys(tiny_dataset: Dataset, tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "runs")
    result = run(tiny_dataset, store)
    t1 = result.tasks[0]
    assert t1.query_size == 20 and t1.query_mean is not None
    assert set(t1.query_mean) == set(t1.mean)  # the same metrics, on the query split
    recipe = load_benchmark(default_configs_dir()).recipe("linear_probe")
    keys = ScoreKeys.of(tiny_dataset, recipe.model_copy(update={"seeds": (0, 1)}),
                        subset_sha256(ROWS))  # fmt: skip
    stored = store.get(keys.key("test1", 1))
    assert stored is not None and stored.metrics == t1.seeds[1].metrics
    assert stored.key.embedding == result.manifest.embedding_fingerprint != "-"
    table = store.table()
    assert len(table) == 4 and {"test.accuracy", "query.accuracy"} <= set(table.columns)
    assert len(store.table()) == 4 and (tmp_path / "runs/results.parquet").is_file()
