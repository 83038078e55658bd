"""Cached bodies: gzip made once and negotiated per RFC 9110, strong ETags, 304 matching."""

from __future__ import annotations

import gzip

import pytest

from server.services.bodies import Body, accepts_gzip


def test_big_bodies_get_a_gzip_copy_that_decodes_to_the_same_bytes() -> None:
    raw = b'{"entries": [' + b'{"label": "team", "score": 0.5},' * 500 + b"]}"
    body = Body.of(raw)
    assert body.gzipped is not None and len(body.gzipped) < len(raw) // 5
    assert gzip.decompress(body.gzipped) == raw
    assert body.encoded(accept_encoding="gzip, deflate, br") == (body.gzipped, "gzip")
    assert body.encoded(accept_encoding=None) == (raw, None)
    assert Body.of(raw.decode()).raw == raw, "str content is encoded as UTF-8"


def test_gzip_is_deterministic_and_the_etag_follows_the_content() -> None:
    a, b = Body.of("x" * 5000), Body.of("x" * 5000)
    assert a == b, "same content, same bytes and ETag (no timestamp in the gzip header)"
    assert Body.of("y" * 5000).etag != a.etag
    assert a.etag.startswith('"') and a.etag.endswith('"')


def test_small_bodies_are_sent_as_they_are() -> None:
    body = Body.of("<p>hi</p>")
    assert body.gzipped is None
    assert body.encoded(accept_encoding="gzip") == (b"<p>hi</p>", None)


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        ("gzip", True),
        ("GZIP", True),
        ("deflate, gzip;q=0.5", True),
        ("gzip;q=0", False),
        ("gzip; q=0.0, identity", False),
        ("*", True),
        ("*;q=0", False),
        ("br, *;q=0.1", True),
        ("x-gzip", True),
        ("identity", False),
        ("gzip;q=abc", False),
        ("", False),
        (None, False),
    ],
)
def test_accept_encoding_negotiation(header: str | None, ok: bool) -> None:
    assert accepts_gzip(header) is ok


def test_if_none_match() -> None:
    body = Body.of("z" * 2000)
    assert body.matches(body.etag)
    assert body.matches(f'"other", W/{body.etag}')
    assert body.matches("*")
    assert not body.matches('"other"')
    assert not body.matches(None) and not body.matches("")
