"""Application factory of the identity service."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import httpx
import structlog
from fastapi import FastAPI

from hds_auth.api import build_routers
from hds_auth.config import Settings
from hds_auth.db import migrate
from hds_auth.deps import Runtime
from hds_auth.issuer import TokenIssuer
from hds_auth.key_sessions import KeySessions
from hds_auth.mail import mailer_from
from hds_auth.passwords import PasswordHashing
from hds_auth.signing import keyring_from
from hds_auth.throttle import Throttle
from hds_common.app import create_service_app
from hds_common.crypto import b64d, public_key_from_bytes
from hds_common.db import create_engine, create_session_maker, ping_database
from hds_common.http import internal_client
from hds_common.logs import configure_logging
from hds_common.observability import ReadinessCheck
from hds_common.serving import HttpLimits
from hds_common.tokens import StorageSessions, TokenVerifier

log = structlog.get_logger("hds.auth")


def grant_public_key(settings: Settings) -> bytes | None:
    """The storage service's X25519 public key, checked once at start-up."""
    text = settings.suite.grant_public_key.strip()
    if not text and settings.suite.environment == "production":
        raise ValueError("HDS_GRANT_PUBLIC_KEY must be set in production")
    if not text:
        log.warning(
            "grant_public_key_missing",
            detail="HDS_GRANT_PUBLIC_KEY is not set; "
            "account tokens will carry no grant and storage cannot decrypt for them",
        )
        return None
    try:
        raw = b64d(text)
        public_key_from_bytes(raw)
    except ValueError as exc:
        raise ValueError("HDS_GRANT_PUBLIC_KEY is not a base64url X25519 public key") from exc
    return raw


@asynccontextmanager
async def open_runtime(
    settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
) -> AsyncIterator[Runtime]:
    """Build every long-lived client and key of the service (the lifespan and the CLI)."""
    keyring = keyring_from(settings)
    await asyncio.to_thread(keyring.ensure_key)
    storage_key = grant_public_key(settings)
    engine = create_engine(settings.database_url)
    session_maker = create_session_maker(engine)
    hashing = await asyncio.to_thread(PasswordHashing, settings.argon2)
    storage = internal_client(
        settings.suite.storage_url,
        service="auth",
        secret=settings.suite.internal_secret.get_secret_value(),
        timeout=settings.storage_timeout_seconds,
        transport=transport,
    )
    try:
        yield Runtime(
            settings=settings,
            engine=engine,
            session_maker=session_maker,
            hashing=hashing,
            mailer=mailer_from(settings),
            keyring=keyring,
            issuer=TokenIssuer(
                keyring,
                issuer=settings.suite.jwt_issuer,
                access_ttl=settings.access_token_ttl_seconds,
            ),
            # This service's own tokens are checked against its own key set directly;
            # whether their session is still live, the storage service answers.
            verifier=TokenVerifier(
                issuer=settings.suite.jwt_issuer,
                keys=keyring,
                liveness=StorageSessions(storage),
                liveness_ttl=settings.suite.session_check_seconds,
            ),
            throttle=Throttle(session_maker, window_seconds=settings.throttle_window_seconds),
            storage=storage,
            key_sessions=KeySessions(storage, storage_key) if storage_key is not None else None,
        )
    finally:
        await storage.aclose()
        await engine.dispose()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    if settings.migrate_on_start:
        await migrate(settings.database_url)
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
    settings = settings or Settings()
    app = create_service_app(
        gateway_secret=settings.suite.internal_secret.get_secret_value,
        service="auth",
        title="HDS identity service",
        description=(
            "Accounts, activation, login, recovery codes, user key pairs, settings, and the "
            "only JWT issuer of the suite (JWKS at /.well-known/jwks.json)."
        ),
        lifespan=lifespan,
        readiness=readiness,
        routers=build_routers(settings),
        limits=HttpLimits.from_settings(settings.suite),
    )
    app.state.settings = settings
    app.state.transport = transport
    return app


def app_from_env() -> FastAPI:
    """Entry point for uvicorn (``--factory``)."""
    settings = Settings()
    configure_logging("auth", level=settings.suite.log_level, json=settings.suite.log_json)
    return create_app(settings)
