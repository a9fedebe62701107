"""Throttling of failed logins and resets, per account and per client address.

Counters live in the database so every replica sees the same counts. A failure is
recorded in its own short transaction, because the request's transaction is rolled back
when the request fails. Keys for accounts are derived from the e-mail address as typed
(not from an account id), so unknown addresses are throttled exactly like known ones and
the answers cannot tell them apart.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import case, delete, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hds_auth.errors import TooManyAttempts
from hds_auth.models import ThrottleCounter
from hds_common.db import UtcDateTime

__all__ = ["Limit", "Throttle", "account_key", "client_key"]


@dataclass(frozen=True)
class Limit:
    key: str
    max_failures: int


def account_key(action: str, email: str) -> str:
    digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:40]
    return f"{action}:account:{digest}"


def client_key(action: str, address: str | None) -> str:
    return f"{action}:client:{(address or 'unknown')[:100]}"


class Throttle:
    def __init__(
        self, session_maker: async_sessionmaker[AsyncSession], *, window_seconds: int
    ) -> None:
        self.session_maker = session_maker
        self.window = dt.timedelta(seconds=window_seconds)

    async def check(
        self, session: AsyncSession, limits: Sequence[Limit], *, now: dt.datetime
    ) -> None:
        """Raise 429 (with ``Retry-After``) when any limit is used up in its window."""
        keys = [limit.key for limit in limits]
        found = await get_counters(session, keys)
        counters = {counter.key: counter for counter in found}
        retry_after = 0.0
        for limit in limits:
            counter = counters.get(limit.key)
            if counter is None or counter.count < limit.max_failures:
                continue
            window_ends = counter.window_started_at + self.window
            if window_ends > now:
                retry_after = max(retry_after, (window_ends - now).total_seconds())
        if retry_after > 0:
            raise TooManyAttempts(
                "Too many failed attempts; try again later.",
                retry_after=math.ceil(retry_after),
            )

    async def record(self, keys: Sequence[str], *, now: dt.datetime) -> None:
        """Count an event (a failure) for each key, committed at once (outside the
        request's transaction, which a failed request rolls back)."""
        async with self.session_maker() as session, session.begin():
            for key in keys:
                await bump_counter(session, key, now=now, window_start_cutoff=now - self.window)

    async def clear(self, session: AsyncSession, keys: Sequence[str]) -> None:
        """Forget the failures of ``keys`` (in the request's transaction)."""
        await delete_counters(session, keys)


# -- the counters' SQL ---------------------------------------------------------


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
