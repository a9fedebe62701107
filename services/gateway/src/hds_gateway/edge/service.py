"""What the gateway does to every request before it leaves: who is asking, rate limits,
token verification, and the hand-over to the streaming proxy."""

from __future__ import annotations

import hmac
from urllib.parse import quote

from starlette.requests import Request

from hds_common.forwarded_client import mint_client_assertion
from hds_common.request_context import current_request_id
from hds_common.tokens import TokenClaims, bearer_token
from hds_gateway.errors import MetricsForbidden
from hds_gateway.forwarding.headers import ClientOrigin, client_origin, upstream_request_headers
from hds_gateway.proxy.upstream import UpstreamRequest, UpstreamResponse, send_upstream
from hds_gateway.ratelimit.limiter import enforce
from hds_gateway.routing.table import RateClass
from hds_gateway.runtime import Runtime

__all__ = [
    "authenticate",
    "authorize_metrics",
    "forward",
    "limit_address",
    "limit_subject",
    "origin",
    "vouch",
]


def origin(runtime: Runtime, request: Request) -> ClientOrigin:
    client = request.scope.get("client")
    return client_origin(
        peer=client[0] if client else "",
        scheme=request.scope.get("scheme", "http"),
        headers=request.scope["headers"],
        trusted=runtime.trusted,
    )


def vouch(runtime: Runtime, origin: ClientOrigin) -> str | None:
    """The signed client address for the upstream; none without an internal secret
    (the services then see the gateway as the client)."""
    secret = runtime.settings.suite.internal_secret.get_secret_value()
    if not secret:
        return None
    proto = origin.proto.split(",")[0].strip().lower()
    proto = proto if proto in ("http", "https") else "http"
    return mint_client_assertion(secret, address=origin.address, proto=proto)


async def limit_address(runtime: Runtime, rate_class: RateClass, address: str) -> None:
    settings = runtime.settings
    limit = (
        settings.rate_limit_auth_per_address
        if rate_class is RateClass.AUTH
        else settings.rate_limit_api_per_address
    )
    await enforce(
        runtime.limiter,
        f"{rate_class}:address:{address}",
        limit=limit,
        window=settings.rate_limit_window_seconds,
    )


async def limit_subject(runtime: Runtime, rate_class: RateClass, subject: str) -> None:
    settings = runtime.settings
    limit = 0 if rate_class is RateClass.AUTH else settings.rate_limit_api_per_subject
    await enforce(
        runtime.limiter,
        f"{rate_class}:subject:{subject}",
        limit=limit,
        window=settings.rate_limit_window_seconds,
    )


def authorize_metrics(runtime: Runtime, request: Request) -> None:
    """``/metrics`` names routes, rates and upstream failures: only for the configured
    scrapers (a bearer token, or an allowed client address); 403 for anyone else."""
    token = runtime.settings.metrics_token.get_secret_value()
    scheme, _, presented = (request.headers.get("authorization") or "").partition(" ")
    if (
        token
        and scheme.lower() == "bearer"
        and hmac.compare_digest(presented.strip().encode(), token.encode())
    ):
        return
    if origin(runtime, request).address in runtime.metrics_clients:
        return
    raise MetricsForbidden("metrics are served to the configured scrapers only")


async def authenticate(runtime: Runtime, request: Request, *, audience: str) -> TokenClaims:
    """Verified claims of the request's bearer token, or 401 with WWW-Authenticate."""
    token = bearer_token(request.headers.get("authorization"))
    return await runtime.verifier.verify(token, audience=audience)


async def forward(
    runtime: Runtime,
    request: Request,
    origin: ClientOrigin,
    *,
    upstream: str,
    body_limit: int,
    raw_path: str | None = None,
    query: str | None = None,
) -> UpstreamResponse:
    """Stream ``request`` to ``upstream`` (under its own path unless told otherwise)."""
    scope = request.scope
    if raw_path is None:
        raw = scope.get("raw_path")
        raw_path = raw.decode("latin-1") if raw else quote(scope["path"])
    if query is None:
        query = scope.get("query_string", b"").decode("latin-1")
    outgoing = UpstreamRequest(
        upstream=upstream,
        method=request.method,
        raw_path=raw_path,
        query=query,
        headers=upstream_request_headers(
            scope["headers"],
            origin=origin,
            request_id=current_request_id(),
            client_assertion=vouch(runtime, origin),
        ),
        body_limit=body_limit,
    )
    return await send_upstream(runtime.pool, outgoing, scope, request.receive)
