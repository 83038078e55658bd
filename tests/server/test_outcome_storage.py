"""Per-example outcomes posted with a result: checked against the test split, stored as bytes
(not in the evaluation's JSON), loaded as (seeds, examples) arrays; results without them
(workers before outcomes) are still accepted. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine
from sqlmodel import Session, select

from harness.datasets import Dataset
from server.models import Evaluation, Outcome
from server.services.outcomes import load_outcome_arrays, load_outcomes
from submissions.client import ApiError
from submissions.schemas import (
    EvalResult,
    ExampleOutcomes,
    SeedResult,
    SelectionRecord,
    State,
)
from tests.server.conftest import Make
from tests.server.helpers import insert_submission, make_result, sha_of, with_outcomes


def test_outcomes_are_stored_and_loaded_per_seed(
    as_team: Make, engine: Engine, tiny_dataset: Dataset
) -> None:
    sid = insert_submission(engine, team="alpha")
    ops = as_team("ops")
    [job] = ops.claim("w1")
    result = with_outcomes(make_result(sha256=sha_of(engine, sid)), tiny_dataset)
    ops.post_result(sid, job.lease_token, result)
    assert as_team("alpha").get(sid).state == State.scored
    with Session(engine) as db:
        rows = db.exec(select(Outcome).where(Outcome.submission_id == sid)).all()
        assert len(rows) == 4 and all(len(r.data) == 8 for r in rows)  # 60 bits: 8 bytes
        evaluation = db.get(Evaluation, sid)
        assert evaluation is not None
        assert "outcomes" not in evaluation.result["tasks"][0]["seeds"][0]
        loaded = load_outcomes(db=db, submission_ids=[sid, 999], task="test1")
        arrays = load_outcome_arrays(db=db, submission_ids=[sid], task="test2")
    [task1] = [t for t in result.tasks if t.task == "test1"]
    assert list(loaded) == [sid] and loaded[sid].shape == (2, 60)
    for seed, row in zip(task1.seeds, loaded[sid], strict=True):
        assert seed.outcomes is not None
        assert row.tolist() == seed.outcomes.decode()["correct"].tolist()
        assert float(row.mean()) == seed.metrics["accuracy"]
    assert sorted(arrays[sid]) == [0, 1]


def test_a_result_without_outcomes_is_accepted_and_loads_nothing(
    as_team: Make, engine: Engine
) -> None:
    sid = insert_submission(engine, team="alpha")
    ops = as_team("ops")
    [job] = ops.claim("w1")
    ops.post_result(sid, job.lease_token, make_result(sha256=sha_of(engine, sid)))
    assert as_team("alpha").get(sid).state == State.scored
    with Session(engine) as db:
        assert load_outcomes(db=db, submission_ids=[sid], task="test1") == {}


@pytest.mark.parametrize("fault", ["length", "order"])
def test_outcomes_that_do_not_fit_the_test_split_are_refused(
    as_team: Make, engine: Engine, tiny_dataset: Dataset, fault: str
) -> None:
    sid = insert_submission(engine, team="alpha")
    ops = as_team("ops")
    [job] = ops.claim("w1")
    uids = list(tiny_dataset.uids("test1"))
    uids = uids[:59] if fault == "length" else uids[::-1]
    result = with_outcomes(make_result(sha256=sha_of(engine, sid), tasks=("test1",)),
                           tiny_dataset, uids=uids)  # fmt: skip
    result = result.model_copy(update={"task": None, "tasks": [
        *result.tasks, *make_result(sha256=result.manifest.subset_sha256, tasks=("test2",)).tasks
    ]})  # fmt: skip
    with pytest.raises(ApiError) as err:
        ops.post_result(sid, job.lease_token, result)
    assert err.value.status == 422
    want = "59 outcomes, the test split has 60" if fault == "length" else "UID order"
    assert want in str(err.value)
    assert as_team("alpha").get(sid).state == State.running
    with Session(engine) as db:
        assert db.exec(select(Outcome)).all() == []


def test_references_carry_outcomes(as_team: Make, engine: Engine, tiny_dataset: Dataset) -> None:
    ops = as_team("ops")
    oracle = make_result(sha256="a" * 64, tasks=("test1",), task="test1")
    [ref] = ops.post_references([with_outcomes(oracle, tiny_dataset, seeds=1)]).submissions
    with Session(engine) as db:
        assert load_outcomes(db=db, submission_ids=[ref.id], task="test1")[ref.id].shape == (1, 60)
    bad = with_outcomes(oracle, tiny_dataset, seeds=1, uids=[f"x{i}" for i in range(60)])
    with pytest.raises(ApiError) as err:
        ops.post_references([bad])
    assert err.value.status == 422 and "UID order" in str(err.value)


def test_posting_a_reference_again_adds_the_outcomes_it_was_stored_without(
    as_team: Make, engine: Engine, tiny_dataset: Dataset
) -> None:
    ops = as_team("ops")
    full = with_outcomes(make_result(sha256="e" * 64, tasks=("test1",), task="test1"),
                         tiny_dataset, seeds=2)  # fmt: skip
    bare = full.model_copy(
        update={
            "tasks": [
                full.tasks[0].model_copy(
                    update={
                        "seeds": [
                            s.model_copy(update={"outcomes": None}) for s in full.tasks[0].seeds
                        ]
                    }
                )
            ]
        }
    )
    [ref] = ops.post_references([bare]).submissions  # stored before outcomes were kept
    other = full.tasks[0].seeds[0].model_copy(update={"metrics": {"accuracy": 0.5}})
    rerun = full.model_copy(
        update={
            "tasks": [full.tasks[0].model_copy(update={"seeds": [other, full.tasks[0].seeds[1]]})]
        }
    )
    assert ops.post_references([rerun]).created == 0  # another run's scores: nothing added
    with Session(engine) as db:
        assert load_outcomes(db=db, submission_ids=[ref.id], task="test1") == {}
    before = ops.leaderboard("tiny", fraction=0.1)["boards"][0]["entries"][0]
    assert before["tasks"]["test1"]["ci95"] is None
    assert ops.post_references([full]).created == 0  # the same evaluation: outcomes added
    with Session(engine) as db:
        assert load_outcomes(db=db, submission_ids=[ref.id], task="test1")[ref.id].shape == (2, 60)
    after = ops.leaderboard("tiny", fraction=0.1)["boards"][0]["entries"][0]
    assert after["tasks"]["test1"]["ci95"] is not None  # the board changed: interval shown
    assert after["missing_tasks"] == ["test2"] and after["score_ci95"] is None  # no score
    ops.post_references([full])  # again: nothing more to add (no duplicate rows)
    with Session(engine) as db:
        assert len(db.exec(select(Outcome).where(Outcome.submission_id == ref.id)).all()) == 2


def _stacked_reference(ds: Dataset, *, training_seeds: int = 3) -> EvalResult:
    """A baseline row over 3 selection seeds, each stacking its training seeds' bits and
    reporting their mean accuracy (what harness.references.combine posts)."""
    uids = list(ds.uids(ds.spec.task("test1").test))
    rng = np.random.default_rng(7)
    seeds = []
    for seed in range(3):
        bits = [rng.random(len(uids)) < 0.3 + 0.2 * seed for _ in range(training_seeds)]
        out = ExampleOutcomes.stack([ExampleOutcomes.of("correct", {"correct": b}, uids=uids)
                                     for b in bits])  # fmt: skip
        acc = float(np.mean([b.mean() for b in bits]))
        seeds.append(SeedResult(seed=seed, metrics={"accuracy": acc, "balanced_accuracy": acc},
                                outcomes=out))  # fmt: skip
    result = make_result(sha256="c" * 64, tasks=("test1",), task="test1")
    task = result.tasks[0].model_copy(update={"seeds": seeds, "test_size": len(uids)})
    record = SelectionRecord(method="random_filter", params={}, seeds=[0, 1, 2],
                             subsets=[c * 64 for c in "def"])  # fmt: skip
    manifest = result.manifest.model_copy(update={"selection": record})
    return result.model_copy(update={"tasks": [task], "manifest": manifest})


def test_a_reference_row_stores_stacked_outcomes_per_selection_seed(
    as_team: Make, engine: Engine, tiny_dataset: Dataset
) -> None:
    result = _stacked_reference(tiny_dataset)
    posted = as_team("ops").post_references([result], kind="baseline", name="random_filter")
    [ref] = posted.submissions
    with Session(engine) as db:
        rows = db.exec(select(Outcome).where(Outcome.submission_id == ref.id)).all()
        loaded = load_outcomes(db=db, submission_ids=[ref.id], task="test1")[ref.id]
        arrays = load_outcome_arrays(db=db, submission_ids=[ref.id], task="test1")[ref.id]
    assert len(rows) == 3 and {(r.seeds, len(r.data)) for r in rows} == {(3, 23)}  # 180 bits
    assert loaded.dtype == np.float64 and loaded.shape == (3, 60)
    for seed, row in zip(result.tasks[0].seeds, loaded, strict=True):
        assert float(row.mean()) == pytest.approx(seed.metrics["accuracy"], abs=1e-12)
    assert sorted(arrays) == [0, 1, 2] and all(len(units) == 3 for units in arrays.values())
    out = result.tasks[0].seeds[1].outcomes
    assert out is not None
    want = [d["correct"].tolist() for d in out.decode_seeds()]
    assert [d["correct"].tolist() for d in arrays[1]] == want


def test_stacked_outcomes_claiming_more_seeds_than_they_hold_are_refused(
    as_team: Make, engine: Engine, tiny_dataset: Dataset
) -> None:
    result = _stacked_reference(tiny_dataset)
    task = result.tasks[0]
    first = task.seeds[0]
    assert first.outcomes is not None
    bad_out = first.outcomes.model_copy(update={"seeds": 4})  # not validated: as a client sends
    bad_task = task.model_copy(update={"seeds": [first.model_copy(update={"outcomes": bad_out}),
                                                 *task.seeds[1:]]})  # fmt: skip
    with pytest.raises(ApiError) as err:
        as_team("ops").post_references([result.model_copy(update={"tasks": [bad_task]})])
    assert err.value.status == 422 and "23 bytes of bits for 240 values" in str(err.value)
    with Session(engine) as db:
        assert db.exec(select(Outcome)).all() == []


def test_rescoring_drops_the_old_outcomes_and_stores_the_new(
    as_team: Make, engine: Engine, tiny_dataset: Dataset, app: FastAPI
) -> None:
    sid = insert_submission(engine, team="alpha")
    ops = as_team("ops")
    for attempt in (0, 1):  # scored, rescored, scored again: one record per seed each time
        [job] = ops.claim("w1")
        result = with_outcomes(make_result(sha256=sha_of(engine, sid)), tiny_dataset, seeds=1)
        ops.post_result(sid, job.lease_token, result)
        if attempt == 0:
            path = app.state.ctx.storage.path_for(_sha_of_file(engine, sid))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"stored subset")
            ops.rescore(sid, "harness fix")
    with Session(engine) as db:
        assert len(db.exec(select(Outcome).where(Outcome.submission_id == sid)).all()) == 2


def _sha_of_file(engine: Engine, sid: int) -> str:
    from server.models import Submission

    with Session(engine) as db:
        sub = db.get(Submission, sid)
        assert sub is not None
        return sub.file_sha256
