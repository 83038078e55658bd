"""Participant routes: upload, read, list and cancel submissions.

    POST   /api/submissions        multipart: file + dataset, fraction, task?, recipe?, name?
                                   (organizers also kind=baseline|oracle, team=NAME)
    GET    /api/submissions/{id}   SubmissionDetail (own team; organizers: any)
    GET    /api/submissions        own team's, newest first
    DELETE /api/submissions/{id}   cancel while queued

The upload is streamed to disk under the byte cap (413 leaves nothing), validated, charged
to the quota (429 + Retry-After), stored by content and queued: 201, or 200 with the
existing row when the same subset or ``Idempotency-Key`` was already accepted.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError

from server.errors import InvalidRequest
from server.routes.deps import CtxDep, Limit, Offset, PrincipalDep, SessionDep, SubmissionId
from server.services import submissions as service
from server.storage import StagedUpload, receive_upload
from submissions.schemas import (
    ProblemList,
    State,
    SubmissionDetail,
    SubmissionMeta,
    SubmissionPublic,
)

router = APIRouter(prefix="/api/submissions", tags=["submissions"])

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ProblemList} for code in (401, 403, 404, 409, 413, 415, 422, 429)
}

UPLOAD_SCHEMA = {
    "type": "object",
    "required": ["file", "dataset", "fraction"],
    "properties": {
        "file": {"type": "string", "format": "binary", "description": "the subset (.npy)"},
        "dataset": {"type": "string"},
        "fraction": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "task": {"type": "string", "description": "score on this task only"},
        "recipe": {"type": "string", "description": "default: the dataset's"},
        "name": {"type": "string", "maxLength": 200, "description": "method name"},
        "kind": {"type": "string", "enum": ["submission", "baseline", "oracle"]},
        "team": {"type": "string", "description": "organizers: upload for this team"},
    },
}


def parse_form(fields: dict[str, str]) -> tuple[SubmissionMeta, str, str | None]:
    """The upload's text fields as (meta, kind, team); 422 listing every bad field."""
    allowed = set(UPLOAD_SCHEMA["properties"]) - {"file"}  # type: ignore[arg-type]
    unknown = sorted(set(fields) - allowed)
    if unknown:
        raise InvalidRequest(f"unknown form fields {unknown}; allowed: {sorted(allowed)}")
    kind = fields.get("kind") or "submission"
    if kind not in ("submission", "baseline", "oracle"):
        raise InvalidRequest(f"kind must be submission, baseline or oracle, not {kind!r}")
    raw = {k: v for k, v in fields.items() if k not in ("kind", "team") and v != ""}
    try:
        meta = SubmissionMeta.model_validate(raw)
    except ValidationError as err:
        msgs = [f"{'.'.join(map(str, e['loc'])) or 'form'}: {e['msg']}" for e in err.errors()]
        raise InvalidRequest("; ".join(msgs)) from None
    return meta, kind, fields.get("team") or None


@router.post(
    "",
    status_code=201,
    response_model=SubmissionPublic,
    responses={200: {"model": SubmissionPublic, "description": "already accepted"}, **ERRORS},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"multipart/form-data": {"schema": UPLOAD_SCHEMA}},
        }
    },
)
async def create_submission(
    request: Request,
    response: Response,
    db: SessionDep,
    ctx: CtxDep,
    me: PrincipalDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> SubmissionPublic:
    s = ctx.settings
    staged = await receive_upload(
        request,
        storage=ctx.storage,
        max_bytes=s.max_upload_bytes,
        max_field_bytes=s.max_field_bytes,
    )
    try:
        return await run_in_threadpool(_create, db, ctx, me, staged, idempotency_key, response)
    finally:
        staged.discard()


def _create(
    db: Any, ctx: Any, me: Any, staged: StagedUpload, key: str | None, response: Response
) -> SubmissionPublic:
    meta, kind, team = parse_form(staged.fields)
    sub, created = service.create_submission(
        db=db,
        ctx=ctx,
        principal=me,
        meta=meta,
        staged=staged,
        kind=kind,  # type: ignore[arg-type]
        team=team,
        idempotency_key=key,
    )
    if not created:
        response.status_code = 200
    return sub


@router.get("/{submission_id}", responses=ERRORS)
def get_submission(
    submission_id: SubmissionId, db: SessionDep, ctx: CtxDep, me: PrincipalDep
) -> SubmissionDetail:
    return service.get_submission(db=db, ctx=ctx, principal=me, submission_id=submission_id)


@router.get("", responses=ERRORS)
def list_submissions(
    db: SessionDep,
    ctx: CtxDep,
    me: PrincipalDep,
    dataset: str | None = None,
    state: State | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[SubmissionPublic]:
    return service.list_submissions(
        db=db, ctx=ctx, principal=me, dataset=dataset, state=state, limit=limit, offset=offset
    )


@router.delete("/{submission_id}", responses=ERRORS)
def cancel_submission(
    submission_id: SubmissionId,
    db: SessionDep,
    ctx: CtxDep,
    me: PrincipalDep,
    reason: Annotated[str, Query(max_length=2000)] = "cancelled by the team",
) -> SubmissionPublic:
    return service.cancel_submission(
        db=db, ctx=ctx, principal=me, submission_id=submission_id, reason=reason
    )


__all__ = ["router"]
