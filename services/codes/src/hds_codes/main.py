"""Application factory of the access code service."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
from fastapi import FastAPI

from hds_codes.clients.identity import IdentityClient
from hds_codes.clients.storage import StorageClient
from hds_codes.codes.router import router as codes_router
from hds_codes.config import Settings
from hds_codes.imports.router import router as imports_router
from hds_codes.internal.router import router as internal_router
from hds_codes.lookup import LookupKey
from hds_codes.runtime import CodesMetrics, Runtime
from hds_codes.slots import KeyDeriver
from hds_common.app import create_backend_app, logged_app
from hds_common.db import create_engine, create_session_maker, migrate_service, ping_database
from hds_common.http import internal_client
from hds_common.key_provider import key_provider
from hds_common.observability import ReadinessCheck
from hds_common.tokens import JwksClient, StorageSessions, TokenVerifier

JWKS_PATH = "/.well-known/jwks.json"
ROUTERS = (codes_router, imports_router, internal_router)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    suite = settings.suite
    internal_secret = suite.internal_secret.get_secret_value()
    if not internal_secret:
        raise RuntimeError("HDS_INTERNAL_SECRET is not set")
    # Codes seals every package key it hands on to storage: no start without its key.
    try:
        grant_public_key = suite.grant_public_x25519
    except ValueError as exc:
        raise RuntimeError(str(exc)) from None
    if grant_public_key is None:
        raise RuntimeError("HDS_GRANT_PUBLIC_KEY (the storage service's public key) is not set")
    secret = await asyncio.to_thread(
        key_provider(suite.key_provider).secret, str(settings.lookup_secret_file)
    )
    if settings.migrate_on_start:
        await migrate_service("hds_codes", settings.database_url)

    async with AsyncExitStack() as stack:
        engine = create_engine(settings.database_url)
        stack.push_async_callback(engine.dispose)
        session_maker = create_session_maker(engine)

        def client(base_url: str) -> httpx.AsyncClient:
            return internal_client(
                base_url, service="codes", secret=internal_secret, transport=app.state.transport
            )

        auth_http = await stack.enter_async_context(client(suite.auth_url))
        storage_http = await stack.enter_async_context(client(suite.storage_url))
        app.state.engine = engine
        app.state.session_maker = session_maker
        app.state.runtime = Runtime(
            settings=settings,
            session_maker=session_maker,
            lookup=LookupKey(secret),
            deriver=KeyDeriver(settings.kdf_concurrency),
            verifier=TokenVerifier(
                issuer=suite.jwt_issuer,
                keys=JwksClient(f"{suite.auth_url.rstrip('/')}{JWKS_PATH}", auth_http),
                liveness=StorageSessions(storage_http),
                liveness_ttl=suite.session_check_seconds,
            ),
            identity=IdentityClient(auth_http),
            storage=StorageClient(storage_http, grant_public_key),
            metrics=app.state.codes_metrics,
        )
        yield


def readiness(app: FastAPI) -> Mapping[str, ReadinessCheck]:
    return {"database": lambda: ping_database(app.state.engine)}


def create_app(
    settings: Settings | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """Build the app. ``transport`` replaces the network for calls to other services
    (tests wire the services together in one process with it)."""
    app = create_backend_app(
        settings or Settings(),
        transport=transport,
        service="codes",
        title="HDS access code service",
        description=(
            "Access codes (HAC): issue, validate, expire, reactivate, revok"
            "e, lockout, QR codes and carrier sheets, import into accounts."
        ),
        lifespan=lifespan,
        readiness=readiness,
        routers=ROUTERS,
    )
    app.state.codes_metrics = CodesMetrics(app.state.metrics_registry)
    return app


def app_from_env() -> FastAPI:
    """Entry point for uvicorn (``--factory``)."""
    return logged_app("codes", Settings, create_app)
