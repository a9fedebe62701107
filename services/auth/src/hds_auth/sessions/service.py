"""Login sessions: login, refresh-token rotation, logout.

A session is a family of refresh tokens. Each refresh consumes its token and issues the
next; presenting a consumed token again means it was copied, so the whole family is
revoked. Each unused refresh-token row keeps the user's private key wrapped under a key
derived from that token's secret, which lets a refresh issue a new grant without the
password; the wrapped key is erased when the token is used or its family revoked.

Every access token has a key session at the storage service (tagged with its family),
which holds the private key until the token expires. Ending a family ends its key
sessions: the access tokens stop working everywhere and their grants open nothing.
"""

from __future__ import annotations

import datetime as dt
import uuid
from functools import partial

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from hds_auth.account import repository as accounts
from hds_auth.account.key_slots import open_password_slot
from hds_auth.account.service import normalise_email
from hds_auth.clients.storage import end_key_sessions
from hds_auth.errors import AccountDisabled, InvalidCredentials, InvalidRefreshToken
from hds_auth.models import Account, RefreshToken
from hds_auth.opaque_tokens import hash_secret, new_secret_token, row_of_token
from hds_auth.runtime import Runtime
from hds_auth.sessions import repository
from hds_auth.sessions.schemas import TokenPair
from hds_auth.throttle import Limit, account_key, client_key
from hds_auth.userkeys import WrongSecret, unwrap_refresh_slot, wrap_refresh_slot
from hds_common.db import utcnow
from hds_common.errors import ServiceUnavailable

log = structlog.get_logger("hds.auth")


async def login(
    session: AsyncSession,
    runtime: Runtime,
    *,
    email: str,
    password: str,
    client: str | None,
) -> TokenPair:
    settings = runtime.settings
    now = utcnow()
    email = normalise_email(email)
    limits = [
        Limit(account_key("login", email), settings.login_failures_per_account),
        Limit(client_key("login", client), settings.login_failures_per_client),
    ]
    await runtime.throttle.check(session, limits, now=now)
    account = await accounts.get_account_by_email(session, email)
    # For an unknown address this verifies against a dummy hash: the same work, the same
    # answer as a wrong password.
    verified = await runtime.hashing.verify(account.password_hash if account else None, password)
    # An account never activated answers like a wrong password: whoever registers an
    # address chooses the password, and a distinct answer would tell them whether their
    # registration made a new account or met an existing one.
    if account is None or not verified or account.activated_at is None:
        await runtime.throttle.record([limit.key for limit in limits], now=now)
        raise InvalidCredentials()
    if account.disabled:
        raise AccountDisabled("This account has been disabled.")
    private_key = await open_password_slot(account, password)
    await runtime.throttle.clear(session, [limits[0].key])
    if runtime.hashing.needs_rehash(account.password_hash):
        account.password_hash = await runtime.hashing.hash(password)
    await repository.delete_expired_refresh_tokens(session, account.id, now)
    tokens = await _issue(session, runtime, account, private_key, uuid.uuid4(), now)
    log.info("login", account_id=str(account.id))
    return tokens


async def _issue(
    session: AsyncSession,
    runtime: Runtime,
    account: Account,
    private_key: bytes,
    family_id: uuid.UUID,
    now: dt.datetime,
) -> TokenPair:
    """A new refresh token in ``family_id`` and an access token carrying the grant."""
    ttl = runtime.settings.refresh_token_ttl_seconds
    token_id = uuid.uuid4()
    refresh_token, secret = new_secret_token(token_id)
    session.add(
        RefreshToken(
            id=token_id,
            family_id=family_id,
            account_id=account.id,
            secret_hash=hash_secret(secret),
            wrapped_user_key=wrap_refresh_slot(private_key, secret, token_id),
            created_at=now,
            expires_at=now + dt.timedelta(seconds=ttl),
        )
    )
    await session.flush()
    issued_at = int(now.timestamp())
    grant: str | None = None
    key_session_id: str | None = None
    if runtime.key_sessions is not None:
        started = await runtime.key_sessions.start(
            account_id=account.id,
            family_id=family_id,
            private_key=private_key,
            expires_at=issued_at + runtime.issuer.access_ttl,
        )
        grant, key_session_id = started.grant, started.session_id
    access = runtime.issuer.access_token(
        account_id=account.id,
        role=account.role,
        session_id=family_id,
        grant=grant,
        key_session_id=key_session_id,
        now=issued_at,
    )
    return TokenPair(
        access_token=access.token,
        expires_in=access.expires_in,
        refresh_token=refresh_token,
        refresh_expires_in=ttl,
    )


async def refresh(session: AsyncSession, runtime: Runtime, *, refresh_token: str) -> TokenPair:
    now = utcnow()
    found = await row_of_token(refresh_token, partial(repository.get_refresh_token, session))
    if found is None:
        raise InvalidRefreshToken()
    row, secret = found
    if row.revoked_at is not None:
        raise InvalidRefreshToken("This session has ended; log in again.")
    family_id, account_id = row.family_id, row.account_id
    if row.used_at is not None:
        await _end_family(session, runtime, account_id, family_id, now)
        log.warning("refresh_token_reused", account_id=str(account_id), family=str(family_id))
        raise InvalidRefreshToken("This refresh token was used before; the session has ended.")
    if row.expires_at <= now:
        raise InvalidRefreshToken("This session has expired; log in again.")
    account = await accounts.get_account(session, account_id)
    if account is None or account.disabled or account.activated_at is None:
        await _end_family(session, runtime, account_id, family_id, now)
        raise InvalidRefreshToken("This account cannot log in.")
    if not await repository.claim_refresh_token(session, row.id, now):
        # A concurrent request exchanged the same token first: a copy is in use.
        await _end_family(session, runtime, account_id, family_id, now)
        log.warning("refresh_token_reused", account_id=str(account_id), family=str(family_id))
        raise InvalidRefreshToken("This refresh token was used before; the session has ended.")
    try:
        private_key = unwrap_refresh_slot(row.wrapped_user_key, secret, row.id)
    except WrongSecret:
        raise RuntimeError("refresh token row does not open with its own secret") from None
    return await _issue(session, runtime, account, private_key, row.family_id, now)


async def _end_family(
    session: AsyncSession,
    runtime: Runtime,
    account_id: uuid.UUID,
    family_id: uuid.UUID,
    now: dt.datetime,
) -> None:
    """Revoke a family in a transaction of its own: the failing request is rolled back.
    The request's transaction is ended first so it holds no lock the revocation needs.
    Its key sessions end too; if storage cannot be reached they expire with their tokens
    (the family, revoked here, issues no new one)."""
    await session.rollback()
    async with runtime.session_maker() as own, own.begin():
        await repository.revoke_family(own, family_id, now)
    if runtime.key_sessions is not None:
        try:
            await runtime.key_sessions.end(account_id, family_id=family_id)
        except ServiceUnavailable:
            log.warning("key_sessions_not_ended", account_id=str(account_id))


async def logout(session: AsyncSession, runtime: Runtime, *, refresh_token: str) -> None:
    """End the session the refresh token belongs to (every token of its family, and the
    key sessions of its access tokens). Unknown tokens are ignored: logging out twice is
    not an error."""
    found = await row_of_token(refresh_token, partial(repository.get_refresh_token, session))
    if found is None:
        return
    row = found[0]
    await repository.revoke_family(session, row.family_id, utcnow())
    # Storage first fails the request (and rolls the revocation back) rather than
    # answer "logged out" while the access token still opens the key.
    await end_key_sessions(runtime.key_sessions, row.account_id, family_id=row.family_id)
    log.info("logout", account_id=str(row.account_id))
