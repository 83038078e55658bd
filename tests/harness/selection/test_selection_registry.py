"""The registry, configs/baselines.yaml, and the numeric building blocks of the selectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from harness.selection import SelectionContext, load_baselines, method_names, selector
from harness.selection.api import SelectionBug, check_output, run_selector
from harness.selection.faiss_ops import (
    assign_nearest,
    kmeans_cosine,
    knn_cosine,
    max_cosine,
    mean_cosine,
    sample_without_replacement,
    top_k,
)
from harness.selection.gradmatch_embedding import omp_positive
from harness.selection.labels import allocate
from harness.selection.registry import SelectionOutput, check_params, param_defaults
from harness.selection.tsds_entropic import transport_mass
from harness.settings import default_configs_dir
from submissions.errors import ConfigError, UnknownName

SIXTEEN = {
    "no_filter",
    "random_filter",
    "clip_score",
    "image_based",
    "text_based",
    "image_clip",
    "image_alignment",
    "text_alignment",
    "tsds",
    "gradmatch",
    "gradmatch_embedding",
    "match_label",
    "match_dist",
    "zcore",
    "prism",
    "tsds_entropic",
}


def unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


# --- registry and config ---------------------------------------------------------------------


def test_all_sixteen_methods_are_registered_and_configured() -> None:
    assert set(method_names()) == SIXTEEN
    config = load_baselines(default_configs_dir())
    assert set(config.names()) == SIXTEEN
    for name in SIXTEEN:
        config.method(name).resolved_params()  # every shipped param set validates


def test_unknown_method_suggests_close_names() -> None:
    with pytest.raises(UnknownName, match="random_filter"):
        selector("random_filtr")
    with pytest.raises(UnknownName, match="Did you mean 'tsds'"):
        load_baselines(default_configs_dir()).method("tsdss")


def test_param_typo_and_wrong_type_fail_with_valid_params() -> None:
    with pytest.raises(ConfigError, match=r"temprature.*valid parameters: .*temperature=0\.05"):
        check_params("tsds_entropic", {"temprature": 0.1})
    with pytest.raises(ConfigError, match="captions"):
        check_params("text_alignment", {"captions": "with-labels"})
    with pytest.raises(ConfigError, match="n_clusters"):
        check_params("image_based", {"n_clusters": "many"})
    assert check_params("tsds_entropic", {"temperature": "0.1"})["temperature"] == 0.1
    assert "captions" in param_defaults("clip_score")


def write_config(tmp_path: Path, edit: dict[str, dict[str, object]]) -> Path:
    raw = yaml.safe_load((default_configs_dir() / "baselines.yaml").read_text())
    for name, body in edit.items():
        if body is None:
            del raw["methods"][name]
        else:
            raw["methods"][name].update(body)
    (tmp_path / "baselines.yaml").write_text(yaml.safe_dump(raw))
    return tmp_path


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"tsds": {"params": {"neighbors": 5}}}, r"methods\.tsds\.params.*neighbors"),
        ({"tsds": {"needs_qery": True}}, r"needs_qery.*valid keys"),
        ({"match_dist": None}, r"missing entries: \['match_dist'\]"),
        ({"image_based": {"params": {"n_clusters": "x"}}}, "n_clusters"),
    ],
)
def test_bad_baselines_yaml_fails_at_load(
    tmp_path: Path, edit: dict[str, dict[str, object]], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_baselines(write_config(tmp_path, edit))


def test_output_contract_is_enforced() -> None:
    def bad(rows: list[int]) -> SelectionOutput:
        return SelectionOutput(rows=np.array(rows, dtype=np.int64), metadata={"natural_size": 3})

    check_output(bad([0, 2, 5]), pool_size=10, budget=3, method="m")
    for rows, msg in [
        ([2, 0], "sorted"),
        ([1, 1], "sorted"),
        ([0, 10], "outside"),
        ([0, 1, 2, 3], "budget"),
    ]:
        with pytest.raises(SelectionBug, match=msg):
            check_output(bad(rows), pool_size=10, budget=3, method="m")


def test_query_methods_need_a_task() -> None:
    ctx = SelectionContext.from_arrays(pool={"image": unit(np.random.default_rng(0), 50, 8)})
    with pytest.raises(ConfigError, match="needs a task"):
        run_selector(ctx, "image_alignment", 5, seed=0, params={})


# --- numeric building blocks ------------------------------------------------------------------


def test_top_k_breaks_ties_by_row_and_ranks_nan_last() -> None:
    scores = np.array([1.0, 3.0, 3.0, np.nan, 3.0, 2.0])
    assert top_k(scores, 2).tolist() == [1, 2]
    assert top_k(scores, 4).tolist() == [1, 2, 4, 5]
    assert top_k(scores, 6).tolist() == list(range(6))
    assert top_k(scores, 0).tolist() == []


@pytest.mark.parametrize("chunk_rows", [7, 64, 1000])
def test_knn_cosine_matches_brute_force_across_chunks(chunk_rows: int) -> None:
    rng = np.random.default_rng(1)
    base, q = rng.normal(size=(300, 12)), rng.normal(size=(9, 12))  # not normalised on input
    sims, ids = knn_cosine(q, base.astype(np.float32), k=10, chunk_rows=chunk_rows)
    bn = base / np.linalg.norm(base, axis=1, keepdims=True)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    full = qn @ bn.T
    want = np.argsort(-full, axis=1)[:, :10]
    assert ids.tolist() == want.tolist()
    np.testing.assert_allclose(sims, np.take_along_axis(full, want, 1), atol=1e-5)


def test_mean_and_max_cosine_match_the_dense_definition() -> None:
    rng = np.random.default_rng(2)
    x, q = rng.normal(size=(200, 6)).astype(np.float32), unit(rng, 15, 6)
    dense = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ q.T
    np.testing.assert_allclose(mean_cosine(x, q, chunk_rows=33), dense.mean(1), atol=1e-5)
    np.testing.assert_allclose(max_cosine(x, q, chunk_rows=33), dense.max(1), atol=1e-5)
    rows = np.array([5, 1, 150])
    np.testing.assert_allclose(max_cosine(x, q, rows=rows), dense.max(1)[rows], atol=1e-5)


def test_kmeans_finds_separated_clusters_and_assignment_is_consistent() -> None:
    rng = np.random.default_rng(3)
    centres = unit(rng, 4, 16)
    truth = rng.integers(0, 4, size=800)
    x = centres[truth] + 0.05 * rng.normal(size=(800, 16)).astype(np.float32)
    c = kmeans_cosine(x, k=4, seed=0, nredo=5)
    labels = assign_nearest(x, c, chunk_rows=100)
    # each found cluster is one true cluster (a relabelling)
    pairs = set(zip(truth.tolist(), labels.tolist(), strict=True))
    assert len(pairs) == 4 and len({p[1] for p in pairs}) == 4
    np.testing.assert_array_equal(c, kmeans_cosine(x, k=4, seed=0, nredo=5))


def test_allocate_is_proportional_then_water_fills() -> None:
    w = np.array([1.0, 1.0, 2.0])
    assert allocate(8, w, np.array([10, 10, 10])).tolist() == [2, 2, 4]
    assert allocate(8, w, np.array([10, 10, 1])).tolist() == [4, 3, 1]
    assert allocate(50, w, np.array([3, 4, 5])).tolist() == [3, 4, 5]
    assert allocate(5, np.array([0.0, 1.0]), np.array([9, 9])).tolist() == [0, 5]


def test_sampling_without_replacement_follows_the_weights() -> None:
    p = np.array([0.0, 1.0, 1.0, 8.0, 0.0])
    assert sample_without_replacement(p, 10, np.random.default_rng(0)).tolist() == [1, 2, 3]
    picks = [sample_without_replacement(p, 1, np.random.default_rng(s))[0] for s in range(400)]
    share = np.mean(np.array(picks) == 3)
    assert 0.7 < share < 0.9  # 8/10 expected
    assert not set(picks) & {0, 4}


def test_omp_recovers_the_atoms_of_a_positive_combination() -> None:
    rng = np.random.default_rng(4)
    atoms = rng.normal(size=(200, 60))
    target = 2.0 * atoms[17] + 1.0 * atoms[42] + 0.5 * atoms[99]
    assert sorted(omp_positive(atoms, target, steps=10, tol=1e-8)) == [17, 42, 99]


# --- behaviour on synthetic data --------------------------------------------------------------


def shifted_pool(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """1,000 pool rows around two centres (10% near the query's) and 40 query rows."""
    a, b = unit(rng, 2, 32)
    src = (rng.random(1000) < 0.1).astype(int)
    x = np.where(src[:, None] == 1, b, a) + 0.15 * rng.normal(size=(1000, 32))
    q = b + 0.15 * rng.normal(size=(40, 32))
    return x.astype(np.float32), q.astype(np.float32), src


@pytest.mark.parametrize("method", ["image_alignment", "tsds", "tsds_entropic", "image_based"])
def test_query_aware_methods_prefer_the_query_region(method: str) -> None:
    rng = np.random.default_rng(5)
    x, q, src = shifted_pool(rng)
    ctx = SelectionContext.from_arrays(pool={"image": x}, query={"image": q})
    out = run_selector(ctx, method, 80, seed=0, params={})
    assert src[out.rows].mean() > 0.9


def duplicates_near_query(copies: int) -> tuple[np.ndarray, np.ndarray]:
    """``copies`` identical rows next to one query point, plus 200 rows farther away."""
    rng = np.random.default_rng(6)
    q = unit(rng, 1, 16)
    dup = np.repeat(q + 0.01 * unit(rng, 1, 16), copies, axis=0)
    others = q + 0.35 * rng.normal(size=(200, 16))
    return np.vstack([dup, others]).astype(np.float32), q.astype(np.float32)


def test_tsds_entropic_density_term_gives_duplicates_the_mass_of_one_point() -> None:
    def group_mass(copies: int, diversity: float) -> float:
        x, q = duplicates_near_query(copies)
        ctx = SelectionContext.from_arrays(pool={"image": x}, query={"image": q})
        sims, ids = knn_cosine(q, x, k=len(x))
        p = transport_mass(ctx, x, sims, ids, temperature=0.1, bandwidth=0.1, diversity=diversity)
        assert p.sum() == pytest.approx(1.0)
        return float(p[:copies].sum())

    assert group_mass(40, 0.0) > 0.75  # without the KDE term the copies take most of the mass
    assert group_mass(40, 1.0) == pytest.approx(group_mass(1, 1.0), rel=0.05)


def test_tsds_entropic_diversity_draws_fewer_duplicates() -> None:
    x, q = duplicates_near_query(40)
    ctx = SelectionContext.from_arrays(pool={"image": x}, query={"image": q})

    def dup_count(diversity: float) -> int:
        params = {"neighbours": 240, "temperature": 0.1, "diversity": diversity}
        out = run_selector(ctx, "tsds_entropic", 30, seed=0, params=params)
        return int((out.rows < 40).sum())

    assert dup_count(0.0) >= 20
    assert dup_count(1.0) <= 12


def test_gradmatch_embedding_fills_the_budget_and_reports_what_omp_chose() -> None:
    rng = np.random.default_rng(7)
    x, q, _ = shifted_pool(rng)
    labels = rng.integers(0, 3, size=1000)
    ctx = SelectionContext.from_arrays(
        pool={"image": x, "label": labels},
        query={"image": q, "label": rng.integers(0, 3, size=40)},
    )
    out = run_selector(ctx, "gradmatch_embedding", 120, seed=0, params={"max_atoms": 250})
    assert out.size == 120
    assert out.metadata["batch_size"] == 4 and out.metadata["atoms"] == 250
    assert out.metadata["natural_size"] + out.metadata["filled"] == 120
    assert 0 < out.metadata["natural_size"] <= 120


def test_cluster_cut_follows_the_query_votes() -> None:
    rng = np.random.default_rng(8)
    a, b = unit(rng, 2, 32)
    x = np.vstack([a + 0.2 * rng.normal(size=(500, 32)), b + 0.2 * rng.normal(size=(500, 32))])
    q = np.vstack([a + 0.2 * rng.normal(size=(30, 32)), b + 0.2 * rng.normal(size=(10, 32))])
    ctx = SelectionContext.from_arrays(
        pool={"image": x.astype(np.float32)}, query={"image": q.astype(np.float32)}
    )
    out = run_selector(ctx, "image_based", 100, seed=0, params={})
    assert out.size == 100 and out.metadata["natural_size"] > 100
    from_a = int((out.rows < 500).sum())
    assert 65 <= from_a <= 85  # 3:1 query votes -> about 75:25


def test_sampled_kernel_density_estimates_the_exact_one() -> None:
    from harness.selection.tsds_entropic import _local_density

    rng = np.random.default_rng(9)
    x = (unit(rng, 8, 16)[rng.integers(0, 8, 600)] + 0.1 * rng.normal(size=(600, 16))).astype(
        np.float32
    )
    rows = rng.permutation(600)
    exact = _local_density(x, rows, 0.3, 600)
    sampled = _local_density(x, rows, 0.3, 120)
    z = x / np.linalg.norm(x, axis=1, keepdims=True)
    brute = np.exp(-np.clip(2 - 2 * z[rows] @ z[rows].T, 0, None) / (2 * 0.3**2)).sum(1)
    np.testing.assert_allclose(exact, brute, rtol=1e-4)
    assert np.median(np.abs(sampled / exact - 1)) < 0.15


def test_rowwise_cosine_matches_the_definition() -> None:
    from harness.selection.faiss_ops import rowwise_cosine

    rng = np.random.default_rng(10)
    x, centres = rng.normal(size=(50, 8)).astype(np.float32), rng.normal(size=(4, 8))
    rows, which = np.array([3, 0, 49, 7]), np.array([2, 2, 0, 3])
    got = rowwise_cosine(x, rows, centres.astype(np.float32), which, chunk_rows=3)
    a = x[rows] / np.linalg.norm(x[rows], axis=1, keepdims=True)
    b = centres[which] / np.linalg.norm(centres[which], axis=1, keepdims=True)
    np.testing.assert_allclose(got, (a * b).sum(1), atol=1e-5)
