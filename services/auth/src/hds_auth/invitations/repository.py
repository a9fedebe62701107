"""The SQL of invitations."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hds_auth.models import Invitation


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
