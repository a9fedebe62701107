"""Application factory of the identity service."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from hds_auth.config import Settings
from hds_auth.db import migrate
from hds_common.app import create_service_app
from hds_common.db import create_engine, create_session_maker, ping_database
from hds_common.logs import configure_logging
from hds_common.observability import ReadinessCheck


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    if settings.migrate_on_start:
        await migrate(settings.database_url)
    engine = create_engine(settings.database_url)
    app.state.engine = engine
    app.state.session_maker = create_session_maker(engine)
    try:
        yield
    finally:
        await engine.dispose()


def readiness(app: FastAPI) -> Mapping[str, ReadinessCheck]:
    return {"database": lambda: ping_database(app.state.engine)}


def create_app(
    settings: Settings | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """Build the app. ``transport`` replaces the network for calls to other services
    (tests wire the services together in one process with it)."""
    settings = settings or Settings()
    app = create_service_app(
        service="auth",
        title="HDS identity service",
        description=(
            "Accounts, activation, login, recovery codes, user k"
            "ey pairs, settings, and the only JWT issuer (JWKS)."
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
    configure_logging("auth", level=settings.suite.log_level, json=settings.suite.log_json)
    return create_app(settings)
