"""What the gateway does to every request before it leaves: who is asking, rate limits,
token verification, and the hand-over to the streaming proxy."""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Annotated
from urllib.parse import quote

import httpx
from fastapi import Depends, Request
from redis.asyncio import Redis

from hds_common.errors import Forbidden
from hds_common.forwarded_client import mint_client_assertion
from hds_common.request_context import current_request_id
from hds_common.tokens import TokenClaims, TokenVerifier, bearer_token
from hds_gateway.config import Settings
from hds_gateway.forwarding import (
    ClientOrigin,
    TrustedProxies,
    client_origin,
    upstream_request_headers,
)
from hds_gateway.openapi import OpenApiMerger
from hds_gateway.proxy import UpstreamPool, UpstreamRequest, UpstreamResponse, send_upstream
from hds_gateway.ratelimit import RateLimiter, enforce
from hds_gateway.routing import RateClass

__all__ = ["Gateway", "GatewayDep"]


@dataclass
class Gateway:
    """Everything the lifespan builds, in one place on ``app.state.gateway``."""

    settings: Settings
    pool: UpstreamPool
    # httpx clients for ordinary calls (JWKS, readiness, OpenAPI), one per upstream.
    clients: dict[str, httpx.AsyncClient]
    verifier: TokenVerifier
    limiter: RateLimiter
    redis: Redis | None
    trusted: TrustedProxies
    openapi: OpenApiMerger
    metrics_clients: TrustedProxies = field(default_factory=lambda: TrustedProxies(()))

    def origin(self, request: Request) -> ClientOrigin:
        client = request.scope.get("client")
        return client_origin(
            peer=client[0] if client else "",
            scheme=request.scope.get("scheme", "http"),
            headers=request.scope["headers"],
            trusted=self.trusted,
        )

    def vouch(self, origin: ClientOrigin) -> str | None:
        """The signed client address for the upstream; none without an internal secret
        (the services then see the gateway as the client)."""
        secret = self.settings.suite.internal_secret.get_secret_value()
        if not secret:
            return None
        proto = origin.proto.split(",")[0].strip().lower()
        proto = proto if proto in ("http", "https") else "http"
        return mint_client_assertion(secret, address=origin.address, proto=proto)

    async def limit_address(self, rate_class: RateClass, address: str) -> None:
        limit = (
            self.settings.rate_limit_auth_per_address
            if rate_class is RateClass.AUTH
            else self.settings.rate_limit_api_per_address
        )
        await enforce(
            self.limiter,
            f"{rate_class}:address:{address}",
            limit=limit,
            window=self.settings.rate_limit_window_seconds,
        )

    async def limit_subject(self, rate_class: RateClass, subject: str) -> None:
        limit = 0 if rate_class is RateClass.AUTH else self.settings.rate_limit_api_per_subject
        await enforce(
            self.limiter,
            f"{rate_class}:subject:{subject}",
            limit=limit,
            window=self.settings.rate_limit_window_seconds,
        )

    async def authorize_metrics(self, request: Request) -> None:
        """``/metrics`` names routes, rates and upstream failures: only for the configured
        scrapers (a bearer token, or an allowed client address); 403 for anyone else."""
        token = self.settings.metrics_token.get_secret_value()
        scheme, _, presented = (request.headers.get("authorization") or "").partition(" ")
        if (
            token
            and scheme.lower() == "bearer"
            and hmac.compare_digest(presented.strip().encode(), token.encode())
        ):
            return
        if self.origin(request).address in self.metrics_clients:
            return
        raise Forbidden(
            "metrics are served to the configured scrapers only", slug="metrics-forbidden"
        )

    async def authenticate(self, request: Request, *, audience: str) -> TokenClaims:
        """Verified claims of the request's bearer token, or 401 with WWW-Authenticate."""
        token = bearer_token(request.headers.get("authorization"))
        return await self.verifier.verify(token, audience=audience)

    async def forward(
        self,
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
                client_assertion=self.vouch(origin),
            ),
            body_limit=body_limit,
        )
        return await send_upstream(self.pool, outgoing, scope, request.receive)


async def get_gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]
