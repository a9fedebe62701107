"""What the lifespan builds once (hds_gateway.main), on ``app.state.runtime``."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
from redis.asyncio import Redis

from hds_common.tokens import TokenVerifier
from hds_gateway.config import Settings
from hds_gateway.forwarding.headers import TrustedProxies
from hds_gateway.openapi.merger import OpenApiMerger
from hds_gateway.proxy.upstream import UpstreamPool
from hds_gateway.ratelimit.limiter import RateLimiter

__all__ = ["Runtime"]


@dataclass
class Runtime:
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
