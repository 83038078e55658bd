"""Outcome encodings: exact round trips, strict lengths, and small enough to keep per seed."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from submissions.outcomes import decode_array, encode_array, primary_matrix, uids_digest
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
