"""Cached response bodies: the bytes, a strong ETag and a gzip copy, all made once per build.

    body = Body.of(html)                              # str or bytes
    body.etag                                         # '"3f1c..."' (content hash)
    body.encoded(accept_encoding="gzip, br")          # (gzip bytes, "gzip") or (raw, None)

A board page is rebuilt only when the database changes and then served thousands of times, so
compressing it once at build time (a 339 KB board JSON becomes ~30 KB) moves the cost off the
request path; the ETag lets browsers revalidate with a 304 and no body at all.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass

_MIN_GZIP = 1024  # below this the header overhead eats the gain


@dataclass(frozen=True)
class Body:
    raw: bytes
    etag: str
    gzipped: bytes | None

    @classmethod
    def of(cls, content: str | bytes) -> Body:
        raw = content.encode() if isinstance(content, str) else content
        etag = '"' + hashlib.blake2b(raw, digest_size=12).hexdigest() + '"'
        packed = gzip.compress(raw, compresslevel=6, mtime=0) if len(raw) >= _MIN_GZIP else None
        return cls(raw, etag, packed if packed is not None and len(packed) < len(raw) else None)

    def encoded(self, *, accept_encoding: str | None) -> tuple[bytes, str | None]:
        """The bytes to send and their ``Content-Encoding`` (None: identity)."""
        if self.gzipped is not None and accepts_gzip(accept_encoding):
            return self.gzipped, "gzip"
        return self.raw, None

    def matches(self, if_none_match: str | None) -> bool:
        """Whether a conditional GET's ``If-None-Match`` names this body (answer 304)."""
        if not if_none_match:
            return False
        tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
        return "*" in tags or self.etag in tags


def accepts_gzip(accept_encoding: str | None) -> bool:
    """RFC 9110 content negotiation for gzip: listed (or ``*``) with a non-zero q-value."""
    if not accept_encoding:
        return False
    weights: dict[str, float] = {}
    for item in accept_encoding.lower().split(","):
        name, _, params = item.strip().partition(";")
        q = 1.0
        for p in params.split(";"):
            key, _, value = p.strip().partition("=")
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        weights[name.strip()] = q
    return weights.get("gzip", weights.get("x-gzip", weights.get("*", 0.0))) > 0
