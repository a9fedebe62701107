"""The SQL of activation links."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncSession

from hds_auth.models import ActivationToken


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
