"""Application factory of the gateway."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
from fastapi import FastAPI, Request
from redis.asyncio import Redis
from starlette.middleware.cors import CORSMiddleware

from hds_common.app import create_service_app, logged_app
from hds_common.docs import docs_router
from hds_common.observability import ReadinessCheck
from hds_common.request_context import REQUEST_ID_HEADER
from hds_common.serving import HttpLimits
from hds_common.tokens import JwksClient, TokenVerifier
from hds_gateway.config import Settings
from hds_gateway.deps import runtime_of
from hds_gateway.edge import service as edge
from hds_gateway.forwarding.headers import TrustedProxies
from hds_gateway.openapi.merger import OpenApiMerger
from hds_gateway.openapi.router import router as openapi_router
from hds_gateway.portal.router import DLX_HEADER
from hds_gateway.portal.router import router as portal_router
from hds_gateway.proxy.router import router as proxy_router
from hds_gateway.proxy.upstream import UpstreamPool
from hds_gateway.ratelimit.limiter import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from hds_gateway.runtime import Runtime

__all__ = ["app_from_env", "create_app"]

CORS_EXPOSED_HEADERS = (
    "Content-Disposition",
    "Content-Length",
    "Accept-Ranges",
    "Content-Range",
    "ETag",
    REQUEST_ID_HEADER,
)
CORS_ALLOWED_HEADERS = (
    "Authorization",
    "Content-Type",
    "Range",
    "If-Range",
    "If-Match",
    "If-None-Match",
    REQUEST_ID_HEADER,
    DLX_HEADER,
)


@asynccontextmanager
async def build_runtime(
    settings: Settings, *, transport: httpx.AsyncBaseTransport | None
) -> AsyncIterator[Runtime]:
    """The upstream pool and clients, the token verifier, the rate limiter (and its Redis),
    closed when the app stops."""
    urls = settings.upstream_urls
    # One TLS context for all clients: building one per client is what makes startup slow.
    tls = ssl.create_default_context()
    async with AsyncExitStack() as stack:
        clients = {
            name: httpx.AsyncClient(
                base_url=url,
                transport=transport,
                timeout=settings.readiness_timeout_seconds,
                verify=tls,
            )
            for name, url in urls.items()
        }
        for client in clients.values():
            stack.push_async_callback(client.aclose)
        pool = UpstreamPool(
            urls,
            connect_timeout=settings.upstream_connect_timeout_seconds,
            read_timeout=settings.upstream_read_timeout_seconds,
            max_connections=settings.upstream_max_connections,
            keepalive=settings.upstream_keepalive_seconds,
            buffer_size=settings.proxy_buffer_bytes,
        )
        stack.push_async_callback(pool.close)
        redis: Redis | None = None
        limiter: RateLimiter = MemoryRateLimiter()
        if settings.redis_url:
            redis = Redis.from_url(
                settings.redis_url, socket_timeout=1.0, socket_connect_timeout=1.0
            )
            stack.push_async_callback(redis.aclose)
            limiter = RedisRateLimiter(redis, prefix=settings.rate_limit_key_prefix)
        jwks = JwksClient(
            f"{urls['auth']}/.well-known/jwks.json",
            clients["auth"],
            min_refresh_interval=settings.jwks_min_refresh_seconds,
            max_age=settings.jwks_max_age_seconds,
        )
        yield Runtime(
            settings=settings,
            pool=pool,
            clients=clients,
            verifier=TokenVerifier(
                issuer=settings.suite.jwt_issuer,
                keys=jwks,
                cache_size=settings.token_cache_size,
            ),
            limiter=limiter,
            redis=redis,
            trusted=TrustedProxies(settings.trusted_proxies),
            metrics_clients=TrustedProxies(settings.metrics_allow_ips),
            openapi=OpenApiMerger(clients, cache_seconds=settings.openapi_cache_seconds),
        )


class UpstreamNotReady(Exception):
    pass


def _upstream_ready(client: httpx.AsyncClient) -> ReadinessCheck:
    async def check() -> None:
        response = await client.get("/readyz")
        if response.status_code != 200:
            raise UpstreamNotReady(f"/readyz answered {response.status_code}")

    return check


def _redis_ready(redis: Redis) -> ReadinessCheck:
    async def check() -> None:
        await redis.ping()

    return check


def readiness(app: FastAPI) -> Mapping[str, ReadinessCheck]:
    """The gateway is ready when every upstream is (and Redis, when configured)."""
    runtime: Runtime = app.state.runtime
    checks = {name: _upstream_ready(client) for name, client in runtime.clients.items()}
    if runtime.redis is not None:
        checks["redis"] = _redis_ready(runtime.redis)
    return checks


async def metrics_access(request: Request) -> None:
    edge.authorize_metrics(runtime_of(request), request)


def create_app(
    settings: Settings | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """Build the app. ``transport`` replaces the network for the gateway's ordinary calls
    (JWKS, readiness, OpenAPI); the proxy itself always speaks HTTP over sockets."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with build_runtime(settings, transport=transport) as runtime:
            app.state.runtime = runtime
            yield

    app = create_service_app(
        service="gateway",
        title="HDS gateway",
        description=(
            "The single public entry: edge JWT verification, routing by path prefix, "
            "streaming proxy, DLX header routing."
        ),
        lifespan=lifespan,
        readiness=readiness,
        # Served by the gateway itself: every service's document merged.
        openapi_url=None,
        # The merged document's /docs and /redoc; the catch-all proxy route comes last.
        routers=[
            portal_router,
            openapi_router,
            docs_router(openapi_url="/openapi.json", title="HDS suite API"),
            proxy_router,
        ],
        limits=HttpLimits.from_settings(settings.suite),
        # Body limits per route (ordinary calls, uploads) are the proxy's own.
        body_limit=False,
        metrics_access=metrics_access,
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=True,
            allow_methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=CORS_ALLOWED_HEADERS,
            expose_headers=CORS_EXPOSED_HEADERS,
        )
    return app


def app_from_env() -> FastAPI:
    """Entry point for uvicorn (``--factory``)."""
    return logged_app("gateway", Settings, create_app)
