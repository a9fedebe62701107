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
) -> FastAPI:
    """A FastAPI app with problem+json errors, request ids, JSON access logs, metrics,
    ``/healthz`` and ``/readyz``. ``readiness`` lists the checks of ``/readyz``; it is
    called per request so it can read clients the lifespan put on ``app.state``."""
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
    app.include_router(
        health_router(lambda: readiness(app) if readiness else {}, registry=registry)
    )
    for router in routers:
        app.include_router(router)
    return app


def serve(factory: str, *, host: str, port: int, forwarded_allow_ips: str | None) -> None:
    """Run a service under uvicorn (uvloop, httptools, our JSON logging).

    ``forwarded_allow_ips``: the peers whose ``X-Forwarded-For/Proto`` are believed (the
    gateway's addresses); None believes nobody, as the gateway itself does."""
    uvicorn.run(
        factory,
        factory=True,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        proxy_headers=forwarded_allow_ips is not None,
        forwarded_allow_ips=forwarded_allow_ips,
    )
