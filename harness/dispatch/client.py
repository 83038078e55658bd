"""What the worker needs from the server: the organizer half of ``submissions.client``.

    client: Client = TdcClient(base_url, token)      # satisfies this protocol
    client.claim("worker-1", max_jobs=10, lease_seconds=600)

A protocol, so the worker is typed against the calls it makes and nothing else. A refusal by
the server (lease expired, taken over, cancelled) arrives as ``ApiError``; no answer at all
as ``ServerUnreachable`` (both ``TdcError``). :func:`lease_refused` tells them apart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Protocol

from submissions.client import ServerUnreachable
from submissions.schemas import ClaimedSubmission, EvalResult, State, SubmissionPublic


class Client(Protocol):
    def claim(
        self, worker: str, *, max_jobs: int = 10, lease_seconds: int = 600,
        dataset: str | None = None,
    ) -> list[ClaimedSubmission]: ...  # fmt: skip

    def heartbeat(
        self, submission_id: int, lease_token: str, *, lease_seconds: int = 600,
        job_id: str | None = None, job_state: str | None = None,
    ) -> Any: ...  # fmt: skip

    def download_file(self, submission_id: int, dest: Path) -> Path: ...

    def post_result(self, submission_id: int, lease_token: str, result: EvalResult) -> Any: ...

    def fail(
        self, submission_id: int, lease_token: str, *, kind: Literal["user", "infra"],
        message: str, log_tail: str | None = None,
    ) -> Any: ...  # fmt: skip

    def list_all(
        self, *, state: State | None = None, dataset: str | None = None, team: str | None = None,
        limit: int = 100,
    ) -> list[SubmissionPublic]: ...  # fmt: skip


def lease_lost(err: Exception) -> bool:
    """True when the server says the lease is gone (409) or the submission is (404)."""
    return getattr(err, "status", None) in (404, 409)


# Answers that mean "not now" (its database restarting, a proxy without a backend), not "no".
TRANSIENT_STATUSES = frozenset({502, 503, 504})


def lease_refused(err: Exception) -> bool:
    """True when the server answered "no" (the lease is gone), not when it could not answer
    (unreachable, or an answer of :data:`TRANSIENT_STATUSES`)."""
    transient = getattr(err, "status", None) in TRANSIENT_STATUSES
    return not (isinstance(err, ServerUnreachable) or transient)
