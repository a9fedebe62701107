"""Database wiring of the encrypted storage service: migrations and the request session."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from hds_common.db import upgrade_to_head

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version_storage"


async def migrate(database_url: str) -> None:
    await asyncio.to_thread(upgrade_to_head, MIGRATIONS_DIR, database_url, VERSION_TABLE)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request: committed when the route succeeds, rolled back otherwise.
    Services only ``flush()``."""
    async with request.app.state.session_maker() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()


# scope="function": the session commits (and returns its connection) when the route
# function returns, *before* the response goes out: an acknowledged write is a committed
# one, and a streamed download does not hold a database connection while it runs.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
