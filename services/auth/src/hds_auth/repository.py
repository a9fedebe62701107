"""All SQL of the identity service."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from sqlalchemy import case, delete, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from hds_auth.models import Account, ActivationToken, Invitation, RefreshToken, ThrottleCounter
from hds_common.db import UtcDateTime

# -- accounts ------------------------------------------------------------------------


async def get_account(session: AsyncSession, account_id: uuid.UUID) -> Account | None:
    return await session.get(Account, account_id)


async def get_account_by_email(
    session: AsyncSession, email: str, *, for_update: bool = False
) -> Account | None:
    statement = select(Account).where(Account.email == email)
    if for_update:
        statement = statement.with_for_update().execution_options(populate_existing=True)
    result = await session.execute(statement)
    return result.scalar_one_or_none()


async def get_account_for_update(session: AsyncSession, account_id: uuid.UUID) -> Account | None:
    """The account row, locked until the transaction ends (PostgreSQL), so two password
    changes cannot interleave their slot writes."""
    result = await session.execute(
        select(Account)
        .where(Account.id == account_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return result.scalar_one_or_none()


async def email_exists(session: AsyncSession, email: str) -> bool:
    result = await session.execute(select(Account.id).where(Account.email == email))
    return result.first() is not None


async def first_account_with_role(session: AsyncSession, role: str) -> Account | None:
    result = await session.execute(
        select(Account).where(Account.role == role).order_by(Account.created_at).limit(1)
    )
    return result.scalar_one_or_none()


# -- activation tokens ---------------------------------------------------------------


async def get_activation_token(
    session: AsyncSession, token_id: uuid.UUID
) -> ActivationToken | None:
    return await session.get(ActivationToken, token_id)


async def delete_unused_activation_tokens(session: AsyncSession, account_id: uuid.UUID) -> None:
    await session.execute(
        delete(ActivationToken).where(
            ActivationToken.account_id == account_id, ActivationToken.used_at.is_(None)
        )
    )


async def claim_activation_token(
    session: AsyncSession, token_id: uuid.UUID, now: dt.datetime
) -> bool:
    """Mark the token used; False when another request used it first."""
    result = await session.execute(
        update(ActivationToken)
        .where(ActivationToken.id == token_id, ActivationToken.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


# -- invitations ---------------------------------------------------------------------


async def get_invitation(session: AsyncSession, invitation_id: uuid.UUID) -> Invitation | None:
    return await session.get(Invitation, invitation_id)


async def open_invitations_for(
    session: AsyncSession, email: str, now: dt.datetime
) -> list[Invitation]:
    """Invitations of ``email`` neither accepted, revoked nor expired."""
    result = await session.execute(
        select(Invitation).where(
            Invitation.email == email,
            Invitation.accepted_at.is_(None),
            Invitation.revoked_at.is_(None),
            Invitation.expires_at > now,
        )
    )
    return list(result.scalars())


async def list_invitations(session: AsyncSession) -> list[Invitation]:
    result = await session.execute(
        select(Invitation).order_by(Invitation.created_at.desc(), Invitation.id)
    )
    return list(result.scalars())


async def claim_invitation(
    session: AsyncSession, invitation_id: uuid.UUID, now: dt.datetime
) -> bool:
    """Mark a pending invitation accepted; False when it was accepted, revoked or expired
    meanwhile (by this or a concurrent request)."""
    result = await session.execute(
        update(Invitation)
        .where(
            Invitation.id == invitation_id,
            Invitation.accepted_at.is_(None),
            Invitation.revoked_at.is_(None),
            Invitation.expires_at > now,
        )
        .values(accepted_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


# -- refresh tokens ------------------------------------------------------------------


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


# -- throttle counters ---------------------------------------------------------------


async def get_counters(session: AsyncSession, keys: Sequence[str]) -> list[ThrottleCounter]:
    result = await session.execute(select(ThrottleCounter).where(ThrottleCounter.key.in_(keys)))
    return list(result.scalars())


async def bump_counter(
    session: AsyncSession, key: str, *, now: dt.datetime, window_start_cutoff: dt.datetime
) -> None:
    """Count one event in ``key``'s window, starting a new window if the old one began at
    or before ``window_start_cutoff``. One statement, so replicas never lose a count."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    expired = ThrottleCounter.window_started_at <= window_start_cutoff
    statement = (
        insert(ThrottleCounter)
        .values(key=key, window_started_at=now, count=1)
        .on_conflict_do_update(
            index_elements=[ThrottleCounter.key],
            set_={
                "count": case((expired, 1), else_=ThrottleCounter.count + 1),
                "window_started_at": case(
                    (expired, literal(now, UtcDateTime())),
                    else_=ThrottleCounter.window_started_at,
                ),
            },
        )
    )
    await session.execute(statement)


async def delete_counters(session: AsyncSession, keys: Sequence[str]) -> None:
    await session.execute(delete(ThrottleCounter).where(ThrottleCounter.key.in_(keys)))
