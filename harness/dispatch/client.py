"""What the worker needs from the server: the organizer half of ``submissions.client``.

    client: Client = TdcClient(base_url, token)      # satisfies this protocol
    client.claim(ClaimRequest(worker="w1", max_jobs=10))

A protocol, so the worker is typed against the five calls it makes and nothing else. Every
refusal by the server (lease expired, taken over, cancelled) arrives as a ``TdcError``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from submissions.schemas import ClaimedSubmission, ClaimRequest, FailurePost, Heartbeat, ResultPost


class Client(Protocol):
    def claim(self, request: ClaimRequest) -> list[ClaimedSubmission]: ...

    def heartbeat(self, submission_id: int, beat: Heartbeat) -> Any: ...

    def download_file(self, submission_id: int, dest: Path) -> Any: ...

    def post_result(self, submission_id: int, post: ResultPost) -> Any: ...

    def fail(self, submission_id: int, post: FailurePost) -> Any: ...
