"""Our baselines reproduce the research's on the demo benchmark (task test1 and test3, 0.1).

The research side is ``benchmarks/research_style.py``, written from the research code's
filters; ``benchmarks/research_parity.py`` prints the full comparison (all methods, accuracy).
Here, the issue's "done when":

- TSDS probabilities (our exact path) equal the research's computation with exact searches
  within 1e-6;
- the research-deterministic threshold methods, in their research-faithful variants (the
  research's captions name the class: ``captions=label``), keep the research's rows at equal
  budget (Jaccard >= 0.9; the research keeps n+1 rows, ``score >= sorted[n]``, so its ranking
  is cut at our budget);
- the cluster methods: see ``test_cluster_methods_match_the_research_with_our_k_and_seed``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from benchmarks import research_style as rs
from benchmarks.parity_cases import jaccard
from harness.datasets import Dataset
from harness.selection import load_baselines, select
from harness.selection.context import SelectionContext
from harness.selection.tsds import probabilities_for
from harness.settings import default_configs_dir

pytestmark = pytest.mark.slow

FRACTION = 0.1
TASKS = ("test1", "test3")


def features(ds: Dataset, task: str, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Pool and query arrays of ``kind`` as a selector sees them."""
    return SelectionContext.from_dataset(ds, task=task).features(kind)


def ours(ds: Dataset, method: str, task: str, **params: object) -> npt.NDArray[np.int64]:
    out = select(ds=ds, method=method, fraction=FRACTION, task=task, seed=0, params=params)
    return out.rows


@pytest.mark.parametrize("task", TASKS)
def test_tsds_probabilities_equal_the_research_computation(
    demo_dataset: Dataset, task: str
) -> None:
    params = load_baselines(default_configs_dir()).method("tsds").resolved_params()
    x, q = features(demo_dataset, task, "image")
    ctx = SelectionContext.from_dataset(demo_dataset, task=task)
    # exact_limit above the pool size: the density search is exact, as on the research side
    p_ours = probabilities_for(x, q, params | {"exact_limit": len(x)}, ctx=ctx)[0]
    kw = {k: params[k] for k in ("alpha", "C", "sigma", "max_k", "kde_k")}
    p_research = rs.tsds_probabilities(x, q, **kw)
    assert np.count_nonzero(p_ours) == np.count_nonzero(p_research)
    assert np.max(np.abs(p_ours - p_research)) <= 1e-6
    assert abs(p_ours.sum() - 1.0) < 1e-9


@pytest.mark.parametrize("task", TASKS)
def test_threshold_methods_keep_the_research_rows_at_equal_budget(
    demo_dataset: Dataset, task: str
) -> None:
    ds = demo_dataset
    budget = ds.spec.budget(FRACTION, pool_size=ds.pool_size)
    scores = np.asarray(ds.embeddings(ds.spec.pool, "clip_score"))  # captions with the label
    research = {
        "clip_score": rs.clip_score(scores, FRACTION, budget=budget),
        "image_alignment": rs.image_alignment(
            *features(ds, task, "image"), FRACTION, budget=budget
        ),
        "text_alignment": rs.text_alignment(*features(ds, task, "text"), FRACTION, budget=budget),
    }
    mine = {
        "clip_score": ours(ds, "clip_score", task, captions="label"),
        "image_alignment": ours(ds, "image_alignment", task),
        "text_alignment": ours(ds, "text_alignment", task, captions="label"),
    }
    for method, rows in mine.items():
        assert len(rows) == budget == len(research[method])
        assert jaccard(rows, research[method]) >= 0.9, method
    # the research's own threshold keeps at least one row more than n = int(N * fraction)
    assert len(rs.clip_score(scores, FRACTION)) > int(ds.pool_size * FRACTION)


@pytest.mark.parametrize(
    ("method", "kind", "params"),
    [
        ("image_based", "image", {}),
        ("text_based", "text", {"captions": "label"}),
        ("image_clip", "image", {}),  # the research's image_clip ignores its CLIP cut
    ],
)
@pytest.mark.parametrize("task", TASKS)
def test_cluster_methods_match_the_research_with_our_k_and_seed(
    demo_dataset: Dataset, task: str, method: str, kind: str, params: dict[str, object]
) -> None:
    """Cluster matching agrees when the k-means does. With the research's own k-means
    (k=1000, seed 0) it cannot: we cap k at one centroid per 39 pool rows (110 on the demo's
    4,300, where k=1000 makes clusters of ~4 rows) and draw the seed from the selection seed,
    and the Jaccard is ~0.75 there (benchmarks/research_parity.py). So the research's k-means
    is run with our k and our seed (both faiss k-means on all rows, no subsampling on the
    demo): the candidates must then be the same rows. The research keeps every candidate, we
    cut them to the budget; on the demo there are fewer than the budget, so the sets are equal.
    """
    ds = demo_dataset
    out = select(ds=ds, method=method, fraction=FRACTION, task=task, seed=0, params=params)
    k, seed = out.metadata["n_clusters"], out.metadata["kmeans_seed"]  # 110 on the demo
    research_fn = rs.text_based if method == "text_based" else rs.image_based
    research = research_fn(*features(ds, task, kind), k=k, seed=seed)
    assert set(out.rows.tolist()) <= set(research.tolist())
    assert out.metadata["natural_size"] == len(research)
    budget = ds.spec.budget(FRACTION, pool_size=ds.pool_size)
    if len(research) <= budget:
        assert out.rows.tolist() == research.tolist()
