"""What every repository of the storage service shares.

Locking: a transaction that changes the items or holdings of a package locks the package
row first (:meth:`hds_storage.packages.repository.PackageRepository.lock_package`), then
(if it changes usage) the account usage row
(:meth:`hds_storage.holdings.repository.HoldingsRepository.lock_usage`); nothing locks in
the other order. Locks are taken with a write (a no-op UPDATE): on PostgreSQL that is a
row lock, on SQLite it takes the database write lock before anything is read, which also
avoids the "read snapshot, then upgrade to writer" failure of deferred transactions.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ["NO_SYNC", "SessionRepository", "rowcount"]

NO_SYNC = {"synchronize_session": False}


def rowcount(result: Any) -> int:
    return int(cast(CursorResult[Any], result).rowcount)


class SessionRepository:
    """SQL of one feature, in the caller's session (and transaction)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def flush(self) -> None:
        await self.session.flush()

    def add(self, row: object) -> None:
        self.session.add(row)
