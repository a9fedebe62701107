"""SQL of validation: the code key slot by its lookup hash, and the lockout counters.

The lockout statements are single conditional UPDATEs / upserts, so concurrent attempts
on one code or from one client are counted exactly on PostgreSQL and SQLite alike,
without ``SELECT … FOR UPDATE``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import case, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from hds_codes.models import AccessCode, ClientThrottle, slot_columns
from hds_common.crypto import Argon2Params


async def get_by_id(session: AsyncSession, code_id: str) -> AccessCode | None:
    return await session.get(AccessCode, code_id)


async def get_by_lookup_hash(session: AsyncSession, lookup_hash: str) -> AccessCode | None:
    return await session.scalar(select(AccessCode).where(AccessCode.lookup_hash == lookup_hash))


async def reserve_attempt(
    session: AsyncSession, code_id: str, *, max_failures: int, now: dt.datetime
) -> bool:
    """Count an attempt as failed before its answer is checked (a success refunds it), if
    the code is not locked and has fewer than ``max_failures`` failures, in flight ones
    included. False means: do not evaluate this attempt."""
    reserved = await session.scalar(
        update(AccessCode)
        .where(
            AccessCode.id == code_id,
            AccessCode.failed_attempts < max_failures,
            or_(AccessCode.locked_until.is_(None), AccessCode.locked_until <= now),
        )
        .values(failed_attempts=AccessCode.failed_attempts + 1)
        .returning(AccessCode.id)
        .execution_options(synchronize_session=False)
    )
    return reserved is not None


async def lock_if_exhausted(
    session: AsyncSession,
    code_id: str,
    *,
    max_failures: int,
    seen_lock_count: int,
    locked_until: dt.datetime,
) -> bool:
    """Lock the code when its failures reached ``max_failures``. The ``lock_count`` guard
    makes exactly one of several concurrent failed attempts apply the lock."""
    locked = await session.scalar(
        update(AccessCode)
        .where(
            AccessCode.id == code_id,
            AccessCode.failed_attempts >= max_failures,
            AccessCode.lock_count == seen_lock_count,
        )
        .values(
            failed_attempts=0,
            lock_count=seen_lock_count + 1,
            locked_until=locked_until,
        )
        .returning(AccessCode.id)
        .execution_options(synchronize_session=False)
    )
    return locked is not None


async def record_right_answer(session: AsyncSession, code_id: str, *, now: dt.datetime) -> None:
    await session.execute(
        update(AccessCode)
        .where(AccessCode.id == code_id)
        .values(failed_attempts=0, lock_count=0, locked_until=None, last_validated_at=now)
        .execution_options(synchronize_session=False)
    )


async def replace_slot(
    session: AsyncSession,
    code_id: str,
    *,
    seen_salt: bytes,
    salt: bytes,
    params: Argon2Params,
    wrapped_key: bytes,
) -> bool:
    """Replace the code key slot, if it is still the one made with ``seen_salt``."""
    replaced = await session.scalar(
        update(AccessCode)
        .where(AccessCode.id == code_id, AccessCode.kdf_salt == seen_salt)
        .values(**slot_columns(salt, params, wrapped_key))
        .returning(AccessCode.id)
        .execution_options(synchronize_session=False)
    )
    return replaced is not None


def _insert_for(session: AsyncSession) -> Any:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert
    if dialect == "sqlite":
        return sqlite.insert
    raise RuntimeError(f"unsupported database dialect {dialect}")


async def count_client_attempt(
    session: AsyncSession, client_hash: str, *, now: dt.datetime, window_start: dt.datetime
) -> int:
    """Count an attempt of a client (refunded on success); returns the client's count in
    the current window, this attempt included. Windows older than ``window_start`` restart."""
    insert = _insert_for(session)
    statement = insert(ClientThrottle).values(
        client_hash=client_hash, window_started_at=now, failures=1
    )
    stale = ClientThrottle.window_started_at <= window_start
    statement = statement.on_conflict_do_update(
        index_elements=[ClientThrottle.client_hash],
        set_={
            "failures": case((stale, 1), else_=ClientThrottle.failures + 1),
            "window_started_at": case((stale, now), else_=ClientThrottle.window_started_at),
        },
    ).returning(ClientThrottle.failures)
    failures = await session.scalar(statement)
    return int(failures or 0)


async def refund_client_attempt(session: AsyncSession, client_hash: str) -> None:
    await session.execute(
        update(ClientThrottle)
        .where(ClientThrottle.client_hash == client_hash, ClientThrottle.failures > 0)
        .values(failures=ClientThrottle.failures - 1)
        .execution_options(synchronize_session=False)
    )


async def prune_client_throttles(session: AsyncSession, *, window_start: dt.datetime) -> None:
    await session.execute(
        delete(ClientThrottle)
        .where(ClientThrottle.window_started_at <= window_start)
        .execution_options(synchronize_session=False)
    )
