"""Server-side errors: members of the one ``TdcError`` hierarchy with their HTTP status.

Services raise these without knowing about HTTP; ``server.app`` has the one handler that
turns any ``TdcError`` into ``{"problems": [...]}`` with ``err.http_status``::

    raise NotFound(f"submission {sid} not found")
    raise QuotaExceeded("5 uploads in 24 h", retry_after_s=3600)
"""

from __future__ import annotations

from submissions.errors import TdcError


class Unauthorized(TdcError):
    http_status = 401
    code = "unauthorized"


class Forbidden(TdcError):
    http_status = 403
    code = "forbidden"


class NotFound(TdcError):
    http_status = 404
    code = "not_found"


class Conflict(TdcError):
    """The request contradicts the current state (stale lease, reused key, lost a race)."""

    http_status = 409
    code = "conflict"


class IllegalTransition(Conflict):
    code = "illegal_transition"


class PayloadTooLarge(TdcError):
    http_status = 413
    code = "payload_too_large"


class HeadersTooLarge(TdcError):
    http_status = 431
    code = "request_header_fields_too_large"


class UriTooLong(TdcError):
    http_status = 414
    code = "uri_too_long"


class UnsupportedMedia(TdcError):
    http_status = 415
    code = "unsupported_media_type"


class InvalidRequest(TdcError):
    """A well-formed request whose content the benchmark rejects (unknown task, bad result)."""

    http_status = 422
    code = "invalid_request"


class Unavailable(TdcError):
    """The server cannot do it right now (its database or storage is down or read-only);
    nothing was changed, and the same request may be sent again later."""

    http_status = 503
    code = "unavailable"
    retry_after_s = 5


class QuotaExceeded(TdcError):
    http_status = 429
    code = "quota_exceeded"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        self.retry_after_s = max(int(retry_after_s), 1)
        super().__init__(message)
