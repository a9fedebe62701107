"""The typed state of the identity service: what the lifespan (and the command line)
builds once and the routes share, on ``app.state.runtime``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from hds_auth.clients.storage import KeySessions
from hds_auth.config import Settings
from hds_auth.mail import Mailer, mailer_from
from hds_auth.passwords.hashing import PasswordHashing
from hds_auth.signing.issuer import TokenIssuer
from hds_auth.signing.keyring import Keyring, keyring_from
from hds_auth.throttle import Throttle
from hds_common.db import create_engine, create_session_maker
from hds_common.http import internal_client
from hds_common.tokens import StorageSessions, TokenVerifier

__all__ = ["Runtime", "grant_public_key", "open_runtime"]

log = structlog.get_logger("hds.auth")


@dataclass
class Runtime:
    """Everything the lifespan builds once and the routes share."""

    settings: Settings
    engine: AsyncEngine
    session_maker: async_sessionmaker[AsyncSession]
    hashing: PasswordHashing
    mailer: Mailer
    keyring: Keyring
    issuer: TokenIssuer
    verifier: TokenVerifier
    throttle: Throttle
    storage: httpx.AsyncClient
    # The storage service's key sessions; None without HDS_GRANT_PUBLIC_KEY (then tokens
    # carry no grant and unlock nothing).
    key_sessions: KeySessions | None


def grant_public_key(settings: Settings) -> bytes | None:
    """The storage service's X25519 public key (parsed once, by the suite settings):
    required in production; elsewhere its absence is logged, because tokens then carry
    no grant."""
    raw = settings.suite.grant_public_key_bytes
    if raw is None and settings.suite.environment == "production":
        raise ValueError("HDS_GRANT_PUBLIC_KEY must be set in production")
    if raw is None:
        log.warning(
            "grant_public_key_missing",
            detail="HDS_GRANT_PUBLIC_KEY is not set; "
            "account tokens will carry no grant and storage cannot decrypt for them",
        )
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
