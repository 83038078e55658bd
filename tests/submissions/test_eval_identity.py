"""EvalIdentity: the one evaluation identity and its dedup key (stored in the database)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from submissions.schemas import (
    ClaimedSubmission,
    EvalIdentity,
    EvalResult,
    Manifest,
    SubmissionPublic,
)

SHA = "ab" * 32


def ident(**kw: object) -> EvalIdentity:
    values: dict[str, object] = dict(
        dataset="demo", fraction=0.1, task=None, recipe="linear_probe", sha256=SHA
    )
    return EvalIdentity.model_validate(values | kw)


def test_key_format_is_the_stored_one() -> None:
    # The format rows were written with before EvalIdentity: it must never change.
    assert ident().key == f"demo|0.1|*|linear_probe|{SHA}"
    assert ident(task="test2", fraction=0.25).key == f"demo|0.25|test2|linear_probe|{SHA}"
    assert ident(fraction=1.0).key == f"demo|1|*|linear_probe|{SHA}"


def test_fraction_float_noise_gives_the_same_key_and_no_difference() -> None:
    noisy = ident(fraction=0.1 + 1e-12)
    assert noisy.key == ident().key
    assert ident(fraction=0.3).key == ident(fraction=0.1 + 0.2).key  # 0.30000000000000004
    assert ident().differences(noisy) == []
    assert ident(fraction=0.2).key != ident().key


def test_differences_name_every_field() -> None:
    other = ident(dataset="x", fraction=0.2, task="t", recipe="r", sha256="cd" * 32)
    got = ident().differences(other)
    assert [line.split(" is ")[0] for line in got] == [
        "dataset", "task", "recipe", "subset sha256", "fraction",
    ]  # fmt: skip
    assert got[0] == "dataset is 'x', expected 'demo'"


def test_pinned_key_puts_the_recipe_hash_after_the_recipe() -> None:
    # Reference rows' keys (server.services.references) hash exactly this string.
    assert ident().pinned_key("h1") == f"demo|0.1|*|linear_probe|h1|{SHA}"
    old = hashlib.sha256(f"oracle|demo|0.1|*|linear_probe|h1|{SHA}".encode()).hexdigest()
    new = hashlib.sha256(f"oracle|{ident().pinned_key('h1')}".encode()).hexdigest()
    assert new == old


def test_of_reads_attributes_and_frozen() -> None:
    row = SimpleNamespace(dataset="demo", fraction=0.1, task=None, recipe="linear_probe",
                          sha256=SHA, file_sha256="ff", id=3)  # fmt: skip
    assert EvalIdentity.of(row) == ident()
    with pytest.raises(ValidationError):
        EvalIdentity.of(SimpleNamespace(dataset="demo"))
    with pytest.raises(ValidationError):
        ident().dataset = "other"  # type: ignore[misc]


def test_views_derive_the_same_identity() -> None:
    now = datetime.now(UTC)
    public = SubmissionPublic(id=1, team="a", dataset="demo", fraction=0.1, task=None,
                              recipe="linear_probe", sha256=SHA, size=3, state="queued",
                              created_at=now, updated_at=now)  # fmt: skip
    assert public.identity == ident()
    manifest = Manifest(
        code_version="t", recipe="linear_probe", recipe_version="1", recipe_hash="h",
        dataset="demo", dataset_version="1", dataset_manifest_hash="m", subset_sha256=SHA,
        seeds=[0], libraries={}, device="cpu", wall_time_s=0.0,
    )  # fmt: skip
    result = EvalResult(dataset="demo", fraction=0.1, task=None, recipe="linear_probe",
                        subset_size=3, tasks=[], manifest=manifest)  # fmt: skip
    assert result.identity == ident()


def test_claimed_submission_json_round_trips_with_its_identity() -> None:
    claimed = ClaimedSubmission(id=7, identity=ident(task="test1"), attempts=1,
                                lease_token="t", lease_expires_at=datetime.now(UTC))  # fmt: skip
    body = claimed.model_dump(mode="json")
    assert body["identity"]["sha256"] == SHA and "dataset" not in body
    assert ClaimedSubmission.model_validate(body) == claimed
