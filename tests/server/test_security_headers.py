"""Every response carries the security headers: a Content-Security-Policy that keeps the pages
working (no inline script or style, no other origin) and forbids framing, and ``nosniff``."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

PATHS = [
    "/",  # a cached page
    "/datasets/tiny?fraction=0.1",
    "/datasets/nope",  # the HTML 404 page
    "/submissions/1",
    "/teams/alpha",
    "/static/style.css",
    "/static/sort.js",
    "/api/datasets",  # JSON
    "/api/datasets/tiny/leaderboard?fraction=0.1&format=csv",
    "/api/submissions",  # 401 problem list
    "/api/nope",  # unknown route
    "/api/submissions/abc",  # 422 problem list
]


@pytest.mark.parametrize("path", PATHS)
def test_every_response_has_the_security_headers(client: TestClient, path: str) -> None:
    r = client.get(path)
    csp = r.headers.get("content-security-policy", "")
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";") if d.strip())
    assert directives.get("frame-ancestors") == "'none'", (path, csp)
    assert directives.get("default-src") == "'self'"
    assert directives.get("script-src") == "'self'" and "unsafe" not in csp
    assert directives.get("object-src") == "'none'"
    assert r.headers.get("x-content-type-options") == "nosniff"
    assert r.headers.get("x-frame-options") == "DENY"


def test_a_304_has_them_once(client: TestClient) -> None:
    first = client.get("/datasets/tiny?fraction=0.1")
    etag = first.headers.get("etag")
    assert etag
    again = client.get("/datasets/tiny?fraction=0.1", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.headers.get_list("content-security-policy") == [
        first.headers["content-security-policy"]
    ]
    assert again.headers.get_list("x-content-type-options") == ["nosniff"]


def test_the_api_docs_get_a_policy_that_lets_them_load(client: TestClient) -> None:
    """Swagger UI comes from its CDN and starts with an inline script; still never framed."""
    r = client.get("/docs")
    assert r.status_code == 200 and "cdn.jsdelivr.net" in r.text
    csp = r.headers["content-security-policy"]
    assert "https://cdn.jsdelivr.net" in csp and "frame-ancestors 'none'" in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "cdn.jsdelivr.net" not in client.get("/").headers["content-security-policy"]


def test_an_unexpected_error_gets_them_and_no_traceback(app: FastAPI) -> None:
    @app.get("/api/boom")
    def boom() -> None:
        raise RuntimeError("secret detail")

    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.get("/api/boom")
    assert r.status_code == 500 and r.headers.get("x-content-type-options") == "nosniff"
    assert "frame-ancestors 'none'" in r.headers.get("content-security-policy", "")
    assert r.json() == {"problems": [{"code": "internal_error",
                                      "message": "internal server error"}]}  # fmt: skip
    assert "secret" not in r.text
