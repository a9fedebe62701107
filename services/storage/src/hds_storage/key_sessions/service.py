"""Rules of the key sessions: start, open, end, liveness.

* A session is started by the service that just unlocked a key (identity at login and
  refresh, codes after a code validation); the key arrives sealed to this service and is
  stored only wrapped under a fresh random secret. The secret leaves this service once,
  inside the grant (sealed to this service's key) that the caller puts into its token.
* Opening a grant needs the row: once a session is ended or expired the grant opens
  nothing, whatever else is known (the grant key included).
* Nothing here logs a key, a secret or a grant.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from dataclasses import dataclass

import structlog
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hds_common.crypto import (
    SESSION_SECRET_SIZE,
    Grant,
    GrantError,
    GrantKind,
    IntegrityError,
    open_grant,
    open_session_key,
    seal_grant,
    unwrap_session_key,
    wrap_session_key,
)
from hds_common.db import utcnow
from hds_storage.errors import (
    GrantInvalid,
    GrantMismatch,
    GrantRequired,
    KeySessionNotFound,
    SealedKeyInvalid,
    SessionAlreadyExpired,
    SessionEnded,
    SessionTooLong,
)
from hds_storage.key_sessions.repository import KeySessionRepository
from hds_storage.models import KeySession
from hds_storage.transactions import workflow_transaction

__all__ = [
    "LocalKeySessions",
    "StartedSession",
    "end_sessions",
    "open_session",
    "require_live",
    "start_session",
]

log = structlog.get_logger("hds.storage.key_sessions")


@dataclass(frozen=True)
class StartedSession:
    session_id: str
    grant: str
    expires_at: int


async def start_session(
    repo: KeySessionRepository,
    grant_key: X25519PrivateKey,
    *,
    kind: GrantKind,
    subject: str,
    tag: str | None,
    sealed_key: str,
    expires_at: int,
    max_seconds: float,
    now: dt.datetime | None = None,
) -> tuple[StartedSession, bytes]:
    """A new key session holding the sealed key; the started session and the key (the
    caller may prove the key against what it opens before committing)."""
    now = now or utcnow()
    remaining = expires_at - now.timestamp()
    if remaining <= 0:
        raise SessionAlreadyExpired("the session would already have expired")
    if remaining > max_seconds:
        raise SessionTooLong(f"a key session lives at most {int(max_seconds)} s")
    try:
        key = open_session_key(grant_key, sealed_key, kind=kind, subject=subject)
    except GrantError:
        raise SealedKeyInvalid("the key is not sealed to this service for this subject") from None
    session_id = secrets.token_hex(16)
    secret = os.urandom(SESSION_SECRET_SIZE)
    await repo.add(
        KeySession(
            id=session_id,
            kind=kind,
            subject=subject,
            tag=tag,
            wrapped_key=wrap_session_key(
                secret, key, session_id=session_id, kind=kind, subject=subject
            ),
            created_at=now,
            expires_at=dt.datetime.fromtimestamp(expires_at, dt.UTC),
        )
    )
    grant = seal_grant(
        grant_key.public_key(),
        Grant(
            kind=kind, subject=subject, session_id=session_id, secret=secret, expires_at=expires_at
        ),
    )
    log.info("key_session_started", kind=kind, session=session_id, tag=tag)
    return StartedSession(session_id=session_id, grant=grant, expires_at=expires_at), key


async def open_session(
    repo: KeySessionRepository,
    grant_key: X25519PrivateKey,
    token: str | None,
    *,
    kind: GrantKind,
    subject: str,
    now: dt.datetime | None = None,
) -> bytes:
    """The key of the live session a grant names, for ``kind``/``subject``.

    401 ``grant-invalid`` when the grant does not open or its session has ended (the
    client must log in or validate its code again); 403 when it is for someone else."""
    if not token:
        raise GrantRequired(
            "this token carries no key grant; log in again to unlock your key",
        )
    try:
        grant = open_grant(grant_key, token)
    except GrantError as exc:
        raise GrantInvalid(f"key grant rejected: {exc}") from None
    if grant.kind != kind or grant.subject != subject:
        raise GrantMismatch("the key grant is not for this account or package")
    row = await repo.get(grant.session_id)
    now = now or utcnow()
    if row is None or row.expires_at <= now or row.kind != kind or row.subject != subject:
        raise SessionEnded(
            "the session of this key grant has ended; log in or validate the code again",
        )
    try:
        return unwrap_session_key(
            grant.secret, row.wrapped_key, session_id=row.id, kind=kind, subject=subject
        )
    except IntegrityError:
        raise GrantInvalid("key grant rejected") from None


async def end_sessions(
    repo: KeySessionRepository,
    *,
    kind: GrantKind,
    subject: str,
    tag: str | None,
    keep_tag: str | None,
) -> int:
    ended = await repo.end(kind=kind, subject=subject, tag=tag, keep_tag=keep_tag)
    log.info("key_sessions_ended", kind=kind, count=ended, tag=tag, keep_tag=keep_tag)
    return ended


async def require_live(repo: KeySessionRepository, session_id: str) -> None:
    if not await repo.is_live(session_id, utcnow()):
        raise KeySessionNotFound("no such live key session")


class LocalKeySessions:
    """Liveness of key sessions for this service's own token checks: its own table."""

    def __init__(self, session_maker: async_sessionmaker[AsyncSession]) -> None:
        self._session_maker = session_maker

    async def is_live(self, session_id: str) -> bool:
        async with workflow_transaction(self._session_maker) as session:
            return await KeySessionRepository(session).is_live(session_id, utcnow())
