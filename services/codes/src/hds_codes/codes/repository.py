"""SQL of the code rows as institutions see them: search, look-up, the package's validity."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hds_codes.models import AccessCode, CodeState


@dataclass(frozen=True)
class CodeFilter:
    institution_id: str
    package_id: str | None = None
    state: CodeState | None = None
    created_from: dt.datetime | None = None
    created_to: dt.datetime | None = None
    lookup_hash: str | None = None


def _state_condition(state: CodeState, now: dt.datetime) -> ColumnElement[bool]:
    not_revoked = AccessCode.revoked_at.is_(None)
    unexpired = AccessCode.expires_at > now
    locked = and_(AccessCode.locked_until.is_not(None), AccessCode.locked_until > now)
    if state == "revoked":
        return AccessCode.revoked_at.is_not(None)
    if state == "expired":
        return and_(not_revoked, AccessCode.expires_at <= now)
    if state == "locked":
        return and_(not_revoked, unexpired, locked)
    return and_(not_revoked, unexpired, ~locked)


async def search(
    session: AsyncSession, criteria: CodeFilter, *, now: dt.datetime, limit: int, offset: int
) -> tuple[Sequence[AccessCode], int]:
    conditions: list[ColumnElement[bool]] = [AccessCode.institution_id == criteria.institution_id]
    if criteria.package_id is not None:
        conditions.append(AccessCode.package_id == criteria.package_id)
    if criteria.state is not None:
        conditions.append(_state_condition(criteria.state, now))
    if criteria.created_from is not None:
        conditions.append(AccessCode.created_at >= criteria.created_from)
    if criteria.created_to is not None:
        conditions.append(AccessCode.created_at < criteria.created_to)
    if criteria.lookup_hash is not None:
        conditions.append(AccessCode.lookup_hash == criteria.lookup_hash)
    where = and_(*conditions)
    total = await session.scalar(select(func.count()).select_from(AccessCode).where(where))
    rows = await session.scalars(
        select(AccessCode)
        .where(where)
        .order_by(AccessCode.created_at.desc(), AccessCode.id)
        .limit(limit)
        .offset(offset)
    )
    return rows.all(), int(total or 0)


async def get_for_institution(
    session: AsyncSession, code_id: str, institution_id: str
) -> AccessCode | None:
    return await session.scalar(
        select(AccessCode).where(
            AccessCode.id == code_id, AccessCode.institution_id == institution_id
        )
    )


async def lookup_hash_exists(session: AsyncSession, lookup_hash: str) -> bool:
    found = await session.scalar(select(AccessCode.id).where(AccessCode.lookup_hash == lookup_hash))
    return found is not None


async def package_codes_end(session: AsyncSession, package_id: str) -> dt.datetime | None:
    """When the last code of the package stops (or stopped) being valid: the latest
    expiry, a revoked code counting until its revocation; None without any code."""
    end = case(
        (AccessCode.revoked_at.is_not(None), AccessCode.revoked_at),
        else_=AccessCode.expires_at,
    )
    result = await session.scalar(
        select(func.max(end, type_=AccessCode.expires_at.type)).where(
            AccessCode.package_id == package_id
        )
    )
    if not isinstance(result, dt.datetime):
        return None
    return result if result.tzinfo else result.replace(tzinfo=dt.UTC)


def add(session: AsyncSession, code: AccessCode) -> None:
    session.add(code)
