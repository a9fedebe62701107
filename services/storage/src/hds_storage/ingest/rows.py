"""The index rows an upload adds (patient, study, series, instance, document): each keeps
its metadata sealed under the package's key, bound to its table and id."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from hds_storage.keys import MetaCipher
from hds_storage.models import Base

__all__ = ["add_new_row", "sealed_row"]

RowT = TypeVar("RowT", bound=Base)


def sealed_row(
    model: type[RowT],
    cipher: MetaCipher,
    row_id: str,
    meta: dict[str, Any],
    now: dt.datetime,
    **columns: Any,
) -> RowT:
    """A row of ``model`` whose ``meta`` is sealed for its table and id, so a sealed value
    cannot be moved to another row."""
    sealed = cipher.seal(model.__tablename__, row_id, meta)
    return model(id=row_id, meta=sealed, created_at=now, **columns)


async def add_new_row(
    session: AsyncSession,
    model: type[RowT],
    cipher: MetaCipher,
    meta: dict[str, Any],
    now: dt.datetime,
    **columns: Any,
) -> RowT:
    """A new sealed row under a fresh id, flushed at once: there are no ORM relationships,
    so a parent must be in the database before its children are added."""
    row = sealed_row(model, cipher, str(uuid.uuid4()), meta, now, **columns)
    session.add(row)
    await session.flush()
    return row
