"""SQL of the key sessions."""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from hds_storage.models import KeySession

__all__ = ["KeySessionRepository"]


class KeySessionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, row: KeySession) -> None:
        self.session.add(row)
        await self.session.flush()

    async def get(self, session_id: str) -> KeySession | None:
        return await self.session.get(KeySession, session_id)

    async def is_live(self, session_id: str, now: dt.datetime) -> bool:
        found = await self.session.scalar(
            select(KeySession.id).where(KeySession.id == session_id, KeySession.expires_at > now)
        )
        return found is not None

    async def end(
        self,
        *,
        kind: str,
        subject: str,
        tag: str | None = None,
        keep_tag: str | None = None,
    ) -> int:
        """Delete the sessions of ``subject`` (only those tagged ``tag`` when given; all
        but those tagged ``keep_tag`` when given); the number deleted."""
        statement = delete(KeySession).where(KeySession.kind == kind, KeySession.subject == subject)
        if tag is not None:
            statement = statement.where(KeySession.tag == tag)
        if keep_tag is not None:
            statement = statement.where((KeySession.tag.is_(None)) | (KeySession.tag != keep_tag))
        result = cast(CursorResult[Any], await self.session.execute(statement))
        return result.rowcount or 0

    async def end_one(self, session_id: str) -> None:
        await self.session.execute(delete(KeySession).where(KeySession.id == session_id))

    async def delete_expired(self, now: dt.datetime) -> int:
        result = cast(
            CursorResult[Any],
            await self.session.execute(delete(KeySession).where(KeySession.expires_at <= now)),
        )
        return result.rowcount or 0
