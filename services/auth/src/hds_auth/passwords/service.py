"""Passwords: the reset with the recovery code, and the change by the logged-in holder.
Neither replaces the private key: it is rewrapped, so all data stays readable.

Functions only ``flush()``; the request's session commits.
"""

from __future__ import annotations

import asyncio
import uuid

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from hds_auth.account import repository as accounts
from hds_auth.account.key_slots import (
    PASSWORD_SLOT,
    RECOVERY_SLOT,
    open_password_slot,
    recovery_slot,
    set_credentials,
    set_password_slot,
)
from hds_auth.account.service import normalise_email
from hds_auth.clients.storage import end_key_sessions
from hds_auth.errors import InvalidPassword, InvalidRecoveryCode
from hds_auth.models import Account
from hds_auth.passwords.policy import check_password_policy
from hds_auth.passwords.schemas import PasswordResetRequest
from hds_auth.runtime import Runtime
from hds_auth.sessions import repository as sessions
from hds_auth.throttle import Limit, account_key, client_key
from hds_auth.userkeys import (
    WrongSecret,
    generate_recovery_code,
    normalise_recovery_code,
    unwrap_slot,
    wrap_slot,
)
from hds_common.crypto import derive_kek, generate_salt
from hds_common.db import utcnow

log = structlog.get_logger("hds.auth")


async def reset_password(
    session: AsyncSession,
    runtime: Runtime,
    request: PasswordResetRequest,
    *,
    client: str | None,
) -> str:
    """Set a new password with the recovery code. Returns the new recovery code (the old
    one is void). Every session of the account is ended."""
    settings = runtime.settings
    email = normalise_email(request.email)
    new_password = request.new_password
    check_password_policy(new_password, min_length=settings.password_min_length, email=email)
    now = utcnow()
    limits = [
        Limit(account_key("reset", email), settings.reset_failures_per_account),
        Limit(client_key("reset", client), settings.reset_failures_per_client),
    ]
    await runtime.throttle.check(session, limits, now=now)
    # Locked (PostgreSQL) so that two resets with the same code cannot both succeed.
    account = await accounts.get_account_by_email(session, email, for_update=True)
    code = normalise_recovery_code(request.recovery_code)
    private_key: bytes | None = None
    if account is None:
        # Same work as a wrong code for a real account.
        await _dummy_kek(runtime, code)
    else:
        try:
            private_key = await unwrap_slot(
                recovery_slot(account), code, purpose=RECOVERY_SLOT, account_id=account.id
            )
        except WrongSecret:
            private_key = None
    if account is None or private_key is None:
        await runtime.throttle.record([limit.key for limit in limits], now=now)
        log.info("password_reset_failed")
        raise InvalidRecoveryCode()

    new_code = generate_recovery_code()
    await set_credentials(
        account,
        private_key,
        password=new_password,
        recovery_code=new_code,
        hashing=runtime.hashing,
    )
    account.updated_at = now
    await sessions.revoke_account_sessions(session, account.id, now)
    await end_key_sessions(runtime.key_sessions, account.id)
    await runtime.throttle.clear(
        session, [account_key("reset", email), account_key("login", email)]
    )
    await session.flush()
    log.info("password_reset", account_id=str(account.id))
    return new_code


async def _dummy_kek(runtime: Runtime, secret: str) -> None:
    await asyncio.to_thread(
        derive_kek, (secret or "-").encode(), generate_salt(), runtime.settings.argon2
    )


async def change_password(
    session: AsyncSession,
    runtime: Runtime,
    account: Account,
    *,
    current_password: str,
    new_password: str,
    session_id: str | None,
) -> None:
    """Rewrap the private key under the new password; other sessions end, this one stays."""
    settings = runtime.settings
    check_password_policy(
        new_password, min_length=settings.password_min_length, email=account.email
    )
    now = utcnow()
    # A stolen access token must not become a password oracle beyond the login budget.
    limit = Limit(account_key("login", account.email), settings.login_failures_per_account)
    await runtime.throttle.check(session, [limit], now=now)
    locked = await accounts.get_account_for_update(session, account.id)
    assert locked is not None
    if not await runtime.hashing.verify(locked.password_hash, current_password):
        await runtime.throttle.record([limit.key], now=now)
        raise InvalidPassword("The current password is wrong.")
    private_key = await open_password_slot(locked, current_password)
    set_password_slot(
        locked,
        await wrap_slot(
            private_key,
            new_password,
            purpose=PASSWORD_SLOT,
            account_id=locked.id,
            params=settings.argon2,
        ),
    )
    locked.password_hash = await runtime.hashing.hash(new_password)
    locked.updated_at = now
    keep = _uuid_or_none(session_id)
    await sessions.revoke_account_sessions(session, locked.id, now, keep_family=keep)
    await end_key_sessions(runtime.key_sessions, locked.id, keep_family=keep)
    await session.flush()
    log.info("password_changed", account_id=str(locked.id))


def _uuid_or_none(text: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(text) if text else None
    except ValueError:
        return None
