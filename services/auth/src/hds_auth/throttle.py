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

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hds_auth import repository
from hds_common.errors import TooManyRequests

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
        found = await repository.get_counters(session, keys)
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
            raise TooManyRequests(
                "Too many failed attempts; try again later.",
                slug="too-many-attempts",
                retry_after=math.ceil(retry_after),
            )

    async def record(self, keys: Sequence[str], *, now: dt.datetime) -> None:
        """Count an event (a failure) for each key, committed at once (outside the
        request's transaction, which a failed request rolls back)."""
        async with self.session_maker() as session, session.begin():
            for key in keys:
                await repository.bump_counter(
                    session, key, now=now, window_start_cutoff=now - self.window
                )

    async def clear(self, session: AsyncSession, keys: Sequence[str]) -> None:
        """Forget the failures of ``keys`` (in the request's transaction)."""
        await repository.delete_counters(session, keys)
