"""Outcome encodings: exact round trips, strict lengths, and small enough to keep per seed."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from submissions.outcomes import (
    decode_all,
    decode_array,
    encode_array,
    example_matrix,
    primary_matrix,
    uids_digest,
)
from submissions.schemas import ExampleOutcomes, SeedResult, TaskResult

UIDS = [f"u{i:04d}" for i in range(1600)]


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 1600])
def test_bits_round_trip(n: int) -> None:
    bits = np.random.default_rng(n).random(n) < 0.5
    raw = encode_array("bits", bits)
    assert len(raw) == (n + 7) // 8
    assert decode_array("bits", raw, count=n).tolist() == bits.tolist()


def test_float16_and_uint16_round_trip() -> None:
    err = np.array([0.0, 0.25, 3.0, 1e5])
    assert decode_array("f16", encode_array("f16", err), count=4).tolist() == [0, 0.25, 3, np.inf]
    assert decode_array("u16", encode_array("u16", [0, 65535]), count=2).tolist() == [0, 65535]
    with pytest.raises(ValueError, match="outside"):
        encode_array("u16", [70000])


def test_a_1600_example_classification_seed_stores_under_a_kilobyte() -> None:
    correct = np.random.default_rng(0).random(1600) < 0.7
    out = ExampleOutcomes.of("correct", {"correct": correct}, uids=UIDS)
    assert sum(len(b) for b in out.raw().values()) == 200  # what the server's table stores
    assert len(out.model_dump_json()) < 1024  # what the worker posts
    assert out.n == 1600 and out.uids_sha256 == uids_digest(UIDS)
    assert out.decode()["correct"].tolist() == correct.tolist()


def test_every_kind_round_trips() -> None:
    uids = ["a", "b", "c"]
    arrays = {
        "error": {"sq_err": [1.0, 4.0, 0.5], "abs_err": [1.0, 2.0, 0.75]},
        "rank1_hit": {"hit": [1, 0, 0], "counted": [1, 1, 0]},
        "detection_matches": {
            "gt_count": [2, 0, 1],
            "det_count": [1, 2, 0],
            "gt_cls": [0, 1, 1],
            "det_conf": [0.9, 0.8, 0.1],
            "det_cls": [0, 1, 0],
            "det_tp": [1023, 0, 1],
        },
    }
    for kind, values in arrays.items():
        out = ExampleOutcomes.model_validate_json(
            ExampleOutcomes.of(kind, values, uids=uids).model_dump_json()  # type: ignore[arg-type]
        )
        for name, want in values.items():
            assert out.decode()[name].astype(float).tolist() == pytest.approx(want, rel=1e-3)


def test_wrong_lengths_and_arrays_are_refused() -> None:
    good = ExampleOutcomes.of("correct", {"correct": np.ones(16, bool)}, uids=UIDS[:16])
    for bad in (
        {"n": 17},  # 2 bytes of bits cannot hold 17 values
        {"n": 15},  # 16 set bits: the padding bit is set
        {"arrays": {"hit": good.arrays["correct"]}},
        {"arrays": {"correct": "not base64!"}},
    ):
        with pytest.raises(ValidationError):
            ExampleOutcomes.model_validate(good.model_dump() | bad)
    det = {"gt_count": [2], "det_count": [1], "gt_cls": [0], "det_conf": [0.5],
           "det_cls": [0], "det_tp": [1]}  # fmt: skip
    with pytest.raises(ValueError, match="bytes"):  # 2 boxes counted, 1 class given
        ExampleOutcomes.of("detection_matches", det, uids=["x"])  # type: ignore[arg-type]


def test_a_task_result_refuses_outcomes_of_another_size() -> None:
    out = ExampleOutcomes.of("correct", {"correct": np.ones(16, bool)}, uids=UIDS[:16])
    seed = SeedResult(seed=0, metrics={"accuracy": 1.0}, outcomes=out)
    TaskResult(task="t", test_size=16, seeds=[seed], mean={}, std={})
    with pytest.raises(ValidationError, match="the test split has 60"):
        TaskResult(task="t", test_size=60, seeds=[seed], mean={}, std={})


def test_primary_matrix_is_seeds_by_examples_of_the_metric() -> None:
    rng = np.random.default_rng(3)
    uids = UIDS[:10]
    correct = [rng.random(10) < 0.5 for _ in range(3)]
    seeds = [ExampleOutcomes.of("correct", {"correct": c}, uids=uids) for c in correct]
    m = primary_matrix(seeds, "balanced_accuracy")
    assert m.dtype == np.float64 and m.tolist() == np.stack(correct).astype(float).tolist()
    counted = np.arange(10) < 6  # reid: rank1 averages the counted queries only
    hits = [{"hit": (rng.random(10) < 0.5) & counted, "counted": counted} for _ in range(2)]
    reid = [ExampleOutcomes.of("rank1_hit", h, uids=uids) for h in hits]
    assert primary_matrix(reid, "rank1").shape == (2, 6)
    err = ExampleOutcomes.of("error", {"sq_err": np.ones(10), "abs_err": np.ones(10) * 2},
                             uids=uids)  # fmt: skip
    assert primary_matrix([err], "mae").tolist() == [[2.0] * 10]
    with pytest.raises(ValueError, match="not a mean"):
        primary_matrix(seeds, "mAP")
    with pytest.raises(ValueError, match="disagree"):
        primary_matrix([seeds[0], reid[0]], "accuracy")


def _seed_arrays(kind: str, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One training seed's arrays of ``kind`` over ``n`` examples (detection: 0-3 boxes and
    detections per image, so seeds differ in their per-box lengths)."""
    if kind == "correct":
        return {"correct": rng.random(n) < 0.6}
    if kind == "error":
        sq = rng.random(n).astype(np.float16)
        return {"sq_err": sq, "abs_err": np.sqrt(sq).astype(np.float16)}
    if kind == "rank1_hit":
        counted = np.arange(n) % 3 != 0  # the same queries are counted for every seed
        return {"hit": (rng.random(n) < 0.5) & counted, "counted": counted}
    gt, det = rng.integers(0, 4, n), rng.integers(0, 4, n)
    return {"gt_count": gt.astype(np.uint16), "det_count": det.astype(np.uint16),
            "gt_cls": rng.integers(0, 5, gt.sum()).astype(np.uint16),
            "det_conf": rng.random(det.sum()).astype(np.float32),
            "det_cls": rng.integers(0, 5, det.sum()).astype(np.uint16),
            "det_tp": rng.integers(0, 1024, det.sum()).astype(np.uint16)}  # fmt: skip


@pytest.mark.parametrize("kind", ["correct", "error", "rank1_hit", "detection_matches"])
def test_stacked_outcomes_round_trip_per_training_seed(kind: str) -> None:
    rng = np.random.default_rng(11)
    uids = UIDS[:13]
    seeds = [_seed_arrays(kind, 13, rng) for _ in range(3)]
    parts = [ExampleOutcomes.of(kind, a, uids=uids) for a in seeds]  # type: ignore[arg-type]
    for p in parts:  # one seed: a one-element list equal to [decode()]
        [only] = p.decode_seeds()
        assert {k: v.tolist() for k, v in only.items()} == {
            k: v.tolist() for k, v in p.decode().items()}  # fmt: skip
    two = ExampleOutcomes.stack(parts[:2])
    stacked = ExampleOutcomes.stack([two, parts[2]])  # a stack of stacks: seeds add up
    stacked = ExampleOutcomes.model_validate_json(stacked.model_dump_json())
    assert (stacked.seeds, stacked.n, stacked.uids_sha256) == (3, 13, uids_digest(uids))
    assert len(stacked.decode()[next(iter(seeds[0]))]) == 3 * 13  # seed-major per example
    got = stacked.decode_seeds()
    assert len(got) == 3
    for want, have in zip(seeds, got, strict=True):
        assert set(have) == set(want)
        for name in want:
            assert have[name].tolist() == want[name].tolist()


def test_three_stacked_seeds_of_1600_bits_take_600_bytes() -> None:
    rng = np.random.default_rng(1)
    parts = [ExampleOutcomes.of("correct", {"correct": rng.random(1600) < 0.5}, uids=UIDS)
             for _ in range(3)]  # fmt: skip
    assert sum(len(b) for b in ExampleOutcomes.stack(parts).raw().values()) == 600


def test_stacking_outcomes_of_different_splits_is_refused() -> None:
    a = ExampleOutcomes.of("correct", {"correct": np.ones(8, bool)}, uids=UIDS[:8])
    reid = {"hit": np.ones(8, bool), "counted": np.ones(8, bool)}
    for other in (
        ExampleOutcomes.of("correct", {"correct": np.ones(9, bool)}, uids=UIDS[:9]),  # size
        ExampleOutcomes.of("correct", {"correct": np.ones(8, bool)}, uids=UIDS[8:16]),  # order
        ExampleOutcomes.of("rank1_hit", reid, uids=UIDS[:8]),  # kind
    ):
        with pytest.raises(ValueError, match="disagree"):
            ExampleOutcomes.stack([a, other])
    with pytest.raises(ValueError, match="nothing"):
        ExampleOutcomes.stack([])


def test_more_stacked_seeds_than_the_arrays_hold_is_a_length_error() -> None:
    parts = [ExampleOutcomes.of("error", {"sq_err": np.ones(8), "abs_err": np.ones(8)},
                                uids=UIDS[:8]) for _ in range(2)]  # fmt: skip
    stacked = ExampleOutcomes.stack(parts)
    with pytest.raises(ValidationError, match="bytes for 24"):
        ExampleOutcomes.model_validate(stacked.model_dump() | {"seeds": 3})
    with pytest.raises(ValidationError):
        ExampleOutcomes.model_validate(stacked.model_dump() | {"seeds": 0})
    with pytest.raises(ValueError, match="bytes for 24"):
        decode_all("error", 8, stacked.raw(), seeds=3)


def test_primary_matrix_of_stacked_units_is_the_mean_over_their_training_seeds() -> None:
    rng = np.random.default_rng(5)
    uids = UIDS[:40]
    units = [[rng.random(40) < 0.6 for _ in range(k)] for k in (3, 2)]  # units may differ
    outs = [ExampleOutcomes.stack([ExampleOutcomes.of("correct", {"correct": c}, uids=uids)
                                   for c in unit]) for unit in units]  # fmt: skip
    m = primary_matrix(outs, "accuracy")
    assert m.dtype == np.float64 and m.shape == (2, 40)
    for row, unit in zip(m, units, strict=True):
        parts = [ExampleOutcomes.of("correct", {"correct": c}, uids=uids) for c in unit]
        assert row.tolist() == pytest.approx(primary_matrix(parts, "accuracy").mean(axis=0))
        assert float(row.mean()) == pytest.approx(np.mean([c.mean() for c in unit]), abs=1e-12)


def test_reid_seeds_must_count_the_same_queries() -> None:
    hit = np.zeros(6, bool)
    a = {"hit": hit, "counted": np.arange(6) < 4}
    b = {"hit": hit, "counted": np.arange(6) < 3}
    assert example_matrix("rank1_hit", [[a, a], [a]]).shape == (2, 4)
    with pytest.raises(ValueError, match="counted"):
        example_matrix("rank1_hit", [[a, b]])
    with pytest.raises(ValueError, match="no per-example"):
        example_matrix("detection_matches", [[{}]])
