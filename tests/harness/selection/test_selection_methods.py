"""Every baseline on the tiny benchmark: valid subsets, exact budgets, real task signal.

The tiny dataset (tests/conftest.py): source "b" is 10% of the pool and is task test1's
source (covariate shift); task test2 is classes {0, 1} of source "a" (label shift).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from harness.datasets import Dataset
from harness.selection import BaselinesConfig, load_baselines, method_names, select
from harness.selection.api import write_selection
from harness.settings import default_configs_dir
from harness.validation import load_and_validate
from submissions.errors import ConfigError

FRACTIONS = (0.1, 0.25, 0.5)
TASKS = (None, "test1", "test2")
# Parameter overrides that keep a method's run in a test short (a 50-epoch ResNet otherwise).
FAST = {"gradmatch": {"epochs": 1, "image_size": 16, "selection_batch": 16, "num_workers": 0}}


def copy_with_nolabel_scores(ds: Dataset, root: Path) -> Dataset:
    """A copy of ``ds`` (images linked) with a label-free CLIP score that differs from the other."""
    shutil.copytree(ds.dir.root, root / ds.spec.path, ignore=shutil.ignore_patterns("images"))
    (root / ds.spec.path / ds.spec.image_root).symlink_to(ds.image_root, target_is_directory=True)
    emb = root / ds.spec.path / "embeddings" / ds.set_name / ds.spec.pool
    img = np.load(emb / "image.npy")
    np.save(emb / "clip_score_nolabel.npy", ((img[:, 1] + 1) / 2).astype(np.float32))
    return Dataset.open(ds.spec, data_root=root)


@pytest.fixture(scope="module")
def ds(tiny_dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return copy_with_nolabel_scores(tiny_dataset, tmp_path_factory.mktemp("sel"))


@pytest.fixture(scope="module")
def baselines() -> BaselinesConfig:
    return load_baselines(default_configs_dir())


def expected_size(meta: dict[str, object], budget: int) -> int:
    natural = int(meta["natural_size"]) + int(meta.get("filled", 0))  # type: ignore[call-overload]
    return min(budget, natural)


@pytest.mark.parametrize("fraction", FRACTIONS)
@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("method", method_names())
def test_every_method_gives_a_valid_subset(
    ds: Dataset,
    baselines: BaselinesConfig,
    tmp_path: Path,
    method: str,
    task: str | None,
    fraction: float,
) -> None:
    kwargs = {"ds": ds, "method": method, "fraction": fraction, "params": FAST.get(method)}
    if task is None and baselines.method(method).needs_query:
        with pytest.raises(ConfigError, match="needs a task"):
            select(task=None, seed=0, baselines=baselines, **kwargs)  # type: ignore[arg-type]
        return
    out = select(task=task, seed=0, baselines=baselines, **kwargs)  # type: ignore[arg-type]
    budget = ds.spec.budget(fraction, pool_size=ds.pool_size)
    assert out.rows.dtype == np.int64
    assert np.all(np.diff(out.rows) > 0), "sorted and unique"
    assert 0 < out.size <= budget
    assert out.size == expected_size(out.metadata, budget), out.metadata
    assert out.uids is not None
    assert list(out.uids) == list(ds.uids("train")[out.rows])
    report = load_and_validate(
        write_selection(out, tmp_path / "s.npy"), ds=ds, fraction=fraction, task=task
    )
    assert report.pool_rows.tolist() == out.rows.tolist()


def source_b_count(ds: Dataset, rows: np.ndarray) -> int:
    return int((ds.split("train")["source"].to_numpy()[rows] == "b").sum())


@pytest.mark.parametrize("fraction", (0.1, 0.25))
@pytest.mark.parametrize(
    "method", ["image_alignment", "text_alignment", "tsds", "image_based", "text_based"]
)
def test_task_aware_methods_find_the_target_source(
    ds: Dataset, baselines: BaselinesConfig, method: str, fraction: float
) -> None:
    kwargs = {"ds": ds, "fraction": fraction, "task": "test1", "baselines": baselines}
    random_counts = [
        source_b_count(ds, select(method="random_filter", seed=s, **kwargs).rows)  # type: ignore[arg-type]
        for s in range(5)
    ]
    chosen = select(method=method, seed=0, **kwargs)  # type: ignore[arg-type]
    # the pool is 10% source b: random keeps ~10% of the budget from it
    assert source_b_count(ds, chosen.rows) >= 2 * max(random_counts), (
        method,
        random_counts,
        chosen.metadata,
    )


@pytest.mark.parametrize("fraction", FRACTIONS)
def test_match_label_keeps_only_query_classes(
    ds: Dataset, baselines: BaselinesConfig, fraction: float
) -> None:
    out = select(
        ds=ds, method="match_label", fraction=fraction, task="test2", seed=0, baselines=baselines
    )
    labels = ds.split("train")["label"].to_numpy()
    assert set(labels[out.rows].tolist()) <= {0, 1}
    assert out.metadata["natural_size"] == int(np.isin(labels, [0, 1]).sum())


@pytest.mark.parametrize("task", ["test1", "test2"])
@pytest.mark.parametrize("fraction", FRACTIONS)
def test_match_dist_follows_the_query_label_distribution(
    ds: Dataset, baselines: BaselinesConfig, task: str, fraction: float
) -> None:
    out = select(
        ds=ds, method="match_dist", fraction=fraction, task=task, seed=0, baselines=baselines
    )
    pool = ds.split("train")["label"].to_numpy()
    labels = pool[out.rows]
    query = ds.split(ds.spec.task(task).query)["label"].to_numpy()
    budget = ds.spec.budget(fraction, pool_size=ds.pool_size)
    assert set(labels.tolist()) <= set(query.tolist())
    assert out.size == min(budget, int(np.isin(pool, query).sum()))
    classes = np.unique(query)
    counts = {c: int((labels == c).sum()) for c in classes}
    capacity = {c: int((pool == c).sum()) for c in classes}
    share = {c: float(np.mean(query == c)) * out.size for c in classes}
    capped = [c for c in classes if counts[c] == capacity[c] < share[c]]
    for c in classes:
        assert counts[c] <= capacity[c]
        if not capped:  # the query's proportions, up to rounding
            assert abs(counts[c] - share[c]) < 1.0, (c, counts, share)
        elif c not in capped:  # a capped class's shortfall goes to the others
            assert counts[c] >= np.floor(share[c]), (c, counts, share)


def test_label_methods_beat_random_on_the_label_shift(
    ds: Dataset, baselines: BaselinesConfig
) -> None:
    kwargs = {"ds": ds, "fraction": 0.25, "task": "test2", "seed": 0, "baselines": baselines}
    labels = ds.split("train")["label"].to_numpy()
    rand = select(method="random_filter", **kwargs)  # type: ignore[arg-type]
    assert np.isin(labels[rand.rows], [0, 1]).mean() < 0.8  # 2 of 3 classes: ~0.67
    for method in ("match_label", "match_dist"):
        out = select(method=method, **kwargs)  # type: ignore[arg-type]
        assert np.isin(labels[out.rows], [0, 1]).all()


@pytest.mark.parametrize(
    ("method", "task"),
    [
        ("random_filter", None),
        ("no_filter", None),
        ("clip_score", None),
        ("image_based", "test1"),
        ("image_clip", "test2"),
        ("tsds", "test1"),
        ("gradmatch_embedding", "test1"),
        ("gradmatch", "test1"),  # tiny parameters (FAST)
        ("match_dist", "test2"),
    ],
)
def test_same_seed_same_file(
    ds: Dataset, baselines: BaselinesConfig, tmp_path: Path, method: str, task: str | None
) -> None:
    def run(seed: int, name: str) -> bytes:
        out = select(
            ds=ds,
            method=method,
            fraction=0.25,
            task=task,
            seed=seed,
            baselines=baselines,
            params=FAST.get(method),
        )
        return write_selection(out, tmp_path / name).read_bytes()

    assert run(3, "a.npy") == run(3, "b.npy")


@pytest.mark.parametrize("method", ["random_filter", "tsds", "match_label"])
def test_other_seed_other_subset(ds: Dataset, baselines: BaselinesConfig, method: str) -> None:
    kwargs = {"ds": ds, "method": method, "fraction": 0.1, "task": "test1", "baselines": baselines}
    a = select(seed=0, **kwargs)  # type: ignore[arg-type]
    b = select(seed=1, **kwargs)  # type: ignore[arg-type]
    assert a.rows.tolist() != b.rows.tolist()


@pytest.mark.parametrize("captions", ["nolabel", "label"])
def test_clip_score_uses_the_chosen_caption_variant(
    ds: Dataset, baselines: BaselinesConfig, captions: str
) -> None:
    out = select(
        ds=ds,
        method="clip_score",
        fraction=0.1,
        task=None,
        seed=0,
        params={"captions": captions},
        baselines=baselines,
    )
    name = "clip_score_nolabel" if captions == "nolabel" else "clip_score"
    scores = ds.embeddings("train", name)
    assert scores[out.rows].min() >= np.sort(scores)[-out.size]
    assert out.metadata["captions"] == captions


def test_default_text_variant_is_label_free(baselines: BaselinesConfig) -> None:
    for method in ("clip_score", "text_based", "text_alignment", "image_clip", "tsds"):
        assert baselines.method(method).resolved_params().get("captions") == "nolabel"
