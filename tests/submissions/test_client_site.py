"""``TdcClient.download_site``: streamed to disk, organizer flag, caps and errors."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from submissions.client import ApiError
from submissions.errors import TdcError
from tests.submissions.helpers import client_for


def test_streams_the_archive_with_the_view_asked_for(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=b"PK" + b"x" * 3_000_000)

    with client_for(httpx.MockTransport(handler)) as client:
        dest = client.download_site(tmp_path / "out" / "site.zip", organizer=True)
        assert dest.stat().st_size == 3_000_002
        client.download_site(tmp_path / "public.zip")
    assert [r.url.path for r in seen] == ["/api/site.zip", "/api/site.zip"]
    assert seen[0].url.params.get("organizer") == "1" and "organizer" not in seen[1].url.params
    assert seen[0].headers["authorization"] == "Bearer tdc_x"
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [
        "public.zip",
        "site.zip",
    ]


def test_errors_and_the_size_cap_leave_nothing_behind(tmp_path: Path) -> None:
    def forbidden(request: httpx.Request) -> httpx.Response:
        problem = {"code": "forbidden", "message": "this action needs an organizer token"}
        return httpx.Response(403, json={"problems": [problem]})

    with (
        client_for(httpx.MockTransport(forbidden)) as client,
        pytest.raises(ApiError, match="organizer token") as err,
    ):
        client.download_site(tmp_path / "site.zip", organizer=True)
    assert err.value.status == 403

    def big(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"x" * 5_000)

    with client_for(httpx.MockTransport(big)) as client:
        with pytest.raises(TdcError, match="exceeds 4,096 bytes"):
            client.download_site(tmp_path / "site.zip", max_bytes=4096)
        assert client.download_site(tmp_path / "site.zip", max_bytes=5_000).exists()
        (tmp_path / "site.zip").unlink()
    assert list(tmp_path.iterdir()) == []
