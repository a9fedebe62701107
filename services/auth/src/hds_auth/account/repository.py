"""The SQL of accounts, which every feature reads."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hds_auth.models import Account


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
