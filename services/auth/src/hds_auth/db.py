"""Database wiring of the identity service: migrations and the request session."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hds_common.db import SessionDep, upgrade_to_head

__all__ = ["MIGRATIONS_DIR", "VERSION_TABLE", "SessionDep", "migrate"]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version_auth"


async def migrate(database_url: str) -> None:
    await asyncio.to_thread(upgrade_to_head, MIGRATIONS_DIR, database_url, VERSION_TABLE)
