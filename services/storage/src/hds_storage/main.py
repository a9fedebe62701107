"""Application factory of the encrypted storage service."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import httpx
import structlog
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hds_common.app import create_service_app
from hds_common.blobstore import blobstore_from_url
from hds_common.db import create_engine, create_session_maker, ping_database, utcnow
from hds_common.http import internal_client
from hds_common.key_provider import key_provider
from hds_common.logs import configure_logging
from hds_common.observability import ReadinessCheck
from hds_common.serving import HttpLimits
from hds_common.tokens import JwksClient, KeySource, TokenVerifier
from hds_storage.api import internal, public
from hds_storage.codes_client import CodesClient
from hds_storage.collector import run_maintenance
from hds_storage.config import Settings
from hds_storage.db import migrate
from hds_storage.identity import IdentityClient
from hds_storage.key_sessions import router as key_sessions
from hds_storage.key_sessions.repository import KeySessionRepository
from hds_storage.keys import grant_public_key
from hds_storage.retention import retire_expired_packages
from hds_storage.state import StorageState

# The upload routes: their bodies stream to the blob store, bounded by the quota.
INGEST_PATHS = re.compile(r"/storage/v1/packages/[^/]+/(instances|documents)")

__all__ = ["app_from_env", "create_app", "lifespan"]

log = structlog.get_logger("hds.storage")


async def _maintenance_loop(state: StorageState) -> None:
    """Orphan sweep, dead-upload cleanup, idle-package completion and retention, at start
    and then every ``maintenance_interval_seconds``; safe with several replicas."""
    settings = state.settings
    while True:
        try:
            await run_maintenance(
                state.session_maker,
                state.store,
                upload_stale_seconds=settings.upload_stale_seconds,
                package_idle_timeout_seconds=settings.package_idle_timeout_seconds,
            )
            await retire_expired_packages(
                state.session_maker,
                state.store,
                state.identity,
                state.codes.codes_valid_until,
                retention_days=settings.retention_days,
            )
        except Exception as exc:  # keep the loop alive; the next pass retries
            log.warning("maintenance_failed", error=f"{type(exc).__name__}: {exc}")
        state.plans.expire()
        await asyncio.sleep(settings.maintenance_interval_seconds)


class LocalKeySessions:
    """Liveness of key sessions for this service's own token checks: its own table."""

    def __init__(self, session_maker: async_sessionmaker[AsyncSession]) -> None:
        self._session_maker = session_maker

    async def is_live(self, session_id: str) -> bool:
        async with self._session_maker() as session:
            return await KeySessionRepository(session).is_live(session_id, utcnow())


async def _key_session_sweep_loop(state: StorageState) -> None:
    """Delete expired key sessions soon after they expire: what no row holds, no copy of
    the database taken later can open."""
    while True:
        try:
            async with state.session_maker() as session, session.begin():
                swept = await KeySessionRepository(session).delete_expired(utcnow())
            if swept:
                log.info("key_sessions_swept", count=swept)
        except Exception as exc:  # keep the loop alive; the next pass retries
            log.warning("key_session_sweep_failed", error=f"{type(exc).__name__}: {exc}")
        await asyncio.sleep(state.settings.key_session_sweep_seconds)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    transport: httpx.AsyncBaseTransport | None = app.state.transport
    if settings.migrate_on_start:
        await migrate(settings.database_url)
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
        identity_client = internal_client(
            settings.suite.auth_url,
            service="storage",
            secret=settings.suite.internal_secret.get_secret_value(),
            timeout=settings.auth_timeout_seconds,
            transport=transport,
        )
        stack.push_async_callback(identity_client.aclose)
        codes_client = internal_client(
            settings.suite.codes_url,
            service="storage",
            secret=settings.suite.internal_secret.get_secret_value(),
            timeout=settings.auth_timeout_seconds,
            transport=transport,
        )
        stack.push_async_callback(codes_client.aclose)
        keys: KeySource | None = app.state.token_keys
        if keys is None:
            jwks_http = httpx.AsyncClient(
                timeout=settings.auth_timeout_seconds, transport=transport
            )
            stack.push_async_callback(jwks_http.aclose)
            keys = JwksClient(f"{settings.suite.auth_url}/.well-known/jwks.json", jwks_http)
        session_maker = create_session_maker(engine)
        state = StorageState(
            settings=settings,
            engine=engine,
            session_maker=session_maker,
            store=store,
            grant_key=grant_key,
            identity=IdentityClient(identity_client),
            verifier=TokenVerifier(
                issuer=settings.suite.jwt_issuer,
                keys=keys,
                liveness=LocalKeySessions(session_maker),
                liveness_ttl=settings.suite.session_check_seconds,
            ),
            codes=CodesClient(codes_client),
        )
        app.state.storage = state
        app.state.engine = engine
        app.state.session_maker = state.session_maker
        loops = [
            asyncio.create_task(_maintenance_loop(state)),
            asyncio.create_task(_key_session_sweep_loop(state)),
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
    state: StorageState = app.state.storage
    return {
        "database": lambda: ping_database(state.engine),
        "blobstore": state.store.ping,
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
    settings = settings or Settings()
    app = create_service_app(
        gateway_secret=settings.suite.internal_secret.get_secret_value,
        service="storage",
        title="HDS encrypted storage service",
        description=(
            "Packages, studies, series, instances and documents, encrypte"
            "d at rest under per-package keys; key slots, quota, holdings."
        ),
        lifespan=lifespan,
        readiness=readiness,
        routers=[public.router, internal.router, key_sessions.router],
        limits=HttpLimits.from_settings(settings.suite),
        # Uploads stream to the blob store and are bounded by the quota reservation.
        large_bodies=INGEST_PATHS,
    )
    app.state.settings = settings
    app.state.transport = transport
    app.state.token_keys = token_keys
    return app


def app_from_env() -> FastAPI:
    """Entry point for uvicorn (``--factory``)."""
    settings = Settings()
    configure_logging("storage", level=settings.suite.log_level, json=settings.suite.log_json)
    return create_app(settings)
