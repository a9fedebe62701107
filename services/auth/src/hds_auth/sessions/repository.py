"""The SQL of refresh tokens (the login sessions)."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncSession

from hds_auth.models import RefreshToken


async def get_refresh_token(session: AsyncSession, token_id: uuid.UUID) -> RefreshToken | None:
    return await session.get(RefreshToken, token_id)


async def claim_refresh_token(session: AsyncSession, token_id: uuid.UUID, now: dt.datetime) -> bool:
    """Mark an unused, unrevoked token used; False when it was used or revoked already
    (by this or a concurrent request)."""
    result = await session.execute(
        update(RefreshToken)
        .where(
            RefreshToken.id == token_id,
            RefreshToken.used_at.is_(None),
            RefreshToken.revoked_at.is_(None),
        )
        # A used token opens nothing any more: its successor holds the key now.
        .values(used_at=now, wrapped_user_key=b"")
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


async def revoke_family(session: AsyncSession, family_id: uuid.UUID, now: dt.datetime) -> None:
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now, wrapped_user_key=b"")
        .execution_options(synchronize_session=False)
    )


async def revoke_account_sessions(
    session: AsyncSession,
    account_id: uuid.UUID,
    now: dt.datetime,
    *,
    keep_family: uuid.UUID | None = None,
) -> None:
    statement = update(RefreshToken).where(
        RefreshToken.account_id == account_id, RefreshToken.revoked_at.is_(None)
    )
    if keep_family is not None:
        statement = statement.where(RefreshToken.family_id != keep_family)
    await session.execute(
        statement.values(revoked_at=now, wrapped_user_key=b"").execution_options(
            synchronize_session=False
        )
    )


async def delete_expired_refresh_tokens(
    session: AsyncSession, account_id: uuid.UUID, now: dt.datetime
) -> None:
    await session.execute(
        delete(RefreshToken).where(
            RefreshToken.account_id == account_id, RefreshToken.expires_at < now
        )
    )
