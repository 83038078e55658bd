"""Property-based API testing: requests generated from the OpenAPI schema (valid and
invalid, by schemathesis) never get a 5xx, for an organizer and a participant token.
Bounded examples per operation. In-memory SQLite only: the property is about request
handling; the other suites cover both databases."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from sqlmodel import Session

from server.app import create_app
from server.db import create_schema, make_engine
from server.services.auth import create_team, issue_token
from tests.server.conftest import make_settings
from tests.server.helpers import insert_submission

MODES = {schemathesis.GenerationMode.POSITIVE: 10, schemathesis.GenerationMode.NEGATIVE: 6}


@pytest.fixture
def api(
    tmp_path: Path, server_configs: Path, data_root: Path
) -> Iterator[tuple[schemathesis.BaseSchema, dict[str, str]]]:
    engine = make_engine("sqlite://")
    create_schema(engine)
    app = create_app(make_settings(tmp_path, server_configs=server_configs, data_root=data_root),
                     engine=engine)  # fmt: skip
    tokens = {}
    with TestClient(app), Session(engine) as db:  # lifespan: datasets synced
        for name, scope in (("alpha", "participant"), ("ops", "organizer")):
            tokens[name], _ = issue_token(db=db, team=create_team(db=db, name=name), scope=scope)  # type: ignore[arg-type]
        for i in range(3):  # rows for the {submission_id} routes to find (ids 1..3)
            insert_submission(engine, team="alpha", tag=str(i))
        yield schemathesis.openapi.from_asgi("/openapi.json", app), tokens
    engine.dispose()


@pytest.mark.parametrize("who", ["ops", "alpha"])
def test_generated_requests_never_get_a_5xx(
    api: tuple[schemathesis.BaseSchema, dict[str, str]], who: str
) -> None:
    schema, tokens = api
    headers = {"Authorization": f"Bearer {tokens[who]}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 14
    checked_negative_empty: list[str] = []
    for operation in operations:
        for mode, examples in MODES.items():

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=examples, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))  # fmt: skip
            def no_5xx(case: schemathesis.Case) -> None:
                response = case.call(headers=headers)
                case.validate_response(response, checks=[schemathesis.checks.not_a_server_error])

            try:
                no_5xx()
            except Unsatisfiable:  # nothing to make invalid (no parameters, no body)
                assert mode == schemathesis.GenerationMode.NEGATIVE, operation.label
                checked_negative_empty.append(operation.label)
    assert len(checked_negative_empty) < len(operations) / 2
