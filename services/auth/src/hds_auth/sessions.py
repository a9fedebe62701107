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

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from hds_auth import repository
from hds_auth.deps import Runtime
from hds_auth.models import Account, RefreshToken
from hds_auth.opaque_tokens import (
    hash_secret,
    new_secret_token,
    parse_secret_token,
    secret_matches,
)
from hds_auth.schemas import TokenPair
from hds_auth.service import (
    PASSWORD_SLOT,
    end_key_sessions,
    normalise_email,
    password_slot,
    utcnow,
)
from hds_auth.throttle import Limit, account_key, client_key
from hds_auth.userkeys import WrongSecret, unwrap_refresh_slot, unwrap_slot, wrap_refresh_slot
from hds_common.errors import Forbidden, ServiceUnavailable, Unauthorized

log = structlog.get_logger("hds.auth")


def _invalid_credentials() -> Unauthorized:
    # One answer for an unknown address and a wrong password.
    return Unauthorized(
        "The e-mail address or the password is wrong, or the account has not been "
        "activated yet (see the activation mail, or ask for a new one).",
        slug="invalid-credentials",
        title="Invalid credentials",
    )


def _invalid_refresh(detail: str = "The refresh token is not valid.") -> Unauthorized:
    return Unauthorized(detail, slug="invalid-refresh-token", title="Invalid refresh token")


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
    account = await repository.get_account_by_email(session, email)
    # For an unknown address this verifies against a dummy hash: the same work, the same
    # answer as a wrong password.
    verified = await runtime.hashing.verify(account.password_hash if account else None, password)
    # An account never activated answers like a wrong password: whoever registers an
    # address chooses the password, and a distinct answer would tell them whether their
    # registration made a new account or met an existing one.
    if account is None or not verified or account.activated_at is None:
        await runtime.throttle.record([limit.key for limit in limits], now=now)
        raise _invalid_credentials()
    if account.disabled:
        raise Forbidden("This account has been disabled.", slug="account-disabled")
    try:
        private_key = await unwrap_slot(
            password_slot(account), password, purpose=PASSWORD_SLOT, account_id=account.id
        )
    except WrongSecret:
        raise RuntimeError("password hash and password key slot disagree") from None
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
    parsed = parse_secret_token(refresh_token)
    row = await repository.get_refresh_token(session, parsed[0]) if parsed else None
    if parsed is None or row is None or not secret_matches(row.secret_hash, parsed[1]):
        raise _invalid_refresh()
    if row.revoked_at is not None:
        raise _invalid_refresh("This session has ended; log in again.")
    family_id, account_id = row.family_id, row.account_id
    if row.used_at is not None:
        await _end_family(session, runtime, account_id, family_id, now)
        log.warning("refresh_token_reused", account_id=str(account_id), family=str(family_id))
        raise _invalid_refresh("This refresh token was used before; the session has ended.")
    if row.expires_at <= now:
        raise _invalid_refresh("This session has expired; log in again.")
    account = await repository.get_account(session, account_id)
    if account is None or account.disabled or account.activated_at is None:
        await _end_family(session, runtime, account_id, family_id, now)
        raise _invalid_refresh("This account cannot log in.")
    if not await repository.claim_refresh_token(session, row.id, now):
        # A concurrent request exchanged the same token first: a copy is in use.
        await _end_family(session, runtime, account_id, family_id, now)
        log.warning("refresh_token_reused", account_id=str(account_id), family=str(family_id))
        raise _invalid_refresh("This refresh token was used before; the session has ended.")
    try:
        private_key = unwrap_refresh_slot(row.wrapped_user_key, parsed[1], row.id)
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
    parsed = parse_secret_token(refresh_token)
    row = await repository.get_refresh_token(session, parsed[0]) if parsed else None
    if parsed is None or row is None or not secret_matches(row.secret_hash, parsed[1]):
        return
    await repository.revoke_family(session, row.family_id, utcnow())
    # Storage first fails the request (and rolls the revocation back) rather than
    # answer "logged out" while the access token still opens the key.
    await end_key_sessions(runtime, row.account_id, family_id=row.family_id)
    log.info("logout", account_id=str(row.account_id))
