"""Re-identification: rank-k and mAP, the triplet loss, P x K batches, end to end on the demo."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.datasets import Dataset
from harness.recipes.params import ReidParams
from harness.recipes.reid import batch_hard_triplet, pk_batches, reid_scores
from harness.runner import evaluate_subset
from harness.specs import RecipeSpec
from harness.validation import subset_sha256


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_scores_by_hand() -> None:
    gallery = _unit(np.array([[1.0, 0], [0.9, 0.1], [0, 1.0], [0.1, 0.9]]))
    gallery_ids = np.array([1, 2, 2, 1])
    query = _unit(np.array([[1.0, 0.05], [0.0, 1.0]]))
    s = reid_scores(
        query=query, query_ids=np.array([1, 2]), gallery=gallery, gallery_ids=gallery_ids
    ).metrics
    # Query 1 ranks gallery 0 (id 1), 1 (id 2), 3 (id 1), 2: AP = (1/1 + 2/3) / 2.
    # Query 2 ranks gallery 2 (id 2), 3 (id 1), 1 (id 2), 0: AP = (1/1 + 2/3) / 2.
    assert s["rank1"] == 1.0 and s["rank5"] == 1.0
    assert s["map"] == pytest.approx(5 / 6)
    swapped = reid_scores(
        query=query, query_ids=np.array([2, 1]), gallery=gallery, gallery_ids=gallery_ids
    ).metrics
    assert swapped["rank1"] == 0.0 and swapped["map"] < s["map"]


def test_random_embeddings_score_near_chance() -> None:
    rng = np.random.default_rng(0)
    ids = np.repeat(np.arange(50), 4)
    s = reid_scores(
        query=_unit(rng.normal(size=(50, 16))),
        query_ids=np.arange(50),
        gallery=_unit(rng.normal(size=(200, 16))),
        gallery_ids=ids,
    ).metrics
    assert s["rank1"] < 0.12  # chance: 1/50 = 0.02


def test_unanswerable_queries_are_left_out() -> None:
    g = _unit(np.eye(3))
    s = reid_scores(
        query=g[:2], query_ids=np.array([0, 9]), gallery=g, gallery_ids=np.array([0, 1, 2])
    ).metrics
    assert s["rank1"] == 1.0


def test_batch_hard_triplet() -> None:
    ids = torch.tensor([0, 0, 1, 1])
    apart = torch.nn.functional.normalize(torch.tensor([[1.0, 0], [1, 0.01], [-1, 0], [-1, 0.01]]))
    assert float(batch_hard_triplet(apart, ids, margin=0.3)) == 0.0
    mixed = torch.nn.functional.normalize(torch.tensor([[1.0, 0], [-1, 0], [1, 0.01], [-1, 0.01]]))
    loss = batch_hard_triplet(mixed, ids, margin=0.3)
    assert float(loss) == pytest.approx(2.0 + 0.3, abs=1e-3)  # hardest pos 2, hardest neg ~0


def test_pk_batches_hold_p_identities_times_k() -> None:
    ids = np.array([0, 0, 0, 1, 1, 2, 3, 3, 3, 3, 4])
    for batch in pk_batches(ids, p=3, k=4, n_batches=5, rng=np.random.default_rng(0)):
        chosen = ids[batch]
        assert len(batch) == 12
        assert sorted(np.unique(chosen, return_counts=True)[1]) == [4, 4, 4]
        assert not set(chosen) & {2, 4}  # single-image identities are never anchors


def test_params_need_whole_identities() -> None:
    with pytest.raises(ValueError, match="multiple"):
        ReidParams(backbone="test_resnet", batch_size=30, instances_per_id=4)


@pytest.mark.slow
def test_demo_end_to_end_beats_chance(
    demo_reid_dataset: Dataset, shipped_recipes: dict[str, RecipeSpec]
) -> None:
    ds = demo_reid_dataset
    recipe = shipped_recipes[ds.spec.default_recipe]
    rows = np.sort(np.random.default_rng(0).choice(ds.pool_size, 330, replace=False))
    result = evaluate_subset(
        ds=ds,
        recipe=recipe,
        pool_rows=rows,
        subset_sha256=subset_sha256(rows),
        fraction=0.25,
        task=None,
    )
    assert result.subset_size == 330 and result.recipe == "reid_demo"
    for t in result.tasks:
        test = ds.split(ds.spec.task(t.task).test)
        chance = 1 / test["label"].nunique()
        assert t.test_size == len(test)
        assert t.mean["rank1"] > 4 * chance, t
        assert t.mean["rank1"] <= t.mean["rank5"]
        # The board's columns: the spec's primary and secondary metrics are reported.
        assert {ds.spec.primary_metric, ds.spec.secondary_metric} <= set(t.mean)
