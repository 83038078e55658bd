"""Every string a request can carry to the server is bounded: each one is stored somewhere (a
column, an event's reason, a result's JSON) and shown on public pages, so an unbounded one
lets a single request store and serve megabytes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from submissions.schemas import (
    AdminAction,
    ClaimRequest,
    FailurePost,
    Heartbeat,
    PickChange,
    ReferencePost,
    ResultPost,
    SubmissionMeta,
)

REQUESTS: list[type[BaseModel]] = [
    AdminAction,
    ClaimRequest,
    FailurePost,
    Heartbeat,
    PickChange,
    ReferencePost,
    ResultPost,
    SubmissionMeta,
]


def unbounded(node: Any, path: str, defs: dict[str, Any], seen: set[str]) -> Iterator[str]:
    """JSON-schema paths of strings without ``maxLength`` (dict keys included)."""
    if isinstance(node, list):
        for item in node:
            yield from unbounded(item, path, defs, seen)
        return
    if not isinstance(node, dict):
        return
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        if name not in seen:  # each definition once
            seen.add(name)
            yield from unbounded(defs[name], name, defs, seen)
        return
    fixed = "enum" in node or "const" in node  # a Literal: its values are its bound
    if node.get("type") == "string" and "maxLength" not in node and not fixed:
        yield path
    is_dict = node.get("type") == "object" and node.get("additionalProperties") not in (None, False)
    if is_dict and "maxLength" not in node.get("propertyNames", {}):
        yield f"{path}.<key>"
    for key, sub in node.items():
        if key == "properties":
            for prop, schema in sub.items():
                yield from unbounded(schema, f"{path}.{prop}", defs, seen)
        elif key in ("items", "anyOf", "allOf", "oneOf", "additionalProperties"):
            yield from unbounded(sub, path, defs, seen)


def unbounded_in(model: type[BaseModel]) -> list[str]:
    schema = model.model_json_schema()
    return list(unbounded(schema, model.__name__, schema.get("$defs", {}), set()))


@pytest.mark.parametrize("model", REQUESTS, ids=lambda m: m.__name__)
def test_every_string_of_a_request_is_bounded(model: type[BaseModel]) -> None:
    assert unbounded_in(model) == []


def test_the_walker_finds_an_unbounded_string() -> None:
    class Loose(BaseModel):
        note: str
        tags: dict[str, int]

    assert sorted(unbounded_in(Loose)) == ["Loose.note", "Loose.tags.<key>"]


@pytest.mark.parametrize(
    ("model", "fields"),
    [
        (Heartbeat, {"lease_token": "t", "job_id": "x" * 201}),
        (ClaimRequest, {"worker": "w" * 201}),
        (FailurePost, {"lease_token": "t", "kind": "user", "message": "m" * 10_001}),
        (AdminAction, {"reason": "r" * 2001}),
        (SubmissionMeta, {"dataset": "d" * 101, "fraction": 0.1}),
        (PickChange, {"pick": [1], "reason": "r" * 2001}),
        (PickChange, {"pick": list(range(1, 102))}),
    ],
)
def test_over_the_bound_is_refused(model: type[BaseModel], fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="at most"):
        model.model_validate(fields)
