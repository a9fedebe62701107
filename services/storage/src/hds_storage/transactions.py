"""The two transaction modes of the storage service.

* The request session (``hds_common.db.SessionDep``): one transaction per request,
  committed when the route function returns. Routes that read, or write one thing, use it.
* Workflow transactions (:func:`workflow_transaction`): multi-step work that must not hold
  one transaction throughout opens a short one of its own per step, from the session
  maker. Uploads stream to the blob store between their steps (no lock held meanwhile);
  imports, shares, deletions and revocations take the package and usage locks in a step
  of their own and delete blobs only after it committed; the sweeps run outside any
  request. Each block commits when it ends and rolls back when it raises.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

__all__ = ["workflow_transaction"]


@asynccontextmanager
async def workflow_transaction(
    session_maker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """A session in a transaction of its own: committed at the end of the block, rolled
    back if it raises."""
    async with session_maker() as session, session.begin():
        yield session
