"""Application factory of the gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from hds_common.app import create_service_app
from hds_common.logs import configure_logging
from hds_common.observability import ReadinessCheck
from hds_gateway.config import Settings


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    yield


def readiness(_: FastAPI) -> Mapping[str, ReadinessCheck]:
    return {}


def create_app(
    settings: Settings | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """Build the app. ``transport`` replaces the network for calls to other services
    (tests wire the services together in one process with it)."""
    settings = settings or Settings()
    app = create_service_app(
        service="gateway",
        title="HDS gateway",
        description=(
            "The single public entry: edge JWT verification, routin"
            "g by path prefix, streaming proxy, DLX header routing."
        ),
        lifespan=lifespan,
        readiness=readiness,
    )
    app.state.settings = settings
    app.state.transport = transport
    return app


def app_from_env() -> FastAPI:
    """Entry point for uvicorn (``--factory``)."""
    settings = Settings()
    configure_logging("gateway", level=settings.suite.log_level, json=settings.suite.log_json)
    return create_app(settings)
