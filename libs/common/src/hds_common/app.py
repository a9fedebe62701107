"""The one way a service builds its FastAPI application."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import uvicorn
from fastapi import APIRouter, FastAPI
from prometheus_client import CollectorRegistry

from hds_common.docs import docs_router
from hds_common.errors import install_problem_handlers
from hds_common.forwarded_client import ForwardedClientMiddleware
from hds_common.observability import ReadinessCheck, RequestContextMiddleware, health_router

__all__ = ["create_service_app", "serve"]


def create_service_app(
    *,
    service: str,
    title: str,
    description: str,
    version: str = "0.1.0",
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[Any]] | None = None,
    routers: Sequence[APIRouter] = (),
    readiness: Callable[[FastAPI], Mapping[str, ReadinessCheck]] | None = None,
    openapi_url: str | None = "/openapi.json",
    gateway_secret: Callable[[], str] | None = None,
) -> FastAPI:
    """A FastAPI app with problem+json errors, request ids, JSON access logs, metrics,
    ``/healthz`` and ``/readyz``. ``readiness`` lists the checks of ``/readyz``; it is
    called per request so it can read clients the lifespan put on ``app.state``.

    ``gateway_secret`` (the internal secret) makes the app believe the client address the
    gateway vouches for (``hds_common.forwarded_client``); services behind the gateway
    pass it, the gateway itself does not."""
    app = FastAPI(
        title=title,
        description=description,
        version=version,
        lifespan=lifespan,
        openapi_url=openapi_url,
        # Our own /docs and /redoc, with assets from the suite (hds_common.docs).
        docs_url=None,
        redoc_url=None,
    )
    if openapi_url is not None:
        app.include_router(docs_router(openapi_url=openapi_url, title=title))
    registry = CollectorRegistry()
    app.state.metrics_registry = registry
    install_problem_handlers(app)
    app.add_middleware(RequestContextMiddleware, service=service, registry=registry)
    if gateway_secret is not None:
        # Outside the request context, so the access log already shows the real client.
        app.add_middleware(ForwardedClientMiddleware, secret=gateway_secret)
    app.include_router(
        health_router(lambda: readiness(app) if readiness else {}, registry=registry)
    )
    for router in routers:
        app.include_router(router)
    return app


def serve(factory: str, *, host: str, port: int) -> None:
    """Run a service under uvicorn (uvloop, httptools, our JSON logging).

    uvicorn believes no ``X-Forwarded-*`` header from anyone: the gateway reads its
    trusted proxies' itself, and the services behind it believe only the client address
    the gateway vouches for (``create_service_app(gateway_secret=…)``)."""
    uvicorn.run(
        factory,
        factory=True,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        proxy_headers=False,
    )
