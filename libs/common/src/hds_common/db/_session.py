from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession


async def request_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request from ``app.state.session_maker``: committed when the route
    succeeds, rolled back otherwise. Services only ``flush()``."""
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
SessionDep = Annotated[AsyncSession, Depends(request_session, scope="function")]
