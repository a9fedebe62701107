"""Internal service tokens and the internal HTTP client."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from hds_common.errors import Unauthorized
from hds_common.http import internal_client
from hds_common.request_context import request_id_var
from hds_common.service_auth import (
    SERVICE_TOKEN_HEADER,
    mint_service_token,
    verify_service_token,
)

SECRET = "a-test-secret-of-reasonable-length"


def test_round_trip_names_the_caller() -> None:
    assert verify_service_token(SECRET, mint_service_token(SECRET, "dlx")) == "dlx"


REJECTED: dict[str, Callable[[], str | None]] = {
    "missing": lambda: None,
    "empty": lambda: "",
    "too few parts": lambda: "v1.dlx.1",
    "unknown version": lambda: "v2.dlx.9999999999.00",
    "other secret": lambda: mint_service_token("another-secret", "dlx"),
    "caller renamed": lambda: mint_service_token(SECRET, "dlx").replace("dlx", "auth"),
    "expired": lambda: mint_service_token(SECRET, "dlx", now=time.time() - 3600),
    # Headers arrive decoded as latin-1; compare_digest refuses non-ASCII strings.
    "non-ASCII MAC": lambda: "v1.dlx.9999999999.\u00e9\u00e9",
    "non-ASCII caller": lambda: mint_service_token(SECRET, "dlx").replace("dlx", "d\u00e9x"),
}


@pytest.mark.parametrize("case", sorted(REJECTED))
def test_rejected_tokens(case: str) -> None:
    with pytest.raises(Unauthorized):
        verify_service_token(SECRET, REJECTED[case]())


def test_empty_secret_never_verifies() -> None:
    with pytest.raises(ValueError, match="not configured"):
        mint_service_token("", "dlx")
    with pytest.raises(Unauthorized):
        verify_service_token("", "v1.dlx.9999999999.abc")


async def test_internal_client_sends_service_token_and_request_id() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={})

    token = request_id_var.set("req-42")
    try:
        async with internal_client(
            "http://storage.internal",
            service="codes",
            secret=SECRET,
            transport=httpx.MockTransport(handler),
        ) as client:
            await client.get("/internal/v1/usage/a")
    finally:
        request_id_var.reset(token)
    assert verify_service_token(SECRET, seen[0].headers[SERVICE_TOKEN_HEADER]) == "codes"
    assert seen[0].headers["X-Request-ID"] == "req-42"


async def test_internal_clients_drop_idle_connections_before_the_servers_do() -> None:
    """A pooled connection kept as long as the server keeps it races the server's close."""
    from hds_common.http import INTERNAL_KEEPALIVE_SECONDS, internal_client
    from hds_common.settings import SuiteSettings

    # The services' keep-alive timeout (HDS_HTTP_KEEPALIVE_TIMEOUT_SECONDS), by default.
    server_keepalive = SuiteSettings.model_fields["http_keepalive_timeout_seconds"].default
    client = internal_client("http://127.0.0.1:1", service="test", secret="s" * 32)
    try:
        pool = client._transport._pool  # type: ignore[attr-defined]
        assert pool._keepalive_expiry == INTERNAL_KEEPALIVE_SECONDS
        assert INTERNAL_KEEPALIVE_SECONDS < server_keepalive
    finally:
        await client.aclose()
