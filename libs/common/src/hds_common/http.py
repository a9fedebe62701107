"""HTTP clients for calls between the suite's services (httpx, created in lifespans)."""

from __future__ import annotations

import httpx

from hds_common.request_context import REQUEST_ID_HEADER, current_request_id
from hds_common.service_auth import SERVICE_TOKEN_HEADER, mint_service_token

__all__ = ["INTERNAL_KEEPALIVE_SECONDS", "internal_client"]

# Idle pooled connections are dropped well before the services' own keep-alive timeout
# (uvicorn's, 5 s by default): a request sent on a connection the server is closing at
# that very moment fails with RemoteProtocolError, which showed as a spurious 503
# "identity service cannot be reached" under load.
INTERNAL_KEEPALIVE_SECONDS = 2.0


def internal_client(
    base_url: str,
    *,
    service: str,
    secret: str,
    timeout: float = 30.0,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """A pooled client that authenticates as ``service`` and forwards the request id."""

    async def add_headers(request: httpx.Request) -> None:
        request.headers[SERVICE_TOKEN_HEADER] = mint_service_token(secret, service)
        request_id = current_request_id()
        if request_id:
            request.headers.setdefault(REQUEST_ID_HEADER, request_id)

    return httpx.AsyncClient(
        base_url=base_url,
        timeout=timeout,
        transport=transport,
        limits=httpx.Limits(keepalive_expiry=INTERNAL_KEEPALIVE_SECONDS),
        event_hooks={"request": [add_headers]},
    )
