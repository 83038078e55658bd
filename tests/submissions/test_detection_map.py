"""Detection mAP from stored matches (submissions.detection_map): the full test, explicit
resamples and all bootstrap resamples at once must agree; boards get intervals from it."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

from submissions import detection_map
from submissions.detection_map import MapOutcomes, map_of, map_replicates
from submissions.resampling import resample_counts, resample_indices
from submissions.significance import significance
from tests.infra.matches import random_matches


@pytest.mark.parametrize("metric", ["map50", "map50_95"])
def test_every_resample_at_once_equals_scoring_each_resample(metric: str) -> None:
    rng = np.random.default_rng(5)
    for n in (1, 7, 40, 120):
        arrays = random_matches(rng, n)
        idx = np.sort(resample_indices(n, resamples=25, stream=f"t{n}"), axis=1)
        got = map_replicates(arrays, resample_counts(idx), metric=metric)
        want = [map_of(arrays, i)[metric] for i in idx]
        assert got == pytest.approx(want, abs=1e-12, nan_ok=True)
        whole = map_replicates(arrays, np.ones((1, n)), metric=metric)[0]
        assert whole == pytest.approx(map_of(arrays)[metric], abs=1e-12, nan_ok=True)


def test_an_undrawn_class_does_not_count_and_a_drawn_one_without_detections_scores_0() -> None:
    arrays = {"gt_count": np.array([1, 1]), "det_count": np.array([1, 0]),
              "gt_cls": np.array([0, 1]), "det_conf": np.array([0.9], np.float32),
              "det_cls": np.array([0]), "det_tp": np.array([1023])}  # fmt: skip
    counts = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    perfect = map_of(arrays, [0])["map50"]  # 0.995: ultralytics' area of a perfect class
    assert map_replicates(arrays, counts).tolist() == pytest.approx([perfect, 0.0, perfect / 2])
    assert map_of(arrays, [1, 1])["map50"] == 0.0


def test_map_outcomes_intervals_and_groups() -> None:
    rng = np.random.default_rng(8)
    good = [random_matches(rng, 300, skill=0.8) for _ in range(3)]  # three seeds
    twin = [dict(m) for m in good]
    bad = [random_matches(rng, 300, skill=0.2) for _ in range(3)]
    entries = {
        "good": {"t": MapOutcomes(tuple((m,) for m in good))},
        "twin": {"t": MapOutcomes(tuple((m,) for m in twin))},
        "bad": {"t": MapOutcomes(tuple((m,) for m in bad))},
    }
    sig = significance(entries, tasks=("t",), order=("good", "twin", "bad"))
    point = np.mean([map_of(m)["map50"] for m in good])
    lo, hi = sig.score_ci["good"]
    assert lo < point < hi and hi - lo < 0.3
    assert sig.group == {"good": 1, "twin": 1, "bad": 3}


def test_a_unit_is_the_mean_of_its_training_seeds_and_replicates_are_kept() -> None:
    rng = np.random.default_rng(9)
    seeds = [random_matches(rng, 50) for _ in range(2)]
    unit = MapOutcomes(((seeds[0], seeds[1]),))
    assert unit.points()[0] == pytest.approx(np.mean([map_of(m)["map50"] for m in seeds]))
    counts = resample_counts(resample_indices(50, resamples=30, stream="x")).astype(np.uint8)
    first = unit.replicates(counts)
    want = np.mean([map_replicates(m, counts, metric="map50") for m in seeds], axis=0)
    assert first[:, 0] == pytest.approx(want)
    same = MapOutcomes(((dict(seeds[0]), dict(seeds[1])),))  # equal content, another object
    assert same.replicates(counts) is first  # computed once per content, not per board change
    assert MapOutcomes(((seeds[1], seeds[0]),)).replicates(counts) is not first


def test_replicates_kept_on_disk_are_read_back_after_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(10)
    units = ((random_matches(rng, 40),), (random_matches(rng, 40),))
    counts = resample_counts(resample_indices(40, resamples=20, stream="d")).astype(np.uint8)
    first = MapOutcomes(units, cache_dir=tmp_path / "reps").replicates(counts)
    (kept,) = (tmp_path / "reps").glob("*.npy")
    with monkeypatch.context() as m:  # a new process: nothing in memory, nothing computed
        m.setattr(detection_map, "_replicates", OrderedDict())
        m.setattr(detection_map, "map_replicates", _no_compute)
        again = MapOutcomes(units, cache_dir=kept.parent).replicates(counts)
        assert np.array_equal(again, first)
    kept.write_bytes(b"torn")  # unreadable: computed again, and rewritten
    monkeypatch.setattr(detection_map, "_replicates", OrderedDict())
    assert np.array_equal(MapOutcomes(units, cache_dir=kept.parent).replicates(counts), first)
    assert np.array_equal(np.load(kept), first)


def test_a_cache_that_cannot_be_written_only_costs_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    rng = np.random.default_rng(11)
    units = ((random_matches(rng, 30),),)
    counts = resample_counts(resample_indices(30, resamples=10, stream="e")).astype(np.uint8)
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    reps = MapOutcomes(units, cache_dir=blocked / "reps").replicates(counts)
    assert reps.shape == (10, 1) and "not kept" in caplog.text


def _no_compute(*_: object, **__: object) -> None:
    raise AssertionError("replicates kept on disk were computed again")
