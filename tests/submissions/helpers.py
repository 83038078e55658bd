"""Helpers for client tests: a TdcClient over an in-process transport."""

from __future__ import annotations

import httpx

from submissions.client import TdcClient


def client_for(handler: httpx.MockTransport, token: str | None = "tdc_x") -> TdcClient:
    http = httpx.Client(transport=handler)
    return TdcClient("http://tdc.test", token, http=http)
