"""Organizer routes (organizer tokens only; 403 for participants): the worker's API.

POST /api/organizer/claim                          ClaimRequest -> [ClaimedSubmission]
POST /api/organizer/submissions/{id}/heartbeat     Heartbeat -> LeaseStatus
GET  /api/organizer/submissions/{id}/file          the stored .npy bytes
POST /api/organizer/submissions/{id}/result        ResultPost (idempotent)
POST /api/organizer/submissions/{id}/fail          FailurePost
POST /api/organizer/submissions/{id}/{action}      AdminAction; action: requeue, cancel,
                                                   hide, unhide, disqualify, requalify,
                                                   rescore (server.services.rescore)
GET  /api/organizer/submissions                    every team's, filter by state etc.
POST /api/organizer/references                     ReferencePost -> ReferencesRecorded:
                                                   oracle results as scored reference rows
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse

from server.routes.deps import CtxDep, Limit, Offset, OrganizerDep, SessionDep, SubmissionId
from server.routes.submissions import ERRORS
from server.services import organizer_ops, references
from submissions.schemas import (
    AdminAction,
    ClaimedSubmission,
    ClaimRequest,
    FailurePost,
    Heartbeat,
    LeaseStatus,
    ReferencePost,
    ReferencesRecorded,
    ResultPost,
    State,
    SubmissionPublic,
)

router = APIRouter(prefix="/api/organizer", tags=["organizer"], responses=ERRORS)


@router.post("/claim")
def claim(
    body: ClaimRequest, db: SessionDep, ctx: CtxDep, me: OrganizerDep
) -> list[ClaimedSubmission]:
    return organizer_ops.claim(db=db, ctx=ctx, request=body, actor=f"{me.actor}/{body.worker}")


@router.post("/submissions/{submission_id}/heartbeat")
def heartbeat(
    submission_id: SubmissionId, body: Heartbeat, db: SessionDep, ctx: CtxDep, me: OrganizerDep
) -> LeaseStatus:
    until = organizer_ops.heartbeat(db=db, ctx=ctx, submission_id=submission_id, beat=body)
    return LeaseStatus(id=submission_id, lease_expires_at=until)


@router.get(
    "/submissions/{submission_id}/file",
    response_class=FileResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def download_file(
    submission_id: SubmissionId, db: SessionDep, ctx: CtxDep, me: OrganizerDep
) -> FileResponse:
    path = organizer_ops.file_path(db=db, ctx=ctx, submission_id=submission_id)
    return FileResponse(path, media_type="application/octet-stream", filename=path.name)


@router.post("/submissions/{submission_id}/result")
def post_result(
    submission_id: SubmissionId, body: ResultPost, db: SessionDep, ctx: CtxDep, me: OrganizerDep
) -> SubmissionPublic:
    sub, _changed = organizer_ops.post_result(
        db=db, ctx=ctx, submission_id=submission_id, post=body, actor=me.actor
    )
    return sub


@router.post("/submissions/{submission_id}/fail")
def fail(
    submission_id: SubmissionId, body: FailurePost, db: SessionDep, ctx: CtxDep, me: OrganizerDep
) -> SubmissionPublic:
    return organizer_ops.fail(
        db=db, ctx=ctx, submission_id=submission_id, post=body, actor=me.actor
    )


@router.post("/submissions/{submission_id}/{action}")
def moderate(
    submission_id: SubmissionId,
    action: organizer_ops.Moderation,
    body: AdminAction,
    db: SessionDep,
    ctx: CtxDep,
    me: OrganizerDep,
) -> SubmissionPublic:
    return organizer_ops.moderate(
        db=db,
        ctx=ctx,
        submission_id=submission_id,
        action=action,
        reason=body.reason,
        actor=me.actor,
    )


@router.get("/submissions")
def list_all(
    db: SessionDep,
    ctx: CtxDep,
    me: OrganizerDep,
    state: State | None = None,
    dataset: str | None = None,
    team: str | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[SubmissionPublic]:
    return organizer_ops.list_all(
        db=db, ctx=ctx, state=state, dataset=dataset, team=team, limit=limit, offset=offset
    )


@router.post("/references")
def post_references(
    body: ReferencePost, db: SessionDep, ctx: CtxDep, me: OrganizerDep
) -> ReferencesRecorded:
    return references.record_references(db=db, ctx=ctx, principal=me, post=body)
