"""The one way a service builds its FastAPI application."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

import httpx
import uvicorn
from fastapi import APIRouter, FastAPI
from prometheus_client import CollectorRegistry

from hds_common.docs import docs_router
from hds_common.errors import install_problem_handlers
from hds_common.forwarded_client import ForwardedClientMiddleware
from hds_common.logs import configure_logging
from hds_common.observability import (
    MetricsAccess,
    ReadinessCheck,
    RequestContextMiddleware,
    health_router,
)
from hds_common.serving import (
    BodyLimitMiddleware,
    ConcurrencyLimitMiddleware,
    HttpLimits,
    guarded_protocol,
    raise_open_file_limit,
)
from hds_common.settings import ServiceSettings

SettingsT = TypeVar("SettingsT", bound=ServiceSettings)

__all__ = [
    "create_backend_app",
    "create_service_app",
    "logged_app",
    "serve",
    "service_main",
]


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
    limits: HttpLimits | None = None,
    body_limit: bool = True,
    large_bodies: re.Pattern[str] | None = None,
    metrics_access: MetricsAccess | None = None,
) -> FastAPI:
    """A FastAPI app with problem+json errors, request ids, JSON access logs, metrics,
    ``/healthz`` and ``/readyz``. ``readiness`` lists the checks of ``/readyz``; it is
    called per request so it can read clients the lifespan put on ``app.state``.

    ``gateway_secret`` (the internal secret) makes the app believe the client address the
    gateway vouches for (``hds_common.forwarded_client``); services behind the gateway
    pass it, the gateway itself does not.

    ``limits`` bounds requests in flight and request bodies (hds_common.serving; every
    service passes its settings' limits, stand-ins in tests may go without);
    ``large_bodies`` matches the paths that stream large uploads and bound them
    themselves, ``body_limit=False`` leaves body limits to the app altogether (the
    gateway's are per route). ``metrics_access`` guards ``/metrics`` (raises to refuse)."""
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
    # Inside the request context: refusals get a request id, an access log line, a count.
    if limits is not None:
        if body_limit:
            app.add_middleware(
                BodyLimitMiddleware, limit=limits.max_body_bytes, exempt=large_bodies
            )
        app.add_middleware(
            ConcurrencyLimitMiddleware,
            limit=limits.max_concurrent_requests,
            retry_after_seconds=limits.busy_retry_after_seconds,
        )
    app.add_middleware(RequestContextMiddleware, service=service, registry=registry)
    if gateway_secret is not None:
        # Outside the request context, so the access log already shows the real client.
        app.add_middleware(ForwardedClientMiddleware, secret=gateway_secret)
    app.include_router(
        health_router(
            lambda: readiness(app) if readiness else {},
            registry=registry,
            metrics_access=metrics_access,
        )
    )
    for router in routers:
        app.include_router(router)
    return app


def create_backend_app(
    settings: ServiceSettings,
    *,
    transport: httpx.AsyncBaseTransport | None,
    service: str,
    title: str,
    description: str,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[Any]],
    routers: Sequence[APIRouter],
    readiness: Callable[[FastAPI], Mapping[str, ReadinessCheck]],
    large_bodies: re.Pattern[str] | None = None,
) -> FastAPI:
    """:func:`create_service_app` for a service behind the gateway: it believes the client
    address the gateway vouches for, is bounded by the suite's HTTP limits, and keeps its
    ``settings`` and its ``transport`` (what replaces the network for calls to other
    services; tests wire the services together in one process with it) on ``app.state``
    for its lifespan."""
    app = create_service_app(
        gateway_secret=settings.suite.internal_secret.get_secret_value,
        service=service,
        title=title,
        description=description,
        lifespan=lifespan,
        readiness=readiness,
        routers=routers,
        limits=HttpLimits.from_settings(settings.suite),
        large_bodies=large_bodies,
    )
    app.state.settings = settings
    app.state.transport = transport
    return app


def logged_app(
    service: str, settings: Callable[[], SettingsT], create_app: Callable[[SettingsT], FastAPI]
) -> FastAPI:
    """What a service's ``app_from_env`` (uvicorn's ``--factory``) returns: its app built
    from the environment's settings, with logging as those settings say."""
    loaded = settings()
    configure_logging(service, level=loaded.suite.log_level, json=loaded.suite.log_json)
    return create_app(loaded)


def serve(factory: str, *, host: str, port: int, limits: HttpLimits) -> None:
    """Run a service under uvicorn (uvloop, httptools with the header and body timeouts
    and the connection limit of hds_common.serving, our JSON logging).

    uvicorn believes no ``X-Forwarded-*`` header from anyone: the gateway reads its
    trusted proxies' itself, and the services behind it believe only the client address
    the gateway vouches for (``create_service_app(gateway_secret=…)``)."""
    max_connections = raise_open_file_limit(limits.max_connections)
    uvicorn.run(
        factory,
        factory=True,
        host=host,
        port=port,
        loop="uvloop",
        http=guarded_protocol(limits, max_connections=max_connections),
        timeout_keep_alive=limits.keepalive_timeout,
        backlog=min(2048, max_connections),
        log_config=None,
        proxy_headers=False,
    )


def service_main(
    prog: str,
    factory: str,
    settings: Callable[[], SettingsT],
    commands: Mapping[str, tuple[str, Callable[[SettingsT], None]]] | None = None,
) -> None:
    """``python -m <prog> serve|<command>``: ``serve`` runs ``factory`` on the settings'
    host and port under the suite's HTTP limits; each other command is ``name: (help,
    run)`` and runs with the settings."""
    commands = dict(commands or {})
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument(
        "command",
        choices=["serve", *commands],
        help="; ".join(["serve: run the API", *(f"{n}: {h}" for n, (h, _) in commands.items())]),
    )
    args = parser.parse_args()
    loaded = settings()
    if args.command == "serve":
        serve(
            factory,
            host=loaded.host,
            port=loaded.port,
            limits=HttpLimits.from_settings(loaded.suite),
        )
        return
    commands[args.command][1](loaded)
