"""Application factory of the encrypted storage service."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import httpx
import structlog
from fastapi import FastAPI

from hds_common.app import create_backend_app, logged_app
from hds_common.blobstore import blobstore_from_url
from hds_common.db import create_engine, create_session_maker, migrate_service, ping_database
from hds_common.http import internal_client
from hds_common.key_provider import key_provider
from hds_common.observability import ReadinessCheck
from hds_common.tokens import JwksClient, KeySource, TokenVerifier
from hds_storage.clients.codes import CodesClient
from hds_storage.clients.identity import IdentityClient
from hds_storage.config import Settings
from hds_storage.downloads import router as downloads
from hds_storage.holdings import router as holdings
from hds_storage.ingest import router as ingest
from hds_storage.ingest.router import INGEST_PATHS
from hds_storage.key_sessions import router as key_sessions
from hds_storage.key_sessions.service import LocalKeySessions
from hds_storage.keys import grant_public_key
from hds_storage.maintenance import router as maintenance
from hds_storage.maintenance.loops import key_session_sweep_loop, maintenance_loop
from hds_storage.packages import router as packages
from hds_storage.runtime import Runtime
from hds_storage.shares import router as shares

__all__ = ["app_from_env", "create_app", "lifespan"]

log = structlog.get_logger("hds.storage")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    transport: httpx.AsyncBaseTransport | None = app.state.transport
    if settings.migrate_on_start:
        await migrate_service("hds_storage", settings.database_url)
    grant_key = await asyncio.to_thread(
        key_provider(settings.suite.key_provider).x25519_private_key,
        settings.grant_private_key_file,
    )
    published = settings.suite.grant_public_key
    if published and published != grant_public_key(grant_key):
        # Grants sealed to HDS_GRANT_PUBLIC_KEY would all be refused.
        log.error("grant_public_key_mismatch", key_file=settings.grant_private_key_file)
    engine = create_engine(settings.database_url)
    store = blobstore_from_url(settings.blob_url)
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(engine.dispose)
        await store.open()
        stack.push_async_callback(store.close)
        neighbours: dict[str, httpx.AsyncClient] = {}
        for name, url in (("auth", settings.suite.auth_url), ("codes", settings.suite.codes_url)):
            neighbours[name] = internal_client(
                url,
                service="storage",
                secret=settings.suite.internal_secret.get_secret_value(),
                timeout=settings.auth_timeout_seconds,
                transport=transport,
            )
            stack.push_async_callback(neighbours[name].aclose)
        keys: KeySource | None = app.state.token_keys
        if keys is None:
            jwks_http = httpx.AsyncClient(
                timeout=settings.auth_timeout_seconds, transport=transport
            )
            stack.push_async_callback(jwks_http.aclose)
            keys = JwksClient(f"{settings.suite.auth_url}/.well-known/jwks.json", jwks_http)
        session_maker = create_session_maker(engine)
        runtime = Runtime(
            settings=settings,
            engine=engine,
            session_maker=session_maker,
            store=store,
            grant_key=grant_key,
            identity=IdentityClient(neighbours["auth"]),
            verifier=TokenVerifier(
                issuer=settings.suite.jwt_issuer,
                keys=keys,
                liveness=LocalKeySessions(session_maker),
                liveness_ttl=settings.suite.session_check_seconds,
            ),
            codes=CodesClient(neighbours["codes"]),
        )
        app.state.runtime = runtime
        # The request session (hds_common.db.SessionDep) comes from here.
        app.state.session_maker = session_maker
        loops = [
            asyncio.create_task(maintenance_loop(runtime)),
            asyncio.create_task(key_session_sweep_loop(runtime)),
        ]
        try:
            yield
        finally:
            for loop in loops:
                loop.cancel()
            for loop in loops:
                with contextlib.suppress(asyncio.CancelledError):
                    await loop


def readiness(app: FastAPI) -> Mapping[str, ReadinessCheck]:
    runtime: Runtime = app.state.runtime
    return {
        "database": lambda: ping_database(runtime.engine),
        "blobstore": runtime.store.ping,
    }


def create_app(
    settings: Settings | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    token_keys: KeySource | None = None,
) -> FastAPI:
    """Build the app. ``transport`` replaces the network for calls to other services
    (tests wire the services together in one process with it); ``token_keys`` replaces
    the identity service's JWKS (tests that mint their own tokens)."""
    app = create_backend_app(
        settings or Settings(),
        transport=transport,
        service="storage",
        title="HDS encrypted storage service",
        description=(
            "Packages, studies, series, instances and documents, encrypte"
            "d at rest under per-package keys; key slots, quota, holdings."
        ),
        lifespan=lifespan,
        readiness=readiness,
        routers=[
            packages.public,
            ingest.router,
            holdings.public,
            shares.router,
            packages.internal,
            maintenance.router,
            downloads.router,
            holdings.internal,
            key_sessions.router,
        ],
        # Uploads stream to the blob store and are bounded by the quota reservation.
        large_bodies=INGEST_PATHS,
    )
    app.state.token_keys = token_keys
    return app


def app_from_env() -> FastAPI:
    """Entry point for uvicorn (``--factory``)."""
    return logged_app("storage", Settings, create_app)
