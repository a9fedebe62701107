"""Application factory of the identity service."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from hds_auth.account.router import router as account_router
from hds_auth.admin.router import router as admin_router
from hds_auth.config import Settings
from hds_auth.internal.router import router as internal_router
from hds_auth.invitations.router import admin_router as invitations_admin_router
from hds_auth.invitations.router import router as invitations_router
from hds_auth.passwords.router import router as passwords_router
from hds_auth.registration.router import router as registration_router
from hds_auth.runtime import open_runtime
from hds_auth.sessions.router import router as sessions_router
from hds_auth.signing.router import router as signing_router
from hds_common.app import create_backend_app, logged_app
from hds_common.db import migrate_service, ping_database
from hds_common.observability import ReadinessCheck

ROUTERS = (
    registration_router,
    invitations_router,
    sessions_router,
    passwords_router,
    signing_router,
    account_router,
    invitations_admin_router,
    admin_router,
    internal_router,
)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    if settings.migrate_on_start:
        await migrate_service("hds_auth", settings.database_url)
    async with open_runtime(settings, transport=app.state.transport) as runtime:
        app.state.runtime = runtime
        app.state.engine = runtime.engine
        app.state.session_maker = runtime.session_maker
        yield


def readiness(app: FastAPI) -> Mapping[str, ReadinessCheck]:
    async def signing_key() -> None:
        app.state.runtime.keyring.current()

    return {"database": lambda: ping_database(app.state.engine), "signing_key": signing_key}


def create_app(
    settings: Settings | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """Build the app. ``transport`` replaces the network for calls to other services
    (tests wire the services together in one process with it)."""
    return create_backend_app(
        settings or Settings(),
        transport=transport,
        service="auth",
        title="HDS identity service",
        description=(
            "Accounts, activation, login, recovery codes, user key pairs, settings, and the "
            "only JWT issuer of the suite (JWKS at /.well-known/jwks.json)."
        ),
        lifespan=lifespan,
        readiness=readiness,
        routers=ROUTERS,
    )


def app_from_env() -> FastAPI:
    """Entry point for uvicorn (``--factory``)."""
    return logged_app("auth", Settings, create_app)
