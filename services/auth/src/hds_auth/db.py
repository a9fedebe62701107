"""Database wiring of the identity service: migrations and the request session."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from hds_common.db import upgrade_to_head

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version_auth"


async def migrate(database_url: str) -> None:
    ensure_sqlite_directory(database_url)
    await asyncio.to_thread(upgrade_to_head, MIGRATIONS_DIR, database_url, VERSION_TABLE)


def ensure_sqlite_directory(database_url: str) -> None:
    """The embedded default keeps its SQLite file under ./var, which may not exist yet."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)


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


SessionDep = Annotated[AsyncSession, Depends(get_session)]
